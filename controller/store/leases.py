"""Leases the store can hand out: a Postgres session-level advisory lock, held on a connection of its own.

The leader election (`odin.controller.leader`) needs "at most one holder, released when the holder dies". Postgres
gives exactly that: an advisory lock taken at session level lives as long as the connection that took it, so a
replica that dies (or loses the database) loses the lock with it, and another replica's next try gets it. The lease
therefore keeps its connection open for as long as it is held, and checks it is still alive on request.
"""

from __future__ import annotations

import contextlib
import logging

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from odin.controller.store.db import DbEngine, StoreUnavailable

log = logging.getLogger(__name__)


class AdvisoryLease:
    """A Postgres advisory lock on `key`, taken without waiting. Not thread-safe: one owner calls it."""

    def __init__(self, engine: DbEngine, key: int) -> None:
        self.engine = engine
        self.key = key
        self._conn: Connection | None = None

    def try_acquire(self) -> bool:
        """True if this lease holds the lock now (taken now, or still held); `StoreUnavailable` if the database
        cannot be reached."""
        if self._conn is not None:
            return self.held()
        try:
            conn = self.engine.connect()
            try:
                got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
                conn.commit()
            except Exception:
                conn.close()
                raise
        except OperationalError as e:
            raise StoreUnavailable(f"cannot take the advisory lock: {e.orig}") from e
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def held(self) -> bool:
        """Check the lock's connection is alive (the lock dies with it)."""
        if self._conn is None:
            return False
        try:
            self._conn.execute(sa.text("SELECT 1"))
            self._conn.commit()
        except Exception:
            log.error("leader lock connection lost")
            self.release()
            return False
        return True

    def release(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.commit()
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


def supports_advisory_leases(engine: DbEngine) -> bool:
    """Whether this database hands out `AdvisoryLease`s (Postgres does; SQLite, one machine by definition, does not)."""
    return engine.dialect.name == "postgresql"
