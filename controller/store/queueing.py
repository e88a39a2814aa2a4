"""Which runs may be active: a pipeline's `concurrency:` and the controller's limit of active runs (issue 13 item 5).

A run is created `queued` whenever a limit could hold it, and `promote` then starts (marks `pending`) the queued runs
that fit, highest `priority` first, then oldest first: one rule for a new run and for the runs waiting behind a
finished one, so a new run never jumps ahead of those already waiting. A pipeline's `replace` and `skip` policies are
decided before the insert, from the pipeline's *live* runs (active and not asked to cancel, or queued).

Every decision reads counts and writes statuses, so it runs under one lock inside the caller's transaction: on
Postgres a transaction-level advisory lock (across replicas too), on SQLite the database's single writer (every
write transaction is `BEGIN IMMEDIATE`, see `db.transaction`). Two threads creating runs of the same pipeline, or a
creation racing the engine's promotion after a run ended, therefore see each other's outcome, never the same count.

The controller's limit is a setting of the process (`ODIN_MAX_ACTIVE_RUNS`), registered per database handle with
`configure` so that every path creating runs (sync, the API, schedules, reruns) obeys it without each carrying it.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as DbEngine

from odin.controller.store.db import reading, transaction
from odin.controller.store.tables import EVENTS, RUNS, TASK_RUNS
from odin.controller.store.types import utcnow
from odin.controller.vocabulary import REPLACED, RunStatus, TaskStatus

QUEUE_LOCK_KEY = 0x0D1_0C0C
"""Postgres advisory lock serialising queue decisions (the leader and migration locks use other keys)."""

PIPELINE_LIMIT = "ConcurrencyLimit"
"""Reason of a run queued (or skipped) because its pipeline has `concurrency.limit` runs active."""

GLOBAL_LIMIT = "MaxActiveRuns"
"""Reason of a run queued because the controller has ODIN_MAX_ACTIVE_RUNS runs active."""

_ACTIVE = (RunStatus.PENDING.value, RunStatus.RUNNING.value)
_LIVE = (*_ACTIVE, RunStatus.QUEUED.value)

_limits: weakref.WeakKeyDictionary[DbEngine, int] = weakref.WeakKeyDictionary()


def configure(db: DbEngine, *, max_active_runs: int | None) -> None:
    """Set (or clear, with None) the controller's limit of runs active at once for runs created through `db`."""
    if max_active_runs is None:
        _limits.pop(db, None)
    else:
        _limits[db] = max_active_runs


def max_active_runs(db: DbEngine) -> int | None:
    return _limits.get(db)


@dataclass(frozen=True, slots=True)
class Admission:
    """What a new run does: `status` queued (inserted so, and started at once by `promote` when it fits) or skipped
    (with `reason` and `message`), and which older runs of its pipeline it replaces."""

    status: RunStatus
    reason: str | None = None
    message: str | None = None
    replaces: tuple[str, ...] = ()


def lock(conn: Connection) -> None:
    """Take the queue's lock until the end of the transaction (Postgres; SQLite's writer lock is already held)."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": QUEUE_LOCK_KEY})


def governed(db: DbEngine, limit: int | None) -> bool:
    """Whether a new run goes through the queue: its pipeline has a `concurrency` limit, or the controller has one."""
    return limit is not None or max_active_runs(db) is not None


def admit(conn: Connection, *, repo_id: int | None, pipeline: str, limit: int | None, policy: str) -> Admission:
    """The new run's admission, decided under `lock` (taken here) before it is inserted."""
    lock(conn)
    if limit is None or policy == "queue":
        return Admission(RunStatus.QUEUED)  # `promote` decides, in order with the runs already waiting
    live = _live_runs(conn, repo_id, pipeline)
    if len(live) < limit:
        return Admission(RunStatus.QUEUED)
    if policy == "skip":
        holder = live[0]
        return Admission(RunStatus.SKIPPED, PIPELINE_LIMIT, f"pipeline already running: run {holder}")
    return Admission(RunStatus.QUEUED, replaces=tuple(live[: len(live) - limit + 1]))


