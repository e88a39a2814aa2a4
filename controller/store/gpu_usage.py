"""Recording what task attempts used of their GPUs (`task_runs.gpu_usage`) and the `task.gpu_idle` events.

Written by the GPU usage sampler, beside the engine: it sets only `gpu_usage`, a column the engine never writes, so the
two never overwrite each other's values. Each UPDATE is guarded by the attempt number: a summary of an attempt that
has since been replaced by a retry is dropped rather than shown under the new attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine as DbEngine
from sqlalchemy.exc import OperationalError

from odin.controller.store.db import StoreUnavailable, reading, transaction
from odin.controller.store.tables import EVENTS, TASK_RUNS
from odin.controller.store.types import utcnow


@dataclass(frozen=True, slots=True)
class UsageUpdate:
    run_id: str
    task: str
    attempt: int
    usage: dict[str, Any]


_UPDATE = (
    TASK_RUNS.update()
    .where(
        TASK_RUNS.c.run_id == sa.bindparam("_run_id"),
        TASK_RUNS.c.name == sa.bindparam("_name"),
        TASK_RUNS.c.attempt == sa.bindparam("_attempt"),
    )
    .values(gpu_usage=sa.bindparam("gpu_usage"))
)


def record_gpu_usage(
    db: DbEngine, updates: Sequence[UsageUpdate], events: Sequence[dict[str, Any]] = ()
) -> list[dict[str, Any]]:
    """Write the summaries and events in one transaction; returns the events as stored (with id and time) for the
    bus. `events` are dicts of `kind`, `run_id`, `task`, `data` (as `WriteBatch.event` builds them)."""
    stored: list[dict[str, Any]] = []
    if not updates and not events:
        return stored
    try:
        with transaction(db) as conn:
            if updates:
                rows = [
                    {"_run_id": u.run_id, "_name": u.task, "_attempt": u.attempt, "gpu_usage": u.usage} for u in updates
                ]
                conn.execute(_UPDATE, rows)
            if events:
                now = utcnow()
                rows = [{"commit_sha": None, **e, "time": now} for e in events]
                ids = conn.execute(EVENTS.insert().returning(EVENTS.c.id), rows).scalars().all()
                stored = [{**row, "id": i} for row, i in zip(rows, ids, strict=True)]
    except StoreUnavailable:
        raise
    except OperationalError as e:
        raise StoreUnavailable(f"cannot record GPU usage: {str(e.orig).strip().splitlines()[0]}") from e
    return stored


def recorded_gpu_usage(db: DbEngine, run_id: str, task: str, attempt: int) -> dict[str, Any] | None:
    """The summary this attempt already has (a controller restarted while it ran), or None."""
    with reading(db) as conn:
        stored = conn.execute(
            sa.select(TASK_RUNS.c.gpu_usage).where(
                TASK_RUNS.c.run_id == run_id, TASK_RUNS.c.name == task, TASK_RUNS.c.attempt == attempt
            )
        ).scalar()
    if isinstance(stored, dict) and stored.get("attempt") == attempt:
        return stored
    return None
