"""What retention of events and logs reads and deletes: old events in small batches, and which runs' logs may go.

A year of use puts tens of millions of rows in `events`. Deleting the old ones in one statement would hold a
transaction (and its locks, and the WAL it writes) for minutes; here each batch is at most `BATCH` rows found by the
primary key from where the previous batch stopped, deleted by id and committed on its own, so the engine's writes
interleave with the sweep and a sweep stopped half-way has lost nothing but time. Events are appended in time order
(`time` is set when the row is written), so the oldest events are the first ids: a batch walks ids upwards and the
sweep ends at the first event younger than the horizon, without an index on `time` that every engine write would
pay for. An event written out of order is kept until a later sweep: retention never deletes early, only late.

Kept always: runs, task runs, commits, repositories, and the events of runs still active (the engine, the WebSocket
replays and a restart's adoption may read them). Each run whose events were deleted gets `events_pruned_at`, and
each run whose logs were deleted `logs_pruned_at`, in the transaction that deleted them, so its page can say so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from odin.controller.store.db import DbEngine, reading, transaction
from odin.controller.store.tables import EVENTS, RUNS
from odin.controller.vocabulary import RunStatus

BATCH = 5000
"""Events deleted per transaction: small enough that no lock or transaction of the sweep lasts long."""

_TERMINAL = frozenset(str(s) for s in RunStatus if s.terminal)


@dataclass(frozen=True, slots=True)
class EventBatch:
    """One batch of `prune_events`: how many events it deleted, and where the next batch starts (None: the horizon
    was reached, nothing older is left to look at)."""

    deleted: int
    resume_after: int | None


def prune_events(db: DbEngine, before: datetime, now: datetime, *, after: int = 0, batch: int = BATCH) -> EventBatch:
    """Delete, in one transaction, the events with ids above `after` (at most `batch` looked at) recorded before
    `before`, except those of runs still active; mark their runs `events_pruned_at = now`."""
    with transaction(db) as conn:
        rows = conn.execute(
            sa.select(EVENTS.c.id, EVENTS.c.time, EVENTS.c.run_id)
            .where(EVENTS.c.id > after)
            .order_by(EVENTS.c.id)
            .limit(batch)
        ).all()
        # The runs' statuses by their primary key, in a second query: a join would let the planner read every run.
        named = sorted({r.run_id for r in rows if r.run_id is not None})
        status = {r.id: r.status for r in conn.execute(sa.select(RUNS.c.id, RUNS.c.status).where(RUNS.c.id.in_(named)))}
        doomed: list[int] = []
        runs: set[str] = set()
        reached = len(rows) < batch
        for r in rows:
            if r.time >= before:
                reached = True
                break
            if r.run_id is not None and status.get(r.run_id, RunStatus.SUCCEEDED.value) not in _TERMINAL:
                continue  # a run still active keeps its history
            doomed.append(r.id)
            if r.run_id is not None:
                runs.add(r.run_id)
        if doomed:
            conn.execute(EVENTS.delete().where(EVENTS.c.id.in_(doomed)))
        if runs:
            conn.execute(RUNS.update().where(RUNS.c.id.in_(sorted(runs))).values(events_pruned_at=now))
    last = rows[-1].id if rows else after
    return EventBatch(len(doomed), None if reached else int(last))


@dataclass(frozen=True, slots=True)
class EndedRun:
    run_id: str
    finished_at: datetime | None


def ended_before(db: DbEngine, run_ids: Sequence[str], before: datetime) -> list[EndedRun]:
    """Those of `run_ids` that ended (a terminal status) before `before`; runs unknown to the store are left out,
    so a directory no run accounts for is never deleted."""
    if not run_ids:
        return []
    with reading(db) as conn:
        rows = conn.execute(
            sa.select(RUNS.c.id, RUNS.c.status, RUNS.c.finished_at, RUNS.c.created_at).where(
                RUNS.c.id.in_(list(run_ids))
            )
        ).all()
    found = []
    for r in rows:
        ended = r.finished_at or r.created_at  # a run recorded finished without a time (rejected) ended at creation
        if r.status in _TERMINAL and ended is not None and ended < before:
            found.append(EndedRun(r.id, r.finished_at))
    return found


def mark_logs_pruned(db: DbEngine, run_ids: Iterable[str], now: datetime) -> None:
    """Record that the runs' task logs were deleted."""
    ids = sorted(set(run_ids))
    if ids:
        with transaction(db) as conn:
            conn.execute(RUNS.update().where(RUNS.c.id.in_(ids)).values(logs_pruned_at=now))
