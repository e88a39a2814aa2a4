"""MLflow tracking settings (`ODIN_MLFLOW_*`).

MLflow's own client reads its credentials from its own variables (MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME
and MLFLOW_TRACKING_PASSWORD); Odin never copies them, logs them or hands them to tasks. A tracking URI with
credentials in it (`https://user:pass@host`) is redacted in every warning.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class TrackingSettings(BaseSettings):
    """Field names map to `ODIN_MLFLOW_<NAME>` environment variables."""

    model_config = SettingsConfigDict(env_prefix="ODIN_MLFLOW_", extra="ignore", validate_default=True)

    tracking_uri: str | None = Field(default=None, description="MLflow tracking server; unset turns tracking off.")
    task_tracking_uri: str | None = Field(
        default=None,
        description="The tracking URI tasks get (e.g. the in-cluster Service name). Default: tracking_uri.",
    )
    ui_url: str | None = Field(default=None, description="Base URL of the MLflow UI for links. Default: tracking_uri.")
    experiment_name: str = Field(
        default="{repository}/{pipeline}",
        description="Experiment per pipeline; {repository} and {pipeline} are replaced.",
    )
    request_timeout: float = Field(default=10.0, gt=0, description="Seconds per MLflow HTTP request.")
    attempts: int = Field(default=3, ge=1, le=10, description="Tries per tracking call before it becomes a warning.")
    retry_initial: float = Field(default=0.5, ge=0, description="First retry delay, seconds (then doubled, jittered).")
    retry_max: float = Field(default=5.0, ge=0, description="Longest retry delay, seconds.")

    start_timeout: float = Field(
        default=5.0,
        gt=0,
        description="Seconds a task's start waits for its nested MLflow run; past it the task starts without the "
        "MLFLOW_* variables (and a warning on the run).",
    )
    outage_cooldown: float = Field(
        default=30.0,
        ge=0,
        description="After a task start found MLflow down, seconds during which further starts do not wait for it.",
    )

    @property
    def ui_base(self) -> str | None:
        """Where links to runs point: the UI's URL, else the tracking server's."""
        return self.ui_url or self.tracking_uri

    @property
    def enabled(self) -> bool:
        return bool(self.tracking_uri)
