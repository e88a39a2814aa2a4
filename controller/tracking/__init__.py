"""Experiment tracking: each Odin run an MLflow run, each task a nested run, keyed by the commit.

When `ODIN_MLFLOW_TRACKING_URI` is set, the engine asks `open_tracker` for a tracker and, per run: `start_run` (an
experiment per pipeline; tags: commit, branch, repository, Odin run id, trigger), per task `start_task` (a nested
run, with the task's params) and `task_env` (MLFLOW_TRACKING_URI, MLFLOW_RUN_ID, MLFLOW_EXPERIMENT_ID, so that
`mlflow.log_metric` in the task's own code lands in that nested run with no configuration), `log_results` when a
task's results are recorded, and `finish`. MLflow being down never fails a run: every call returns a
`TrackingWarning` instead of raising, after retrying with `controller.backoff`. See docs/artifacts.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from odin.controller.tracking.records import TrackedRun, TrackingWarning
from odin.controller.tracking.settings import TrackingSettings

if TYPE_CHECKING:
    from odin.controller.tracking.client import MlflowTracker

__all__ = ["TrackedRun", "TrackingSettings", "TrackingWarning", "open_tracker"]


def open_tracker(settings: TrackingSettings) -> MlflowTracker | None:
    """The tracker for `settings`, or None when tracking is off (MLflow is not even imported then: it takes seconds
    and a server that does not track should not pay for it)."""
    if not settings.enabled:
        return None
    from odin.controller.tracking.client import MlflowTracker

    return MlflowTracker(settings)
