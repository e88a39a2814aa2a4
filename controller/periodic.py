"""`PeriodicWorker`: one background thread that calls a function every so often, the way every loop of the controller
(the schedules, the GPU usage sampler, the retention sweep) wants it done.

Each loop needs the same few things, and getting one of them wrong is how a background thread quietly dies or spins:
a tick that raises must not end the thread; a failure that repeats (the store is down) must not be retried at full
speed nor fill the log with the same traceback every interval; `stop` must return in bounded time; a loop may be woken
early (new work arrived); and a stopped loop can be started again (a replica that loses and regains leadership).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from odin.controller.backoff import Backoff

LOUD_FAILURES = frozenset({1, 10})
"""Consecutive failures logged with their traceback; after these, every `QUIET_EVERY`th (the rest at debug level)."""
QUIET_EVERY = 100
DEFAULT_MAX_BACKOFF = 60.0
"""The longest wait repeated failures bring a loop to, unless its own interval is longer."""


class PeriodicWorker:
    """Calls `tick` on a daemon thread named `name`, every `interval` seconds.

    `pause`, when given, says how long to wait after each successful tick instead (a scheduler waits until its next
    slot, at most its interval). `first_wait`: wait one pause before the first tick (a sampler or a sweep), or tick
    at once (a scheduler, which reads its state when it starts). After `n` failures in a row the wait is at least
    `backoff.delay(n - 1)` (by default the interval doubling up to `DEFAULT_MAX_BACKOFF`), never shorter than the
    normal pause, so a loop that fails keeps its rhythm at first and slows down only if the failures repeat.
    """

    def __init__(
        self,
        name: str,
        tick: Callable[[], object],
        *,
        interval: float,
        pause: Callable[[], float] | None = None,
        first_wait: bool = True,
        backoff: Backoff | None = None,
        logger: logging.Logger | None = None,
        what: str | None = None,
    ) -> None:
        self.name = name
        self.tick = tick
        self.interval = interval
        self.pause = pause or (lambda: self.interval)
        self.first_wait = first_wait
        self.backoff = backoff or Backoff(initial=interval, maximum=max(interval, DEFAULT_MAX_BACKOFF))
        self.log = logger or logging.getLogger(__name__)
        self.what = what or name  # how log lines name the work: "GPU usage sampling", "the retention sweep"
        self.failures = 0  # consecutive failed ticks (0 after a success)
        self.ticks = 0  # ticks completed, failed or not (tests, metrics)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread (again, after `stop`); a worker already running is left alone."""
        if self.running:
            return
        # Fresh events for each thread: one that did not stop in time must not be revived by this start.
        self._stop, self._wake = threading.Event(), threading.Event()
        self.failures = 0
        self._thread = threading.Thread(target=self._main, args=(self._stop, self._wake), name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Ask the thread to end and wait up to `timeout` seconds for the tick in progress; False if it is still
        running then (a tick stuck in I/O: the daemon thread ends with the process)."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return True
        thread.join(timeout)
        if thread.is_alive():
            self.log.warning("%s did not stop within %.0f s; leaving its thread to finish", self.what, timeout)
            return False
        return True

    def wake(self) -> None:
        """Tick now rather than at the end of the current wait."""
        self._wake.set()

    def _main(self, stop: threading.Event, wake: threading.Event) -> None:
        wait = self._next_wait() if self.first_wait else 0.0
        while not _sleep(wait, stop, wake):
            self._run_once()
            wait = self._next_wait()

    def _run_once(self) -> None:
        try:
            self.tick()
        except Exception as e:  # a failed tick must never end the thread: the next one tries again
            self.failures += 1
            self._log_failure(e)
        else:
            if self.failures:  # the warnings said it was failing: say it is not any more
                self.log.info("%s works again after %d failures in a row", self.what, self.failures)
            self.failures = 0
        finally:
            self.ticks += 1

    def _next_wait(self) -> float:
        try:
            wait = max(0.0, self.pause())
        except Exception:  # a pause that cannot be computed: the plain interval
            self.log.exception("%s: cannot compute the next wait; waiting %.0f s", self.what, self.interval)
            wait = self.interval
        if self.failures:
            wait = max(wait, self.backoff.delay(self.failures - 1))
        return wait

    def _log_failure(self, error: Exception) -> None:
        n = self.failures
        loud = n in LOUD_FAILURES or n % QUIET_EVERY == 0
        level = logging.WARNING if loud else logging.DEBUG
        self.log.log(
            level,
            "%s failed (%d in a row on thread %s): %s; trying again",
            self.what,
            n,
            self.name,
            error,
            exc_info=loud,
        )


def _sleep(seconds: float, stop: threading.Event, wake: threading.Event) -> bool:
    """Wait `seconds` or until woken; True when stopping."""
    if seconds > 0:
        wake.wait(seconds)
    wake.clear()
    return stop.is_set()
