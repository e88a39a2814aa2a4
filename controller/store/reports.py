"""What the commit-status and check reporters read (docs/webhooks.md, "Checks and annotations"), and the event they
record when a report could not be delivered.

A check is richer than a status: the validation check carries every problem of the commit at `file:line`, and a run's
check its tasks with their durations and the failed task. The bus's events only count problems and name states, so
the reporter reads the rest here, once per report, with one or two indexed queries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from odin.controller.store.db import DbEngine, StoreUnavailable, reading, transaction
from odin.controller.store.tables import COMMITS, EVENTS, RUNS, TASK_RUNS
from odin.controller.store.types import utcnow

REPORT_FAILED_EVENT = "report.failed"
"""A status, check or report the provider never accepted (refused, or given up after the retries)."""

_MAX_TASKS = 500
"""Tasks read for one run's report: a check's summary lists the first ones and counts the rest."""


@dataclass(frozen=True, slots=True)
class ReportedTask:
    name: str
    status: str
    attempt: int
    exit_code: int | None
    reason: str | None
    message: str | None
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class ReportedRun:
    id: str
    pipeline: str
    status: str
    reason: str | None
    message: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    tasks: tuple[ReportedTask, ...]
    task_count: int


def commit_problems(db: DbEngine, repo_id: int, sha: str) -> list[dict[str, Any]]:
    """The problems recorded on the commit (`Problem.to_dict` form), in the order validation found them.
    Raises `StoreUnavailable` for any database error."""
    try:
        with reading(db) as conn:
            found = conn.execute(
                sa.select(COMMITS.c.problems).where(COMMITS.c.repo_id == repo_id, COMMITS.c.sha == sha)
            ).scalar()
    except sa.exc.SQLAlchemyError as e:
        raise StoreUnavailable(f"cannot read the commit's problems: {e}") from e
    return [p for p in (found or []) if isinstance(p, dict)]


def reported_run(db: DbEngine, run_id: str) -> ReportedRun | None:
    """The run with its first tasks in creation order; None when there is no such run.
    Raises `StoreUnavailable` for any database error."""
    try:
        with reading(db) as conn:
            run = conn.execute(sa.select(RUNS).where(RUNS.c.id == run_id)).first()
            if run is None:
                return None
            rows = conn.execute(
                sa.select(
                    TASK_RUNS.c.name,
                    TASK_RUNS.c.status,
                    TASK_RUNS.c.attempt,
                    TASK_RUNS.c.exit_code,
                    TASK_RUNS.c.reason,
                    TASK_RUNS.c.message,
                    TASK_RUNS.c.started_at,
                    TASK_RUNS.c.finished_at,
                )
                .where(TASK_RUNS.c.run_id == run_id)
                .order_by(TASK_RUNS.c.id)
                .limit(_MAX_TASKS)
            ).all()
            count = len(rows)
            if count == _MAX_TASKS:
                count = int(
                    conn.execute(
                        sa.select(sa.func.count()).select_from(TASK_RUNS).where(TASK_RUNS.c.run_id == run_id)
                    ).scalar_one()
                )
    except sa.exc.SQLAlchemyError as e:
        raise StoreUnavailable(f"cannot read the run: {e}") from e
    r = run._mapping
    return ReportedRun(
        id=r["id"],
        pipeline=r["pipeline"],
        status=r["status"],
        reason=r["reason"],
        message=r["message"],
        created_at=r["created_at"],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        tasks=tuple(ReportedTask(*row) for row in rows),
        task_count=count,
    )


def record_report_failure(db: DbEngine, *, repo_id: int, sha: str, run_id: str | None, **data: Any) -> dict[str, Any]:
    """Append a `report.failed` event (to the run when the report was a run's, else to the commit); returns it as
    stored, to publish on the bus. Raises `StoreUnavailable` for any database error."""
    row = {
        "kind": REPORT_FAILED_EVENT,
        "repo_id": repo_id,
        "run_id": run_id,
        "task": None,
        "commit_sha": sha,
        "data": data,
        "time": utcnow(),
    }
    try:
        with transaction(db) as conn:
            event_id = conn.execute(EVENTS.insert().returning(EVENTS.c.id), row).scalar_one()
    except sa.exc.SQLAlchemyError as e:
        raise StoreUnavailable(f"cannot record the failed report: {e}") from e
    return {**row, "id": event_id}
