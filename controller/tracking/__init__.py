"""Experiment tracking: each Odin run an MLflow run, each task a nested run, keyed by the commit.

When `ODIN_MLFLOW_TRACKING_URI` is set, the controller wires `open_run_tracking` (`worker.RunTracking`: the bus's
events mirrored into MLflow on a worker thread, and the engine's `task_env` hook), which calls the tracker per run:
`start_run` (an experiment per pipeline; tags: commit, branch, repository, Odin run id, trigger, who), per task
`start_task` (a nested run, with the task's params) and `task_env` (MLFLOW_TRACKING_URI, MLFLOW_RUN_ID,
MLFLOW_EXPERIMENT_ID, so that `mlflow.log_metric` in the task's own code lands in that nested run with no
configuration), `log_results` when a task's results are recorded, and `finish`. MLflow being down never fails a run:
every call returns a `TrackingWarning` instead of raising, after retrying with `controller.backoff`. See
docs/artifacts.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from odin.controller.tracking.records import TrackedRun, TrackingWarning
from odin.controller.tracking.settings import TrackingSettings

if TYPE_CHECKING:
    from odin.controller.bus import EventBus
    from odin.controller.store.db import DbEngine
    from odin.controller.tracking.client import MlflowTracker
    from odin.controller.tracking.worker import RunTracking

__all__ = ["TrackedRun", "TrackingSettings", "TrackingWarning", "open_run_tracking", "open_tracker"]


def open_tracker(settings: TrackingSettings) -> MlflowTracker | None:
    """The tracker for `settings`, or None when tracking is off (MLflow is not even imported then: it takes seconds
    and a server that does not track should not pay for it)."""
    if not settings.enabled:
        return None
    from odin.controller.tracking.client import MlflowTracker

    return MlflowTracker(settings)


def open_run_tracking(db: DbEngine, bus: EventBus, settings: TrackingSettings) -> RunTracking | None:
    """Runs mirrored into MLflow (`worker.RunTracking`, not started yet), or None when tracking is off."""
    if not settings.enabled:
        return None
    from odin.controller.tracking.worker import RunTracking

    def make_tracker() -> MlflowTracker:
        tracker = open_tracker(settings)  # imports mlflow: on the worker's thread, not the server's start
        assert tracker is not None
        return tracker

    return RunTracking(db, bus, make_tracker, settings)
