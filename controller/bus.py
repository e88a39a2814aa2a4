"""In-process publish/subscribe of state changes, after they are committed to the store.

The engine runs in a thread; WebSocket handlers run on the server's asyncio loop. Subscribers are plain callables
(an async subscriber wraps `loop.call_soon_threadsafe` itself), so the bus stays ignorant of asyncio. Publishing
never blocks on a slow subscriber: a subscriber that raises is logged and dropped from nothing else.

Events published here are exactly the rows appended to the `events` table (with their id), so a client can catch
up from the table and then follow the bus without gaps or duplicates.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

EventDict = Mapping[str, Any]
Subscriber = Callable[[EventDict], None]


class EventBus:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[int, Subscriber] = {}
        self._ids = itertools.count(1)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Register; returns the function that unsubscribes."""
        with self._lock:
            key = next(self._ids)
            self._subscribers[key] = subscriber

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(key, None)

        return unsubscribe

    def publish(self, event: EventDict) -> None:
        with self._lock:
            subscribers = list(self._subscribers.values())
        for sub in subscribers:
            try:
                sub(event)
            except Exception:
                log.exception("event subscriber failed (event %s)", event.get("kind"))
