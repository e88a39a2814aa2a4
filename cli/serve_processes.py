"""`odin serve` with `ODIN_SERVE_PROCESSES` > 1: one port answered by several replica processes of one machine.

Why: a Python process runs its request handling on one core at a time (the GIL), so one `odin serve` saturates a
core at about 1,000 API requests a second however many cores the machine has. More processes answer more, as
gunicorn's or uvicorn's workers do for other Python web applications.

How: the process the user started binds one listening socket per worker to the port (SO_REUSEPORT), then becomes a
small supervisor. Before any thread exists (a fork is only safe then), it forks the workers; each is a whole replica,
exactly as `odin serve` on another machine would be (controller, API, webhooks, WebSocket hub), accepting
connections on its inherited socket, and the kernel spreads new connections over the sockets. One worker leads (the
engine, the pollers and the scheduler run there, `controller/store/leadership.py`); the others answer requests and
take over if it dies.
Replicas share the state through PostgreSQL, so more than one process needs it (SQLite has one process by design).

The supervisor stays single-threaded, so it can fork a replacement for a worker that dies at any time (after a
backoff while they keep dying). SIGTERM or SIGINT to it is passed on once to every worker, which stops gracefully
as a single `odin serve` does; it exits when they all have. Workers run in their own process group, so a Ctrl-C in a
terminal reaches the supervisor alone (the workers are asked once, not twice, which uvicorn would take as "force"),
and they get SIGTERM if the supervisor dies without asking them (`PR_SET_PDEATHSIG`).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

log = logging.getLogger("odin.server")

__all__ = ["Supervisor", "WorkerStartFailed", "bind_listening_sockets"]

START_FAILURE_WINDOW = 10.0
"""A worker that exits with a start-up failure status (1 or 2) this soon after its fork stops the whole server:
what stopped it (a store that cannot be reached, a sandbox that cannot be made) stops its replacement too."""
BACKOFF_MAX = 30.0
"""Longest wait before replacing a worker; the wait doubles with each death in the last minute."""
_PR_SET_PDEATHSIG = 1


class WorkerStartFailed(Exception):
    """Forking workers is refused: a thread already runs in this process, so a fork could copy a held lock."""


def bind_listening_sockets(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` TCP sockets bound to the same (host, port) with SO_REUSEPORT, one per worker: the kernel spreads new
    connections evenly over them. (One socket shared by every worker lets whichever is awake first accept a whole
    burst of connections, and that worker then answers most of the load while the others idle.) The supervisor
    keeps them all, so the connections that reach a worker's socket while it is being replaced wait in its queue.
    Raises OSError (the address is in use, the host is not this machine's) before any fork. As uvicorn binds:
    SO_REUSEADDR; IPv6 when the host has a ':'. Only processes of the same user can join a SO_REUSEPORT group."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(family=family, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((host, port))
            port = sock.getsockname()[1]  # port 0: the one the kernel chose for the first, for all
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _die_with_parent(parent: int) -> None:
    """Ask the kernel for SIGTERM when the supervisor dies, then check it had not died already (the race the man
    page describes). Linux only; elsewhere a worker outlives a supervisor that was killed outright."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
            log.warning("cannot ask for SIGTERM on the supervisor's death: errno %d", ctypes.get_errno())
    if os.getppid() != parent:
        os._exit(0)


@dataclass
class _Worker:
    index: int
    started: float


@dataclass
class Supervisor:
    """Forks `count` workers, each running `serve(index)` (a whole replica; its return value is its exit status),
    replaces those that die, and stops them all on SIGTERM/SIGINT. `run()` returns the exit status of `odin serve`."""

    count: int
    serve: Callable[[int], int]
    _workers: dict[int, _Worker] = field(default_factory=dict)
    _deaths: list[float] = field(default_factory=list)
    _stopping: bool = False
    _status: int = 0

    def run(self) -> int:
        if threading.active_count() > 1:
            names = ", ".join(t.name for t in threading.enumerate() if t is not threading.current_thread())
            raise WorkerStartFailed(f"cannot fork the API workers: threads already run in this process ({names})")
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        # What the workers share stays shared: objects frozen before the fork are never written by the collector,
        # so their pages are not copied into each worker (the gc module's documentation advises this).
        gc.freeze()
        try:
            log.info("serving with %d processes (ODIN_SERVE_PROCESSES); supervisor pid %d", self.count, os.getpid())
            for index in range(self.count):
                self._fork(index)
            self._watch()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self._status

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self._stopping:
            return
        self._stopping = True
        log.info("received signal %s: asking the %d workers to stop", signal.Signals(sig).name, len(self._workers))
        for pid in list(self._workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _fork(self, index: int) -> None:
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            status = 1
            try:
                os.setpgid(0, 0)
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_DFL)
                _die_with_parent(parent)
                status = self.serve(index)
            except BaseException:  # whatever ends a worker, it must not return into the supervisor's code
                log.exception("API worker %d failed", index)
            finally:
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        self._workers[pid] = _Worker(index, time.monotonic())
        log.info("API worker %d started (pid %d)", index, pid)
        if self._stopping:  # a signal came between the fork and the line above: this worker was not asked yet
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def _watch(self) -> None:
        while self._workers:
            try:
                pid, wait_status = os.waitpid(-1, 0)
            except ChildProcessError:
                return
            worker = self._workers.pop(pid, None)
            if worker is None:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            if self._stopping:
                log.info("API worker %d (pid %d) stopped (%s)", worker.index, pid, _describe(code))
                if code not in (0, -signal.SIGTERM):
                    self._status = self._status or 1
                continue
            lived = time.monotonic() - worker.started
            if code in (1, 2) and lived < START_FAILURE_WINDOW:
                log.error(
                    "API worker %d (pid %d) could not start (%s): stopping the other workers", worker.index, pid,
                    _describe(code),
                )  # fmt: skip
                self._status = code
                self._on_signal(signal.SIGTERM, None)
                continue
            delay = self._backoff()
            log.error(
                "API worker %d (pid %d) ended after %.0f s (%s); starting another in %.1f s", worker.index, pid, lived,
                _describe(code), delay,
            )  # fmt: skip
            if self._wait(delay):
                self._fork(worker.index)

    def _backoff(self) -> float:
        now = time.monotonic()
        self._deaths = [t for t in self._deaths if now - t < 60.0] + [now]
        return min(BACKOFF_MAX, 0.5 * 2.0 ** (len(self._deaths) - 1))

    def _wait(self, seconds: float) -> bool:
        """Wait before replacing a worker; False when a stop was asked for meanwhile (nothing is forked then)."""
        deadline = time.monotonic() + seconds
        while not self._stopping and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))  # a signal's handler sets _stopping; the next check sees it
        return not self._stopping


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit status {code}"
