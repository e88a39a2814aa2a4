"""Exactly one scheduler at a time, however many replicas run, and a fence for the one that no longer is.

Every replica serves the API; only the leader runs the engine and the pollers. Each leadership gets an epoch
(`store.leadership`), and the writes that start or change work are refused once that epoch is over, so a leader that
was paused past its lease and wakes up cannot act beside its successor.

On Postgres the leadership is a lease row (`store.leadership.EpochLease`): the leader renews it every third of
`ODIN_LEADER_LEASE`; a follower takes it over when it expires, or at once when the leader's lease connection is gone
(the leader died). On SQLite (one machine by definition) it is an `flock` on a file in the data directory, released by
the kernel when the process dies; each holder still gets a new epoch.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from typing import Protocol

from odin.controller.store.db import DbEngine
from odin.controller.store.leadership import SCHEDULER, EpochLease, Fence, advance_epoch, supports_epoch_leases


class LeaderLock(Protocol):
    @property
    def fence(self) -> Fence | None:
        """The latest leadership's fence (kept after it is lost, so that late writes are refused)."""
        ...

    def try_acquire(self) -> bool: ...
    def held(self) -> bool: ...
    def release(self) -> None: ...


def holder_name() -> str:
    """Who leads, as people read it in the leadership row: host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class FileLeaderLock:
    def __init__(self, path: Path, engine: DbEngine) -> None:
        self.path = path
        self.engine = engine
        self._fd: int | None = None
        self._fence: Fence | None = None

    @property
    def fence(self) -> Fence | None:
        return self._fence

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
        try:
            epoch = advance_epoch(self.engine, SCHEDULER, holder=holder_name())
        except Exception:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        self._fence = Fence(SCHEDULER, epoch)
        return True

    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def leader_lock_for(engine: DbEngine, data_dir: Path, *, lease: float = 10.0) -> LeaderLock:
    """The Postgres lease (`lease` seconds without renewal before a follower takes over), or SQLite's file lock."""
    if supports_epoch_leases(engine):
        return EpochLease(engine, SCHEDULER, ttl=lease, holder=holder_name())
    return FileLeaderLock(data_dir / "leader.lock", engine)
