"""Fans committed events out to WebSocket connections, on the server's event loop.

Two sources feed the hub, and each event reaches each connection at most once:
- the in-process `EventBus`, which the engine publishes to right after it commits: this is what makes run and task
  changes reach subscribers within milliseconds. The bus calls from the engine thread; the hub hops onto the loop
  with one `call_soon_threadsafe` per event, whatever the number of connections;
- a tail of the `events` table every `poll_interval` seconds, for everything the bus does not carry: commits seen by
  the sync without runs, repository conditions, and all changes made by other replicas (the engine runs on the
  leader only). It re-reads a small window behind its cursor, because ids are allocated before commit and a slower
  transaction can commit a lower id after a higher one. (Runs created and cancel requests made in this process are
  published on the bus by the controller before the engine acts on them, so they arrive in order.)

An event is encoded to JSON once and the same string is queued to every matching connection; when several events
wait in a connection's queue (an engine step commits many at once), they leave as one `events` message, which is
what keeps fan-out to hundreds of subscribers within milliseconds. Each connection has a bounded queue: a client
that does not read fast enough is disconnected (with a message telling it to reconnect with `since`) instead of
making the server buffer without limit or making anyone else wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy.engine import Engine as DbEngine

from odin.api.ws.protocol import encode
from odin.controller.bus import EventBus, EventDict
from odin.controller.store.db import StoreUnavailable
from odin.controller.store.models import EVENTS

log = logging.getLogger(__name__)

_TAIL_OVERLAP = 100  # ids re-read behind the cursor (late commits of earlier ids)
_TAIL_BATCH = 5000
_SEEN = 50_000  # ids remembered for de-duplication, hub-wide and per connection
REPLAY_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    run: str | None = None
    commit: str | None = None  # lower-case prefix or full sha
    all: bool = False

    def matches(self, event: Mapping[str, Any]) -> bool:
        if self.all:
            return True
        if self.run is not None and event.get("run_id") == self.run:
            return True
        sha = event.get("commit_sha")
        return self.commit is not None and isinstance(sha, str) and sha.startswith(self.commit)

    def where(self) -> sa.ColumnElement[bool]:
        if self.all:
            return sa.true()
        if self.run is not None:
            return EVENTS.c.run_id == self.run
        assert self.commit is not None
        if len(self.commit) == 40:
            return EVENTS.c.commit_sha == self.commit
        return sa.and_(EVENTS.c.commit_sha >= self.commit, EVENTS.c.commit_sha < self.commit + "g")


class _Seen:
    """A bounded set: the last `size` ids added."""

    def __init__(self, size: int) -> None:
        self._set: set[int] = set()
        self._order: deque[int] = deque()
        self._size = size

    def add(self, key: int) -> bool:
        """False when `key` was already there."""
        if key in self._set:
            return False
        self._set.add(key)
        self._order.append(key)
        if len(self._order) > self._size:
            self._set.discard(self._order.popleft())
        return True


class Connection:
    """One client's subscriptions and outgoing queue. Used only on the event loop."""

    def __init__(self, queue_size: int) -> None:
        self.maxsize = queue_size
        self.subscriptions: dict[str, Subscription] = {}
        self.too_slow = asyncio.Event()
        self._items: deque[str] = deque()
        self._ready = asyncio.Event()
        self._sent = _Seen(_SEEN)
        self._held: list[tuple[int, str]] | None = None  # events arriving during a replay

    @property
    def waiting(self) -> int:
        return len(self._items)

    async def take(self, limit: int) -> list[str]:
        """The messages waiting to be sent (at least one, at most `limit`), oldest first."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return [self._items.popleft() for _ in range(min(limit, len(self._items)))]

    def offer(self, event: Mapping[str, Any], data: str) -> None:
        if not any(s.matches(event) for s in self.subscriptions.values()):
            return
        if self._held is not None:
            self._held.append((int(event["id"]), data))
            if len(self._held) > self.maxsize + REPLAY_LIMIT:
                self.too_slow.set()
            return
        self.deliver(int(event["id"]), data)

    def deliver(self, event_id: int, data: str) -> None:
        if self.too_slow.is_set() or not self._sent.add(event_id):
            return
        self.send(data)

    def send(self, data: str) -> None:
        if len(self._items) >= self.maxsize:
            self.too_slow.set()
            return
        self._items.append(data)
        self._ready.set()

    def hold(self) -> None:
        """Queue live events aside while stored ones are replayed, so they follow the replay in order."""
        self._held = []

    def release(self) -> None:
        held, self._held = self._held or [], None
        for event_id, data in held:
            self.deliver(event_id, data)


def event_json(event: Mapping[str, Any]) -> dict[str, Any]:
    """The public shape of an event: {id, time, kind, run_id, task, commit_sha, data}."""
    return {
        "id": int(event["id"]),
        "time": event.get("time"),
        "kind": event.get("kind"),
        "run_id": event.get("run_id"),
        "task": event.get("task"),
        "commit_sha": event.get("commit_sha"),
        "data": event.get("data") or {},
    }


class EventJson(str):
    """One event's JSON object, queued as is; the sender wraps one in an `event` message, several in `events`."""

    __slots__ = ()


