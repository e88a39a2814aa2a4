"""Started slots of pipelines' schedules: claimed once, read back for catch-up and for the API.

`claim_slot` is the scheduler's half of "exactly once per slot": INSERT ... ON CONFLICT DO NOTHING on the slot's key,
inside the caller's transaction (the one that creates the run), so whoever inserts the row starts the run and every
other replica, or a leader restarted mid-tick, learns the slot is taken.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from odin.controller.store.db import Connection, DbEngine, reading
from odin.controller.store.tables import SCHEDULED_SLOTS
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


_CLAIM_BATCH = 500  # rows per INSERT: 7 bind parameters each, well under SQLite's limit of 32,766


def claim_slots(conn: Connection, keys: Sequence[SlotKey]) -> set[SlotKey]:
    """`claim_slot` for many slots in few statements (one multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING per
    500): the slots this call claimed, in the caller's transaction. What a tick with a thousand schedules due at one
    instant costs is then a handful of statements, not two thousand."""
    claimed: set[SlotKey] = set()
    fired_at = utcnow()
    table = SCHEDULED_SLOTS
    if conn.dialect.name == "postgresql" and keys:
        by_key = {(k.repo_id, k.branch, k.pipeline, k.schedule, _utc(k.slot)): k for k in keys}
        inserted = conn.execute(_PG_CLAIM, {**_arrays(keys), "fired": fired_at})
        return {by_key[(r.repo_id, r.branch, r.pipeline, r.schedule, _utc(r.slot))] for r in inserted}
    for start in range(0, len(keys), _CLAIM_BATCH):
        batch = keys[start : start + _CLAIM_BATCH]
        by_row = {(k.repo_id, k.branch, k.pipeline, k.schedule, _utc(k.slot)): k for k in batch}
        rows = [
            {
                "repo_id": k.repo_id,
                "branch": k.branch,
                "pipeline": k.pipeline,
                "schedule": k.schedule,
                "slot": k.slot,
                "fired_at": fired_at,
            }
            for k in batch
        ]
        stmt = insert_on_conflict(
            table, conn.dialect.name, conflict=("repo_id", "branch", "pipeline", "schedule", "slot"), values=rows
        ).returning(table.c.repo_id, table.c.branch, table.c.pipeline, table.c.schedule, table.c.slot)
        for row in conn.execute(stmt):
            key = by_row.get((row.repo_id, row.branch, row.pipeline, row.schedule, _utc(row.slot)))
            if key is not None:
                claimed.add(key)
    return claimed


def attach_runs(conn: Connection, runs: Sequence[tuple[SlotKey, str]]) -> None:
    """`attach_run` for many claimed slots, as one statement: an executemany on SQLite (in-process, cheap), one
    UPDATE ... FROM unnest(...) on Postgres, where an executemany of UPDATEs is a round trip per row."""
    if not runs:
        return
    if conn.dialect.name == "postgresql":
        conn.execute(_PG_ATTACH, {**_arrays([key for key, _ in runs]), "runs": [run_id for _, run_id in runs]})
        return
    table = SCHEDULED_SLOTS
    stmt = (
        table.update()
        .where(
            table.c.repo_id == sa.bindparam("k_repo"),
            table.c.branch == sa.bindparam("k_branch"),
            table.c.pipeline == sa.bindparam("k_pipeline"),
            table.c.schedule == sa.bindparam("k_schedule"),
            table.c.slot == sa.bindparam("k_slot", type_=table.c.slot.type),
        )
        .values(run_id=sa.bindparam("k_run"))
    )
    conn.execute(
        stmt,
        [
            {
                "k_repo": k.repo_id,
                "k_branch": k.branch,
                "k_pipeline": k.pipeline,
                "k_schedule": k.schedule,
                "k_slot": k.slot,
                "k_run": run_id,
            }
            for k, run_id in runs
        ],
    )


# Postgres: a tick's slots as arrays, one statement each whatever their number (a multi-row VALUES would be compiled
# by SQLAlchemy and planned by the server anew for every count of rows). The claim inserts its rows in the key's
# order, whatever order the caller listed them in: two replicas claiming the same slots at once (a leadership
# handover; their ticks may list the slots differently) then wait on each other's rows in one order, never in a
# cycle, which Postgres would break by aborting one of them with "deadlock detected".
_PG_KEYS = (
    "CAST(:repos AS integer[]), CAST(:branches AS text[]), CAST(:pipelines AS text[]), "
    "CAST(:schedules AS text[]), CAST(:slots AS timestamptz[])"
)
_PG_CLAIM = sa.text(f"""
    INSERT INTO {SCHEDULED_SLOTS.name} (repo_id, branch, pipeline, schedule, slot, fired_at)
    SELECT v.repo_id, v.branch, v.pipeline, v.schedule, v.slot, :fired
    FROM unnest({_PG_KEYS}) AS v(repo_id, branch, pipeline, schedule, slot)
    ORDER BY v.repo_id, v.branch, v.pipeline, v.schedule, v.slot
    ON CONFLICT (repo_id, branch, pipeline, schedule, slot) DO NOTHING
    RETURNING repo_id, branch, pipeline, schedule, slot
""")  # noqa: S608 (only the table's name is formatted in; every value is a bound parameter)
_PG_ATTACH = sa.text(f"""
    UPDATE {SCHEDULED_SLOTS.name} AS s SET run_id = v.run_id
    FROM unnest({_PG_KEYS}, CAST(:runs AS text[])) AS v(repo_id, branch, pipeline, schedule, slot, run_id)
    WHERE s.repo_id = v.repo_id AND s.branch = v.branch AND s.pipeline = v.pipeline AND s.schedule = v.schedule
      AND s.slot = v.slot
""")  # noqa: S608 (as above)


def _arrays(keys: Sequence[SlotKey]) -> dict[str, list[Any]]:
    return {
        "repos": [k.repo_id for k in keys],
        "branches": [k.branch for k in keys],
        "pipelines": [k.pipeline for k in keys],
        "schedules": [k.schedule for k in keys],
        "slots": [_utc(k.slot) for k in keys],
    }


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


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
