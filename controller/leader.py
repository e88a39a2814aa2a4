"""Exactly one scheduler at a time, however many replicas run.

Every replica serves the API; only the holder of the leader lock runs the engine and the pollers. On Postgres the
lock is a session-level advisory lock held on a dedicated connection: if that replica dies, Postgres drops the
connection and the lock with it, and another replica takes over. On SQLite (one machine by definition) it is an
`flock` on a file in the data directory, released by the kernel when the process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine as DbEngine

log = logging.getLogger(__name__)

LEADER_LOCK_KEY = 0x0D1_0002


class LeaderLock(Protocol):
    def try_acquire(self) -> bool: ...
    def held(self) -> bool: ...
    def release(self) -> None: ...


class FileLeaderLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class PostgresLeaderLock:
    def __init__(self, engine: DbEngine, key: int = LEADER_LOCK_KEY) -> None:
        self.engine = engine
        self.key = key
        self._conn: Any = None

    def try_acquire(self) -> bool:
        if self._conn is not None:
            return self.held()
        conn = self.engine.connect()
        try:
            got = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
            conn.commit()
        except Exception:
            conn.close()
            raise
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


def leader_lock_for(engine: DbEngine, data_dir: Path) -> LeaderLock:
    if engine.dialect.name == "postgresql":
        return PostgresLeaderLock(engine)
    return FileLeaderLock(data_dir / "leader.lock")
