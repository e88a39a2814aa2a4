"""Whether the store answers: the readiness probe's database check."""

from __future__ import annotations

import sqlalchemy as sa

from odin.controller.store.db import DbEngine


def ping(db: DbEngine) -> str | None:
    """None when the database answers a trivial query; otherwise the name of the error it raised (never its text,
    which may name hosts or users: the answer goes to unauthenticated probes)."""
    try:
        with db.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as e:
        return type(e).__name__
    return None
