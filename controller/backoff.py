"""Exponential backoff with jitter, and what a server's `Retry-After` does to it: the one rule for every retry loop.

Odin retries in several places that talk to something that may be down or busy: the Kubernetes API client (429, 5xx,
dropped connections), its watches (reconnects), the commit-status notifiers (provider 5xx and rate limits) and the
engine (the store went away). They all wait `initial * factor**attempt`, capped at `maximum`, minus a random share
(`jitter`) so that a fan-out's retries spread out instead of arriving together. Each caller owns only its numbers.

The engine's *task* retries are not here on purpose: `decide` must stay free of randomness, so
`odin.controller.engine.decide.RetryPolicy` derives its jitter from the task name instead.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before retry number `attempt` (0 = the first retry).

    `jitter` is the random fraction of each delay: 0 waits exactly the capped exponential, 0.5 ("equal jitter") waits
    between half of it and all of it. A `Retry-After` longer than `max_retry_after` is capped, so a confused server
    cannot park a worker for hours.
    """

    initial: float
    maximum: float
    factor: float = 2.0
    jitter: float = 0.5
    max_retry_after: float = math.inf

    def ceiling(self, attempt: int) -> float:
        """The delay before jitter: exponential in `attempt`, never above `maximum` (nor overflowing)."""
        try:
            raw = self.initial * self.factor ** max(0, attempt)
        except OverflowError:
            return self.maximum
        return min(self.maximum, raw)

    def delay(self, attempt: int) -> float:
        """The jittered delay before retry `attempt`."""
        ceiling = self.ceiling(attempt)
        if not self.jitter:
            return ceiling
        return random.uniform(ceiling * (1.0 - self.jitter), ceiling)  # noqa: S311 (jitter, not cryptography)

    def retry_after(self, seconds: float) -> float:
        """A server's `Retry-After`, as this loop honours it: not negative, capped at `max_retry_after`."""
        return min(self.max_retry_after, max(0.0, seconds))

    def next_delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The backoff, but never shorter than the server's `Retry-After` (capped) when it sent one."""
        delay = self.delay(attempt)
        return delay if retry_after is None else max(self.retry_after(retry_after), delay)
