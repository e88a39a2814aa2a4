"""The cache lookup (issue 11 item 6): succeeded task runs recorded with a given cache key, newest first.

One indexed query (`ix_task_runs_cache_key_status`, migration 0007) per cached task about to start. Several candidates
come back, not one: the newest may have lost an artifact to retention while an older one (another run that produced
the same bytes) still has everything, and whether the files are still there is the engine's question, not SQL's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from odin.controller.store.db import DbEngine, reading
from odin.controller.store.tables import RUNS, TASK_RUNS
from odin.controller.vocabulary import TaskStatus


@dataclass(frozen=True, slots=True)
class CachedTask:
    """A succeeded task run that recorded the key: where it ran and what it produced."""

    run_id: str
    commit_sha: str | None
    reason: str | None
    message: str | None
    exit_code: int | None
    results: dict[str, Any] | None
    artifacts: dict[str, dict[str, Any]] | None


def cached_tasks(engine: DbEngine, key: str, *, limit: int = 5) -> list[CachedTask]:
    """Up to `limit` succeeded task runs with cache key `key`, the most recently recorded first."""
    q = (
        sa.select(
            TASK_RUNS.c.run_id,
            RUNS.c.commit_sha,
            TASK_RUNS.c.reason,
            TASK_RUNS.c.message,
            TASK_RUNS.c.exit_code,
            TASK_RUNS.c.results,
            TASK_RUNS.c.artifacts,
        )
        .select_from(TASK_RUNS.join(RUNS, TASK_RUNS.c.run_id == RUNS.c.id))
        .where(TASK_RUNS.c.cache_key == key, TASK_RUNS.c.status == TaskStatus.SUCCEEDED.value)
        .order_by(TASK_RUNS.c.id.desc())
        .limit(limit)
    )
    with reading(engine) as conn:
        return [CachedTask(*row) for row in conn.execute(q)]