def _live_runs(conn: Connection, repo_id: int | None, pipeline: str) -> list[str]:
    """The pipeline's runs that hold or wait for a slot, oldest first: active and not asked to cancel, or queued."""
    q = (
        sa.select(RUNS.c.id)
        .where(
            RUNS.c.repo_id.is_(None) if repo_id is None else RUNS.c.repo_id == repo_id,
            RUNS.c.pipeline == pipeline,
            RUNS.c.status.in_(_LIVE),
            RUNS.c.cancel_requested.is_(False),
        )
        .order_by(RUNS.c.created_at, RUNS.c.id)
    )
    return list(conn.execute(q).scalars())


def replace_runs(conn: Connection, run_ids: Sequence[str], *, by_run: str) -> None:
    """Cancel the runs a newer one replaces: queued ones at once (they never started), active ones flagged for the
    engine, which kills what runs and records the run cancelled with this reason and message."""
    if not run_ids:
        return
    message = f"replaced by run {by_run}"
    rows = conn.execute(sa.select(RUNS.c.id, RUNS.c.status, RUNS.c.commit_sha).where(RUNS.c.id.in_(list(run_ids))))
    for run_id, status, sha in rows.all():
        if status == RunStatus.QUEUED.value:
            finish_queued(conn, run_id, RunStatus.CANCELLED, REPLACED, message)
            continue
        conn.execute(
            RUNS.update().where(RUNS.c.id == run_id).values(cancel_requested=True, reason=REPLACED, message=message)
        )
        conn.execute(
            EVENTS.insert().values(
                kind="run.cancel_requested", run_id=run_id, commit_sha=sha, time=utcnow(),
                data={"by": None, "reason": REPLACED, "replaced_by": by_run},
            )
        )  # fmt: skip


def finish_queued(conn: Connection, run_id: str, status: RunStatus, reason: str, message: str) -> bool:
    """End a run that never left the queue (cancelled, replaced): the run and its tasks, with a `run.status`
    event. False when it is no longer queued."""
    now = utcnow()
    res = conn.execute(
        RUNS.update()
        .where(RUNS.c.id == run_id, RUNS.c.status == RunStatus.QUEUED.value)
        .values(status=status.value, reason=reason, message=message, finished_at=now)
    )
    if not res.rowcount:
        return False
    conn.execute(
        TASK_RUNS.update()
        .where(TASK_RUNS.c.run_id == run_id)
        .values(status=TaskStatus.SKIPPED.value, reason=reason, message="not started: the run never left the queue")
    )
    row = conn.execute(sa.select(RUNS.c.commit_sha, RUNS.c.repo_id, RUNS.c.pipeline).where(RUNS.c.id == run_id)).one()
    conn.execute(
        EVENTS.insert().values(
            kind="run.status", run_id=run_id, repo_id=row.repo_id, commit_sha=row.commit_sha, time=now,
            data={"status": status.value, "reason": reason, "message": message, "pipeline": row.pipeline},
        )
    )  # fmt: skip
    return True


