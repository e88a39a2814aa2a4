"""Each user's standing (id, role, disabled, token generation) as the store says, read for every authenticated request.

A signed token proves only that this server issued it once; whether it still counts is the store's answer: a disabled
user, a deleted one, or one whose token generation went up since the login (logout, password change, disabling) is
refused, and the role is the user's role now, not the one at login.

Reading the store on every request would cost a worker-thread round trip and a query, so the answer is kept per user
name for `ttl` seconds (ODIN_AUTH_CACHE_SECONDS). Changes made through this server (`forget`, called by the routes
that change users) take effect at the next request; changes made by another replica or `odin users` within `ttl`.
`forget` also wakes whoever `watch`es the user (open WebSockets), so their sockets are checked at once, and tells
the caches that hold other answers about the user (`on_forget`: the verified API tokens) to drop them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio.to_thread

from odin.api.auth.users import Standing, standing
from odin.controller.store.db import DbEngine


class Standings:
    """The cache of user standings, and the notification of changes to those who watch a user."""

    MAX_ENTRIES = 10_000

    def __init__(self, db: DbEngine, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[str, tuple[Standing | None, float]] = {}
        self._lock = threading.Lock()
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._on_forget: list[Callable[[str], None]] = []

    def on_forget(self, callback: Callable[[str], None]) -> None:
        """Call `callback(username)` whenever a user is forgotten: another cache of answers about users."""
        self._on_forget.append(callback)

    async def get(self, username: str) -> Standing | None:
        """The user's standing (None: no such user), from the cache when fresh, else from the store off the loop."""
        now = self.clock()
        with self._lock:
            cached = self._cache.get(username)
        if cached is not None and now - cached[1] < self.ttl:
            return cached[0]
        found = await anyio.to_thread.run_sync(standing, self.db, username)
        with self._lock:
            if len(self._cache) >= self.MAX_ENTRIES:
                self._cache.clear()
            self._cache[username] = (found, now)
        return found

    def forget(self, username: str) -> None:
        """The user changed: read the store at their next request, and wake their watchers. Call on the loop."""
        with self._lock:
            self._cache.pop(username, None)
        for callback in self._on_forget:
            callback(username)
        for event in self._watchers.get(username, ()):
            event.set()

    @contextmanager
    def watch(self, username: str) -> Iterator[asyncio.Event]:
        """An event set whenever `forget(username)` is called while the block runs (clear it after waking)."""
        event = asyncio.Event()
        self._watchers.setdefault(username, set()).add(event)
        try:
            yield event
        finally:
            watchers = self._watchers.get(username)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    del self._watchers[username]
