"""What the tracker hands back: a tracked run's ids, or a warning saying why there is none (never an exception)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TrackedRun:
    """An MLflow run (an Odin run's, or a task's nested one): what to store on the run and hand to the task."""

    run_id: str
    experiment_id: str
    parent_run_id: str | None = None


@dataclass(frozen=True, slots=True)
class TrackingWarning:
    """A tracking call that did not happen: recorded on the run as a warning, never failing it.

    `retryable` is False when MLflow refused the request itself (a 4xx: retrying the same call cannot help)."""

    operation: str
    message: str
    attempts: int
    retryable: bool = True

    def __str__(self) -> str:
        return f"MLflow {self.operation} failed after {self.attempts} attempt(s): {self.message}"