def event_message(event: Mapping[str, Any]) -> EventJson:
    return EventJson(encode(event_json(event)).decode())


def wrap(events: list[EventJson]) -> str:
    if len(events) == 1:
        return '{"type":"event","event":' + events[0] + "}"
    return '{"type":"events","events":[' + ",".join(events) + "]}"


class EventHub:
    def __init__(self, db: DbEngine, bus: EventBus | None, *, poll_interval: float = 0.25) -> None:
        self.db = db
        self.bus = bus
        self.poll_interval = poll_interval
        self.connections: set[Connection] = set()
        self._seen = _Seen(_SEEN)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._tail_task: asyncio.Task[None] | None = None
        self._cursor = 0

    # -- lifecycle (on the event loop) ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._cursor = await anyio.to_thread.run_sync(self._max_id)
        except StoreUnavailable as e:
            log.warning("websocket hub: cannot read the events table yet (%s); will retry", e)
        if self.bus is not None:
            self._unsubscribe = self.bus.subscribe(self._from_bus)
        self._tail_task = asyncio.create_task(self._tail(), name="odin-ws-tail")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._tail_task is not None:
            self._tail_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tail_task
            self._tail_task = None

    def connect(self, queue_size: int) -> Connection:
        conn = Connection(queue_size)
        self.connections.add(conn)
        return conn

    def disconnect(self, conn: Connection) -> None:
        self.connections.discard(conn)

    # -- sources ----------------------------------------------------------------------------------------------------
    def _from_bus(self, event: EventDict) -> None:
        """Called on the engine's thread after its transaction committed."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and self.connections:
            loop.call_soon_threadsafe(self.dispatch, dict(event))

    def dispatch(self, event: Mapping[str, Any]) -> None:
        event_id = event.get("id")
        if not isinstance(event_id, int) or not self._seen.add(event_id):
            return
        if not self.connections:
            return
        data: str | None = None
        for conn in tuple(self.connections):
            if conn.subscriptions:
                data = data or event_message(event)
                conn.offer(event, data)

    async def _tail(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            if not self.connections:
                continue
            try:
                rows = await anyio.to_thread.run_sync(self._read_after, max(0, self._cursor - _TAIL_OVERLAP))
            except StoreUnavailable as e:
                log.warning("websocket hub: cannot read new events (%s)", e)
                continue
            except Exception:
                log.exception("websocket hub: reading new events failed")
                continue
            for row in rows:
                self._cursor = max(self._cursor, int(row["id"]))
                self.dispatch(row)

    # -- the events table (worker threads) -------------------------------------------------------------------------
    def _max_id(self) -> int:
        try:
            with self.db.connect() as conn:
                return int(conn.execute(sa.select(sa.func.max(EVENTS.c.id))).scalar() or 0)
        except sa.exc.OperationalError as e:
            raise StoreUnavailable(str(e.orig).strip().splitlines()[0]) from e

    def _read_after(self, after: int) -> list[dict[str, Any]]:
        try:
            with self.db.connect() as conn:
                rows = conn.execute(
                    sa.select(EVENTS).where(EVENTS.c.id > after).order_by(EVENTS.c.id).limit(_TAIL_BATCH)
                ).all()
        except sa.exc.OperationalError as e:
            raise StoreUnavailable(str(e.orig).strip().splitlines()[0]) from e
        return [dict(r._mapping) for r in rows]

    def replay(self, subscription: Subscription, since: int) -> tuple[list[dict[str, Any]], bool]:
        """Stored events matching `subscription` after `since`, oldest first (at most REPLAY_LIMIT; the flag says
        whether there were more)."""
        try:
            with self.db.connect() as conn:
                rows = conn.execute(
                    sa.select(EVENTS)
                    .where(EVENTS.c.id > since, subscription.where())
                    .order_by(EVENTS.c.id)
                    .limit(REPLAY_LIMIT + 1)
                ).all()
        except sa.exc.OperationalError as e:
            raise StoreUnavailable(str(e.orig).strip().splitlines()[0]) from e
        events = [dict(r._mapping) for r in rows[:REPLAY_LIMIT]]
        return events, len(rows) > REPLAY_LIMIT
