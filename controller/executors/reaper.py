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
        self._closed = False
        self._thread: threading.Thread | None = None

    def watch(self, pid: int, on_exit: OnExit) -> None:
        if not self._use_pidfd:
            threading.Thread(target=self._poll_one, args=(pid, on_exit), daemon=True).start()
            return
        with self._lock:
            if self._stopping:  # the executor is shutting down: a restarted one adopts the process by its pid file
                log.debug("reaper stopped: not watching process %d", pid)
                return
            self._pending.append((pid, on_exit))
            if self._thread is None:
                self._thread = threading.Thread(target=self._main, name="odin-reaper", daemon=True)
                self._thread.start()
            with contextlib.suppress(BlockingIOError):  # under the lock: `stop` cannot have closed the pipe
                os.write(self._wake_w, b"x")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching: the thread ends and the descriptors (the wake-up pipe, the selector, the pidfds of processes
        still running) are closed, so a stopped executor holds nothing. Exits after this are not reported; a
        restarted controller adopts those processes by their pid files."""
        with self._lock:
            if self._closed:
                return
            self._stopping = True
            thread = self._thread
            with contextlib.suppress(BlockingIOError):
                os.write(self._wake_w, b"x")
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        if thread is None or not thread.is_alive():
            self._close()
        else:
            log.warning("the reaper thread did not end within %g s; its descriptors stay open", timeout)

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for key in list(self._selector.get_map().values()):
                if key.data is not None:  # a pidfd; the wake-up pipe's end is closed below
                    os.close(key.fd)
            self._selector.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

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
