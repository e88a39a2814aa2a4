"""A bounded line for `POST /v1/validate`: validations run in threads of their own, and a full line answers 503.

A validation of a large file waits for one of the validator's worker processes (`ODIN_VALIDATION_WORKERS`), and it
waits in a thread. With no bound, a viewer who sends a hundred hostile files at once held a hundred threads, taken
from the pool that every other route's store and git calls use, and `GET /v1/runs` queued behind them. So:

- validations get their own threads, as many as may be in flight (`running + waiting`), never another route's;
- a request that finds `running + waiting` validations already in flight is refused at once with `ValidationBusy`
  (503 with Retry-After), before a thread is taken: a queue that grows holds threads, which is what a flood wants.

A slot is freed when the validation itself ends, not when its client stops waiting: a client that disconnects does
not free a thread that is still validating its file.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

RETRY_AFTER_SECONDS = 5


class ValidationBusy(Exception):
    """Every validation slot is in use and the line is full; the client should retry later (503)."""


class ValidationQueue:
    """At most `running + waiting` validations in flight, each in a thread of this queue's own pool."""

    def __init__(self, running: int, waiting: int) -> None:
        self.running = max(running, 1)
        self.waiting = max(waiting, 0)
        self.capacity = self.running + self.waiting
        self._in_flight = 0
        self._lock = threading.Lock()
        self._threads = ThreadPoolExecutor(max_workers=self.capacity, thread_name_prefix="odin-validate")

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def run(self, fn: Callable[..., T], /, *args: Any) -> T:
        """`fn(*args)` in one of the queue's threads; `ValidationBusy` at once when the line is full."""
        with self._lock:
            if self._in_flight >= self.capacity:
                raise ValidationBusy(
                    f"{self._in_flight} validations are running or waiting for one of the {self.running} validation "
                    f"workers, the most this server queues (ODIN_VALIDATION_QUEUE={self.waiting}); "
                    f"retry in {RETRY_AFTER_SECONDS} s"
                )
            self._in_flight += 1
        try:
            future = self._threads.submit(functools.partial(contextvars.copy_context().run, fn, *args))
        except BaseException:
            self._release()
            raise
        # Freed when the call ends, or when it is cancelled before it started (its caller went away while waiting).
        future.add_done_callback(self._done)
        return await asyncio.wrap_future(future)

    def _done(self, future: Future[Any]) -> None:
        self._release()

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def close(self) -> None:
        """Stop taking work; validations in flight run to their end."""
        self._threads.shutdown(wait=False, cancel_futures=True)
