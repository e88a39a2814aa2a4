"""Exactly one scheduler at a time, however many replicas run.

Every replica serves the API; only the holder of the leader lock runs the engine and the pollers. On Postgres the
lock is a session-level advisory lock held on a dedicated connection (`store.leases.AdvisoryLease`): if that replica
dies, Postgres drops the connection and the lock with it, and another replica takes over. On SQLite (one machine by
definition) it is an `flock` on a file in the data directory, released by the kernel when the process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Protocol

from odin.controller.store.db import DbEngine
from odin.controller.store.leases import AdvisoryLease, supports_advisory_leases

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


def leader_lock_for(engine: DbEngine, data_dir: Path) -> LeaderLock:
    if supports_advisory_leases(engine):
        return AdvisoryLease(engine, LEADER_LOCK_KEY)
    return FileLeaderLock(data_dir / "leader.lock")