def promote(conn: Connection, max_active: int | None, *, new_run: str | None = None) -> list[str]:
    """Start the queued runs that fit (under `lock`, taken here): highest priority first, then oldest first, each
    within its pipeline's limit and the controller's `max_active`. The others get the reason they wait for. Returns
    the runs now pending, for the engine to drive. `new_run`, being created, was never seen queued: no event for it."""
    lock(conn)
    queued = conn.execute(
        sa.select(
            RUNS.c.id,
            RUNS.c.repo_id,
            RUNS.c.pipeline,
            RUNS.c.concurrency_limit,
            RUNS.c.reason,
            RUNS.c.message,
            RUNS.c.commit_sha,
        )
        .where(RUNS.c.status == RunStatus.QUEUED.value)
        .order_by(RUNS.c.priority.desc(), RUNS.c.created_at, RUNS.c.id)
    ).all()
    if not queued:
        return []
    total = _count(conn, RUNS.c.status.in_(_ACTIVE)) if max_active is not None else 0
    active: dict[tuple[int | None, str], int] = {}
    started: list[str] = []
    waiting: dict[str, tuple[str, str]] = {}
    for row in queued:
        key = (row.repo_id, row.pipeline)
        if row.concurrency_limit is not None:
            if key not in active:
                active[key] = _count(conn, *_pipeline_active(row.repo_id, row.pipeline))
            if active[key] >= row.concurrency_limit:
                waiting[row.id] = _pipeline_wait(active[key], row.concurrency_limit, row.pipeline)
                continue
        if max_active is not None and total >= max_active:
            waiting[row.id] = _global_wait(total, max_active)
            continue
        started.append(row.id)
        total += 1
        if row.concurrency_limit is not None:
            active[key] += 1
    now = utcnow()
    by_id = {row.id: row for row in queued}
    for run_id in started:
        conn.execute(
            RUNS.update().where(RUNS.c.id == run_id).values(status=RunStatus.PENDING.value, reason=None, message=None)
        )
        if run_id == new_run:
            continue
        row = by_id[run_id]
        conn.execute(
            EVENTS.insert().values(
                kind="run.status", run_id=run_id, repo_id=row.repo_id, commit_sha=row.commit_sha, time=now,
                data={"status": RunStatus.PENDING.value, "message": "left the queue", "pipeline": row.pipeline},
            )
        )  # fmt: skip
    for run_id, (reason, message) in waiting.items():
        if (by_id[run_id].reason, by_id[run_id].message) != (reason, message):  # say why it waits, written on change
            conn.execute(RUNS.update().where(RUNS.c.id == run_id).values(reason=reason, message=message))
    return started


def place(
    conn: Connection, run_id: str, *, repo_id: int | None, pipeline: str, limit: int | None, max_active: int | None
) -> tuple[str, str] | None:
    """Where a run just inserted `queued` goes, under `lock`: None when it started (it is `pending`), else why it
    waits, written on it. When its pipeline or the controller is full it cannot start whatever else waits, so a
    long queue is not read for each new run; only with a slot free does `promote` order it among the others."""
    wait: tuple[str, str] | None = None
    if limit is not None:
        active = _count(conn, *_pipeline_active(repo_id, pipeline))
        if active >= limit:
            wait = _pipeline_wait(active, limit, pipeline)
    if wait is None and max_active is not None:
        total = _count(conn, RUNS.c.status.in_(_ACTIVE))
        if total >= max_active:
            wait = _global_wait(total, max_active)
    if wait is None:
        if run_id in promote(conn, max_active, new_run=run_id):
            return None
        row = conn.execute(sa.select(RUNS.c.reason, RUNS.c.message).where(RUNS.c.id == run_id)).one()
        return str(row.reason), str(row.message)
    conn.execute(RUNS.update().where(RUNS.c.id == run_id).values(reason=wait[0], message=wait[1]))
    return wait


def _pipeline_wait(active: int, limit: int, pipeline: str) -> tuple[str, str]:
    return PIPELINE_LIMIT, f"waiting: {active} of {limit} run(s) of pipeline {pipeline} active"


def _global_wait(total: int, max_active: int) -> tuple[str, str]:
    return GLOBAL_LIMIT, f"waiting: {total} of {max_active} run(s) active (ODIN_MAX_ACTIVE_RUNS)"


def _pipeline_active(repo_id: int | None, pipeline: str) -> tuple[sa.ColumnElement[bool], ...]:
    return (
        RUNS.c.repo_id.is_(None) if repo_id is None else RUNS.c.repo_id == repo_id,
        RUNS.c.pipeline == pipeline,
        RUNS.c.status.in_(_ACTIVE),
        RUNS.c.cancel_requested.is_(False),
    )


def _count(conn: Connection, *where: sa.ColumnElement[bool]) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(RUNS).where(*where)).scalar() or 0)


def promote_queued(db: DbEngine) -> list[str]:
    """`promote` in a transaction of its own (the engine, after a run ended, and on each rescan); a plain read first,
    so that with nothing queued (the usual case) no write transaction is opened."""
    with reading(db) as conn:
        if conn.execute(sa.select(RUNS.c.id).where(RUNS.c.status == RunStatus.QUEUED.value).limit(1)).first() is None:
            return []
    with transaction(db) as conn:
        return promote(conn, max_active_runs(db))
