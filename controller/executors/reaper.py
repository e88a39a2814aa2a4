"""One thread that notices when any of many processes ends, instead of one waiting thread per process.

Linux gives every process a pollable file descriptor (`pidfd_open`, kernel >= 5.3); a single selector over all of
them wakes exactly when one exits, for our children and for processes adopted after a restart alike (which are not
our children and cannot be `wait()`ed). Where pidfds are unavailable, a watcher thread per process is the fallback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

OnExit = Callable[[], None]


def pidfd_supported() -> bool:
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


class Reaper:
    """Calls `on_exit` (on the reaper's thread) once the process `pid` has ended."""

    def __init__(self) -> None:
        self._use_pidfd = pidfd_supported()
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._pending: list[tuple[int, OnExit]] = []
        self._stopping = False
        self._thread: threading.Thread | None = None

    def watch(self, pid: int, on_exit: OnExit) -> None:
        if not self._use_pidfd:
            threading.Thread(target=self._poll_one, args=(pid, on_exit), daemon=True).start()
            return
        with self._lock:
            self._pending.append((pid, on_exit))
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name="odin-reaper", daemon=True)
                self._thread.start()
        with contextlib.suppress(BlockingIOError):
            os.write(self._wake_w, b"x")

    def stop(self) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _main(self) -> None:
        while not self._stopping:
            for key, _ in self._selector.select():
                if key.data is None:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                    continue
                self._selector.unregister(key.fd)
                os.close(key.fd)
                self._fire(key.data)
            with self._lock:
                pending, self._pending = self._pending, []
            for pid, on_exit in pending:
                try:
                    fd = os.pidfd_open(pid)
                except ProcessLookupError:
                    self._fire(on_exit)  # already gone
                    continue
                self._selector.register(fd, selectors.EVENT_READ, on_exit)

    @staticmethod
    def _fire(on_exit: OnExit) -> None:
        try:
            on_exit()
        except Exception:
            log.exception("process exit handler failed")

    def _poll_one(self, pid: int, on_exit: OnExit) -> None:
        import psutil  # the fallback without pidfds only: off every start-up where Linux has them (~5 ms)

        while psutil.pid_exists(pid):
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.2)
        self._fire(on_exit)
