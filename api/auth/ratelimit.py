"""Token-bucket rate limiting of login attempts, in process.

Each key (a user name and client address, or an address alone) has a bucket of `per_minute` attempts that refills
continuously, so a person who mistypes a password twice is never slowed down while a script guessing passwords gets
one attempt every few seconds. Every attempt counts, successful or not: a login costs an argon2 hash, and the limit
also bounds the CPU an anonymous client can make the server spend.

A third bucket per user name, whatever the address, counts failures only (a success gives its attempt back with
`refund`): guessing one account's password from many addresses is bounded too, while the account's owner, who
knows the password, does not use it up.

In-process on purpose: it needs no shared store and answers in microseconds. With several replicas behind a load
balancer each replica keeps its own buckets, so the effective limit is `per_minute` times the number of replicas
(see docs/api.md); a shared limiter (Postgres or Redis) is the upgrade path when that matters.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable


class RateLimiter:
    """`acquire(key)` takes one attempt from `key`'s bucket: None when allowed, else seconds to wait."""

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        window: float = 60.0,
    ) -> None:
        """`per_minute` attempts at once, refilled over `window` seconds (60 unless said: hence the name)."""
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        if window <= 0:
            raise ValueError("window must be positive")
        self.capacity = float(per_minute)
        self.rate = per_minute / window  # tokens per second
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def acquire(self, key: Hashable) -> float | None:
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                return (1.0 - tokens) / self.rate
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > self.max_keys:
                self._prune(now)
            return None

    def refund(self, key: Hashable) -> None:
        """Give back one attempt taken from `key` (it turned out not to count: a successful login)."""
        now = self.clock()
        with self._lock:
            found = self._buckets.get(key)
            if found is not None:
                tokens, at = found
                self._buckets[key] = (min(self.capacity, tokens + (now - at) * self.rate + 1.0), now)

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled: they hold nothing a new bucket would not."""
        full_after = self.capacity / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
