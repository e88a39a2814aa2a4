"""The client's own request budget: a token bucket in front of every request the executor sends.

Why a client-side limit when the apiserver has priority and fairness (APF): APF protects the server by queueing and
then answering 429, which costs the cluster a request each time and makes a busy controller look like a flood to every
other tenant of the same priority level. client-go controllers therefore pace themselves (`rest.Config.QPS`/`Burst`);
Odin does the same, with `ODIN_KUBE_QPS` and `ODIN_KUBE_BURST` (kube-scheduler's 50 and 100 by default: client-go's
bare 5 and 10 would take half an hour to start 10,000 pods).

Semantics are those of client-go's `flowcontrol.NewTokenBucketRateLimiter` (golang.org/x/time/rate): the bucket
holds up to `burst` tokens, refilled at `qps` per second; each request takes one, and waits for it when the bucket is
empty. Waiting is by reservation, so concurrent callers are served in arrival order and never wake together only to
find the bucket empty again: N requests take at least `(N - burst) / qps` seconds. Retries take a token each, as
client-go's do. A watch takes one when it opens and none while it streams.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class RateLimiterStopped(Exception):
    """The wait for a token was cut short: the executor is shutting down."""


class TokenBucket:
    """`acquire()` blocks until a request may be sent. `qps` <= 0 means no limit (every acquire returns at once)."""

    def __init__(
        self,
        qps: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        stopping: threading.Event | None = None,
    ) -> None:
        if burst < 1:
            raise ValueError(f"burst must be at least 1 (got {burst})")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._stopping = stopping or threading.Event()
        self._lock = threading.Lock()
        self._tokens = float(burst)  # a fresh client may send a burst at once, as client-go's may
        self._last = clock()
        self.waited = 0.0  # seconds callers spent waiting for tokens, in all (for benchmarks and logs)
        self.acquired = 0

    @property
    def limited(self) -> bool:
        return self.qps > 0

    def reserve(self) -> float:
        """Take a token now, possibly one not yet refilled; returns how many seconds the caller must wait."""
        with self._lock:
            self.acquired += 1
            if not self.limited:
                return 0.0
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1.0
            delay = 0.0 if self._tokens >= 0 else -self._tokens / self.qps
            self.waited += delay
            return delay

    def acquire(self) -> None:
        """Wait for one token; raises `RateLimiterStopped` if the executor stops meanwhile."""
        delay = self.reserve()
        if delay > 0 and self._stopping.wait(delay):
            raise RateLimiterStopped("the executor is shutting down")
