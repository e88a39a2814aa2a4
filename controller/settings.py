"""Typed settings, read once from flags or `ODIN_*` environment variables.

One place, each field with its unit and default explained, so an operator can read this file instead of grepping for
`os.environ`. Secrets (`admin_password`, `jwt_secret`, git tokens) are `SecretStr`: they never print in a repr, a log
line or an error message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/odin` (usually ~/.local/share/odin): the embedded default keeps everything there."""
    import os

    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "odin"


class Settings(BaseSettings):
    """Everything `odin serve` needs. Field names map to `ODIN_<NAME>` environment variables."""

    model_config = SettingsConfigDict(env_prefix="ODIN_", extra="ignore", validate_default=True)

    data_dir: Path = Field(default_factory=default_data_dir, description="Root of all local state (db, caches, runs).")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: SQLite at <data_dir>/odin.db. Postgres: postgresql+psycopg2://...",
    )

    # -- the followed repository ------------------------------------------------------------------------------
    repo: str | None = Field(default=None, description="Repository to follow: path, file://, https:// or ssh:// URL.")
    branch: str = Field(default="main", description="Branch followed in `repo`.")
    repo_name: str = Field(default="default", description="Short name of the repository inside Odin.")
    git_token: SecretStr | None = Field(
        default=None, description="https token for `repo` (or a reference: env:/file:)."
    )
    git_ssh_key: str | None = Field(default=None, description="Path of the ssh private key for `repo`.")
    poll_interval: float = Field(default=30.0, gt=0, description="Seconds between fetches; jittered by +-10%.")
    run_policy: Literal["latest", "each"] = Field(
        default="latest",
        description="A push of several commits runs only the new tip (latest) or every commit (each).",
    )
    run_on_first_sync: bool = Field(
        default=False,
        description="When Odin first sees a repository, run the pipelines at its tip (default: record it as baseline).",
    )

    # -- execution --------------------------------------------------------------------------------------------
    executor: Literal["local", "kubernetes"] = Field(default="local", description="Where tasks run.")
    parallelism: int = Field(default=8, ge=1, description="Tasks running at once per run (local executor default).")
    max_active_tasks: int = Field(default=64, ge=1, description="Tasks running at once across all runs.")
    retry_backoff: float = Field(default=10.0, ge=0, description="Seconds before the first retry; doubles each time.")
    retry_backoff_max: float = Field(default=600.0, ge=0, description="Upper bound of a retry delay, seconds.")
    kill_grace: float = Field(default=10.0, ge=0, description="Seconds between SIGTERM and SIGKILL on cancel/timeout.")
    root_path: Path | None = Field(default=None, description="${ROOT_PATH} for local tasks. Default <data_dir>/root.")

    # -- API ----------------------------------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Address the API binds to.")
    port: int = Field(default=9003, ge=0, le=65535, description="Port of the API.")
    admin_password: SecretStr | None = Field(
        default=None, description="On first start, create user `admin` with this password. No default, ever."
    )
    jwt_secret: SecretStr | None = Field(
        default=None, description="HS256 secret (>= 32 bytes). Default: generated once into <data_dir>/jwt-secret."
    )
    jwt_secret_file: Path | None = Field(default=None, description="Read the HS256 secret from this file.")
    admin_password_file: Path | None = Field(
        default=None, description="Like admin_password, read from a file (a mounted Kubernetes secret)."
    )
    jwt_algorithm: Literal["HS256", "RS256", "EdDSA", "ES256"] = Field(
        default="HS256", description="Access token signature. RS256/EdDSA/ES256 need the two key files below."
    )
    jwt_private_key_file: Path | None = Field(default=None, description="PEM private key (RS256/EdDSA/ES256).")
    jwt_public_key_file: Path | None = Field(default=None, description="PEM public key (RS256/EdDSA/ES256).")
    token_ttl: int = Field(default=3600, gt=0, description="Access token lifetime, seconds.")
    login_attempts_per_minute: int = Field(
        default=10, ge=1, description="Login attempts allowed per user name and client address, per minute."
    )
    login_attempts_per_minute_per_ip: int = Field(
        default=60, ge=1, description="Login attempts allowed per client address (any user name), per minute."
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body accepted, bytes; larger ones get 413."
    )
    ws_queue_size: int = Field(
        default=1000, ge=10, description="Events buffered per WebSocket client before it is dropped as too slow."
    )
    ws_poll_interval: float = Field(
        default=0.25,
        gt=0,
        description="Seconds between reads of the events table for WebSocket clients (changes made by other "
        "processes; the engine's own changes are pushed at once).",
    )
    ws_auth_timeout: float = Field(
        default=5.0, gt=0, description="Seconds a WebSocket client has to authenticate before it is disconnected."
    )
    git_committer_name: str = Field(default="Odin", description="Committer of commits made through the API.")
    git_committer_email: str = Field(default="odin@localhost", description="Committer e-mail of API commits.")
    git_author_domain: str = Field(
        default="users.odin.invalid",
        description="API commits are authored by the user; users without an e-mail get <name>@<this domain>.",
    )
    public_url: str | None = Field(default=None, description="URL users reach the API at (links in notifications).")

    @field_validator("data_dir", mode="after")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'odin.db'}"

    def effective_root_path(self) -> Path:
        return self.root_path or self.data_dir / "root"

    @property
    def runs_dir(self) -> Path:
        """${RUN_PATH} parents and task logs: <data_dir>/runs/<run-id>/."""
        return self.data_dir / "runs"

    @property
    def trees_dir(self) -> Path:
        """Content-addressed pipeline directories, keyed by git tree oid: ${WORK_PATH}."""
        return self.data_dir / "trees"

    @property
    def git_cache_dir(self) -> Path:
        return self.data_dir / "git"
