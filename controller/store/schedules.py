"""Started slots of pipelines' schedules: claimed once, read back for catch-up and for the API.

`claim_slot` is the scheduler's half of "exactly once per slot": INSERT ... ON CONFLICT DO NOTHING on the slot's key,
inside the caller's transaction (the one that creates the run), so whoever inserts the row starts the run and every
other replica, or a leader restarted mid-tick, learns the slot is taken.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from odin.controller.store.db import Connection, DbEngine, reading
from odin.controller.store.models import SCHEDULED_SLOTS
from odin.controller.store.types import utcnow
from odin.controller.store.upsert import insert_on_conflict


@dataclass(frozen=True, slots=True)
class SlotKey:
    """A slot of one schedule: two schedules of one pipeline (say two `.odin.yml` entries that differ only in their
    parameters) may name the same instant, and each starts its own run."""

    repo_id: int
    branch: str
    pipeline: str
    schedule: str
    slot: datetime


def claim_slot(conn: Connection, key: SlotKey) -> bool:
    """Record the slot as started, in the caller's transaction; False when it already was (by anyone)."""
    stmt = insert_on_conflict(
        SCHEDULED_SLOTS,
        conn.dialect.name,
        conflict=("repo_id", "branch", "pipeline", "schedule", "slot"),
        values={
            "repo_id": key.repo_id,
            "branch": key.branch,
            "pipeline": key.pipeline,
            "slot": key.slot,
            "schedule": key.schedule,
            "fired_at": utcnow(),
        },
    )
    return bool(conn.execute(stmt).rowcount)


def attach_run(conn: Connection, key: SlotKey, run_id: str) -> None:
    """Name the run a claimed slot started (same transaction as the claim)."""
    table = SCHEDULED_SLOTS
    conn.execute(
        table.update()
        .where(
            table.c.repo_id == key.repo_id,
            table.c.branch == key.branch,
            table.c.pipeline == key.pipeline,
            table.c.schedule == key.schedule,
            table.c.slot == key.slot,
        )
        .values(run_id=run_id)
    )


@dataclass(frozen=True, slots=True)
class LastSlot:
    pipeline: str
    schedule: str
    slot: datetime
    run_id: str | None


def last_slots(db: DbEngine, repo_id: int, branch: str, pipelines: Iterable[str] | None = None) -> list[LastSlot]:
    """The most recent started slot of each (pipeline, schedule) of a repository's branch (one grouped query)."""
    table = SCHEDULED_SLOTS
    latest = (
        sa.select(table.c.pipeline, table.c.schedule, sa.func.max(table.c.slot).label("slot"))
        .where(table.c.repo_id == repo_id, table.c.branch == branch)
        .group_by(table.c.pipeline, table.c.schedule)
    )
    if pipelines is not None:
        latest = latest.where(table.c.pipeline.in_(list(pipelines)))
    last = latest.subquery()
    query = (
        sa.select(table.c.pipeline, table.c.schedule, table.c.slot, table.c.run_id)
        .join(
            last,
            sa.and_(
                table.c.pipeline == last.c.pipeline,
                table.c.schedule == last.c.schedule,
                table.c.slot == last.c.slot,
            ),
        )
        .where(table.c.repo_id == repo_id, table.c.branch == branch)
    )
    with reading(db) as conn:
        rows = conn.execute(query).all()
    return [LastSlot(row.pipeline, row.schedule, row.slot, row.run_id) for row in rows]
