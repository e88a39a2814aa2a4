"""Reading the append-only `events` table: its tail, and the events of one run or commit, for live streams.

The WebSocket hub reads the tail every fraction of a second, so that statement is built once; each event comes back
as a dict with the table's columns (id, time, kind, repo_id, commit_sha, run_id, task, data), the shape the bus
publishes too.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import sqlalchemy as sa

from odin.controller.store.db import DbEngine, reading
from odin.controller.store.run_queries import sha_match
from odin.controller.store.tables import EVENTS

_LAST_ID = sa.select(sa.func.max(EVENTS.c.id))
_AFTER = sa.select(EVENTS).where(EVENTS.c.id > sa.bindparam("after")).order_by(EVENTS.c.id).limit(sa.bindparam("limit"))


def last_event_id(db: DbEngine) -> int:
    """The highest event id stored (0 when there is none). Raises `StoreUnavailable`."""
    with reading(db) as conn:
        return int(conn.execute(_LAST_ID).scalar() or 0)


def events_after(db: DbEngine, after: int, *, limit: int) -> list[dict[str, Any]]:
    """Events with ids above `after`, oldest first, at most `limit`. Raises `StoreUnavailable`."""
    with reading(db) as conn:
        rows = conn.execute(_AFTER, {"after": after, "limit": limit}).all()
    return [dict(r._mapping) for r in rows]


def events_with_ids(db: DbEngine, ids: Collection[int]) -> list[dict[str, Any]]:
    """The events among `ids` that exist now, oldest first: ids once skipped as never coming, looked for again."""
    if not ids:
        return []
    with reading(db) as conn:
        rows = conn.execute(sa.select(EVENTS).where(EVENTS.c.id.in_(sorted(ids))).order_by(EVENTS.c.id)).all()
    return [dict(r._mapping) for r in rows]


def events_between(
    db: DbEngine, since: int, upto: int, *, run: str | None = None, commit: str | None = None, limit: int
) -> list[dict[str, Any]]:
    """Events with since < id <= upto, oldest first, at most `limit`: those of run `run` when given, else of the
    commit `commit` (a lower-case SHA or prefix of one) when given, else all. Raises `StoreUnavailable`."""
    scope: sa.ColumnElement[bool]
    if run is not None:
        scope = EVENTS.c.run_id == run
    elif commit is not None:
        scope = sha_match(EVENTS.c.commit_sha, commit)
    else:
        scope = sa.true()
    with reading(db) as conn:
        rows = conn.execute(
            sa.select(EVENTS).where(EVENTS.c.id > since, EVENTS.c.id <= upto, scope).order_by(EVENTS.c.id).limit(limit)
        ).all()
    return [dict(r._mapping) for r in rows]
