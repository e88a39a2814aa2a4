"""What the MLflow tracking worker reads and writes: a run's identity for MLflow, the MLflow ids kept on run and task
rows, and the warnings it records on a run (issue 11, item 7; `odin.controller.tracking.worker`).

The ids are written by the worker, never by the engine: the engine's row updates name their columns, so the two
never overwrite each other's values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from odin.controller.store.db import DbEngine, reading, transaction
from odin.controller.store.tables import EVENTS, REPOSITORIES, RUNS, TASK_RUNS
from odin.controller.store.types import utcnow
from odin.controller.vocabulary import RunStatus

_TERMINAL = [s.value for s in RunStatus if s.terminal]


@dataclass(frozen=True, slots=True)
class TrackedRunRow:
    """A run as MLflow is told about it, with the ids recorded so far."""

    id: str
    pipeline: str
    commit_sha: str | None
    branch: str | None
    trigger: str
    triggered_by: str | None
    status: str
    params: dict[str, str]
    repository: str
    repository_url: str | None
    mlflow_run_id: str | None
    mlflow_experiment_id: str | None
    mlflow_status: str | None
    created_at: str = ""  # ISO time: with the id, what tells this run from one of another store with the same id


@dataclass(frozen=True, slots=True)
class TrackedTaskRow:
    name: str
    status: str
    attempt: int
    results: dict[str, Any] = field(default_factory=dict)
    mlflow_run_id: str | None = None


def tracked_run(db: DbEngine, run_id: str) -> TrackedRunRow | None:
    """The run with its repository's name and URL (a run without one is filed under `local`); None if unknown."""
    q = sa.select(
        RUNS.c.id, RUNS.c.pipeline, RUNS.c.commit_sha, RUNS.c.branch, RUNS.c.trigger, RUNS.c.triggered_by,
        RUNS.c.status, RUNS.c.params, RUNS.c.created_at,
        RUNS.c.mlflow_run_id, RUNS.c.mlflow_experiment_id, RUNS.c.mlflow_status,
        REPOSITORIES.c.name.label("repository"), REPOSITORIES.c.url.label("repository_url"),
    ).select_from(RUNS.outerjoin(REPOSITORIES, RUNS.c.repo_id == REPOSITORIES.c.id))  # fmt: skip
    q = q.where(RUNS.c.id == run_id)
    with reading(db) as conn:
        r = conn.execute(q).first()
    if r is None:
        return None
    m = r._mapping
    return TrackedRunRow(
        id=m["id"],
        pipeline=m["pipeline"],
        commit_sha=m["commit_sha"],
        branch=m["branch"],
        trigger=m["trigger"],
        triggered_by=m["triggered_by"],
        status=m["status"],
        params=dict(m["params"] or {}),
        repository=m["repository"] or "local",
        repository_url=m["repository_url"],
        mlflow_run_id=m["mlflow_run_id"],
        mlflow_experiment_id=m["mlflow_experiment_id"],
        mlflow_status=m["mlflow_status"],
        created_at=m["created_at"].isoformat() if m["created_at"] else "",
    )


def tracked_tasks(db: DbEngine, run_id: str, names: list[str] | None = None) -> list[TrackedTaskRow]:
    """The run's tasks (or those named), in creation order."""
    q = sa.select(
        TASK_RUNS.c.name, TASK_RUNS.c.status, TASK_RUNS.c.attempt, TASK_RUNS.c.results, TASK_RUNS.c.mlflow_run_id
    ).where(TASK_RUNS.c.run_id == run_id)
    if names is not None:
        q = q.where(TASK_RUNS.c.name.in_(names))
    with reading(db) as conn:
        rows = conn.execute(q.order_by(TASK_RUNS.c.id)).all()
    return [TrackedTaskRow(r.name, r.status, r.attempt, dict(r.results or {}), r.mlflow_run_id) for r in rows]


def record_run_ids(db: DbEngine, run_id: str, mlflow_run_id: str, experiment_id: str) -> None:
    with transaction(db) as conn:
        conn.execute(
            RUNS.update()
            .where(RUNS.c.id == run_id)
            .values(mlflow_run_id=mlflow_run_id, mlflow_experiment_id=experiment_id)
        )


def record_task_id(db: DbEngine, run_id: str, task: str, mlflow_run_id: str) -> None:
    with transaction(db) as conn:
        conn.execute(
            TASK_RUNS.update()
            .where(TASK_RUNS.c.run_id == run_id, TASK_RUNS.c.name == task)
            .values(mlflow_run_id=mlflow_run_id)
        )


def record_closed(db: DbEngine, run_id: str, mlflow_status: str) -> None:
    """The run's MLflow run was ended with `mlflow_status`: the restart sweep leaves it alone from now on."""
    with transaction(db) as conn:
        conn.execute(RUNS.update().where(RUNS.c.id == run_id).values(mlflow_status=mlflow_status))


def unclosed_runs(db: DbEngine, *, limit: int = 1000) -> list[str]:
    """Finished runs whose MLflow run was opened but not ended (the process stopped first, or MLflow was down)."""
    q = (
        sa.select(RUNS.c.id)
        .where(RUNS.c.mlflow_run_id.is_not(None), RUNS.c.mlflow_status.is_(None), RUNS.c.status.in_(_TERMINAL))
        .order_by(RUNS.c.created_at)
        .limit(limit)
    )
    with reading(db) as conn:
        return [str(i) for i in conn.execute(q).scalars()]


def record_run_event(
    db: DbEngine, run_id: str, kind: str, *, commit_sha: str | None, task: str | None = None, **data: Any
) -> dict[str, Any]:
    """Append one event to a run (e.g. `run.warning`); returns it as stored, to publish on the bus."""
    row = {"kind": kind, "run_id": run_id, "task": task, "commit_sha": commit_sha, "data": data, "time": utcnow()}
    with transaction(db) as conn:
        event_id = conn.execute(EVENTS.insert().returning(EVENTS.c.id), row).scalar_one()
    return {**row, "id": event_id}
