"""Fans committed events out to WebSocket connections, on the server's event loop, in id order, each event once.

The store is the truth: the hub delivers the `events` table's rows in id order. It keeps one position, the highest
id up to which everything has been dispatched, and two sources tell it about rows after that position:
- the in-process `EventBus`, which the engine (and the API's own writes) publish to right after they commit: this is
  what makes run and task changes reach subscribers within milliseconds. The bus calls from a writer's thread; the
  hub hops onto the loop with one `call_soon_threadsafe` per event, whatever the number of connections;
- a tail of the `events` table every `poll_interval` seconds (at once when the bus shows a gap), for everything the
  bus does not carry: changes made by other processes and replicas, and bus events published out of order.

An event arriving above a gap (ids are allocated before commit, so on Postgres a slower transaction can commit a lower
id after a higher one) waits until the gap is filled from the store; a gap still open after `gap_timeout` seconds is
taken as ids that will never appear (a rolled-back transaction, a sequence jump after a crash) and passed. The ids
passed are still looked for, at each tail, for `LATE_WINDOW` seconds: one that commits late after all (a transaction
stalled on a loaded machine) is pushed then, out of id order, rather than never. With no socket open the tail runs
every `idle_interval` seconds instead (5 s: four reads a second of a table nobody listens to cost an idle server a
quarter of a second of CPU every 30 s), and the first connection wakes it; the position it keeps is then at most that
old, and whatever lies beyond it is read at once (a subscription's `catch_up`, the gap the next live event shows).

A subscription starts from the store too: with `since`, the handler first brings the position up to the store's last
committed id (`catch_up`), then replays the stored events in (since, position] while live events above the position
wait (`Connection.hold`); without it, from the store's current last id. Each
subscription then passes only ids above its own start, and each connection remembers what it sent, so an event
matching several subscriptions, or replayed after it was pushed, goes out once.

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
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from odin.api.ws.protocol import encode
from odin.controller.bus import EventBus, EventDict
from odin.controller.store import events as store
from odin.controller.store.db import DbEngine, StoreUnavailable
from odin.controller.store.run_queries import run_exists

log = logging.getLogger(__name__)

_TAIL_BATCH = 5000
_SEEN = 50_000  # ids remembered per connection, so a replay never repeats what was pushed live
REPLAY_LIMIT = 10_000
# Seconds an event waits for a lower id to commit before that id is taken as never coming. Rollbacks are rare; a
# transaction committing seconds after it took its id is not, on a loaded machine (1 s lost task updates in CI:
# a live view showed a running task as `starting` until its 30 s safety re-read).
GAP_TIMEOUT = 5.0
# Seconds ids passed over by a gap are still looked for (each tail reads them by id), and how many at most.
LATE_WINDOW = 120.0
_LATE_MAX = 10_000


IDLE_TAIL = 5.0
"""Seconds between two reads of the events table while no socket is open (`poll_interval` while one is)."""


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    run: str | None = None
    commit: str | None = None  # lower-case prefix or full sha
    all: bool = False
    after: int = 0  # live events with ids up to this one are not this subscription's (replayed, or from before it)

    def matches(self, event: Mapping[str, Any]) -> bool:
        if self.all:
            return True
        if self.run is not None and event.get("run_id") == self.run:
            return True
        sha = event.get("commit_sha")
        return self.commit is not None and isinstance(sha, str) and sha.startswith(self.commit)

    def wants(self, event: Mapping[str, Any]) -> bool:
        return int(event["id"]) > self.after and self.matches(event)

    def scope(self) -> tuple[str | None, str | None]:
        """The (run, commit) whose stored events it covers, as `odin.controller.store.events.events_between` takes
        them: (None, None) for all."""
        if self.all:
            return None, None
        if self.run is not None:
            return self.run, None
        assert self.commit is not None
        return None, self.commit


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
        self._held: list[tuple[Mapping[str, Any], str]] | None = None  # live events arriving during a replay
        self._starting: Subscription | None = None  # the subscription being set up while events are held

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
        """A live event, in id order: queued once if a subscription wants it (held while a replay is read)."""
        if self._held is not None:
            if (self._starting is not None and self._starting.matches(event)) or any(
                s.matches(event) for s in self.subscriptions.values()
            ):
                self._held.append((event, data))
            if len(self._held) > self.maxsize + REPLAY_LIMIT:
                self.too_slow.set()
            return
        if any(s.wants(event) for s in self.subscriptions.values()):
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

    def hold(self, starting: Subscription | None = None) -> None:
        """Queue live events aside (those for the subscriptions, or for `starting`) while stored ones are read, so
        they follow the replay in order."""
        self._held, self._starting = [], starting

    def release(self) -> None:
        held, self._held, self._starting = self._held or [], None, None
        for event, data in held:
            self.offer(event, data)


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
    def __init__(
        self,
        db: DbEngine,
        bus: EventBus | None,
        *,
        poll_interval: float = 0.25,
        gap_timeout: float = GAP_TIMEOUT,
        idle_interval: float = IDLE_TAIL,
    ) -> None:
        self.db = db
        self.bus = bus
        self.poll_interval = poll_interval
        self.idle_interval = idle_interval
        self.tails = 0  # reads of the store by the tail (tests)
        self.gap_timeout = gap_timeout
        self.connections: set[Connection] = set()
        self.position: int | None = None  # every event id up to here has been dispatched (None: store not read yet)
        self._pending: dict[int, Mapping[str, Any]] = {}  # arrived above a gap, waiting for it to fill
        self._gap: tuple[int, float] | None = None  # (position, monotonic time) when the current gap was seen
        self._late: dict[int, float] = {}  # ids passed as never coming -> when; looked for until LATE_WINDOW
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._tail_task: asyncio.Task[None] | None = None

    # -- lifecycle (on the event loop) ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            await self.ready()
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

    async def ready(self) -> int:
        """The position, read from the store (its last id) the first time. Raises `StoreUnavailable`."""
        if self.position is None:
            last = await anyio.to_thread.run_sync(self.last_id)
            if self.position is None:
                self.position = last
        return self.position

    def connect(self, queue_size: int) -> Connection:
        conn = Connection(queue_size)
        if not self.connections:
            self._wake.set()  # the tail waits `idle_interval` while no socket is open: back to `poll_interval` now
        self.connections.add(conn)
        return conn

    def disconnect(self, conn: Connection) -> None:
        self.connections.discard(conn)

    # -- sources ----------------------------------------------------------------------------------------------------
    def _from_bus(self, event: EventDict) -> None:
        """Called on a writer's thread after its transaction committed. Unneeded with no socket open: the tail
        keeps the position."""
        loop = self._loop
        if loop is not None and not loop.is_closed() and self.connections:
            loop.call_soon_threadsafe(self.arrive, dict(event))

    def arrive(self, event: Mapping[str, Any]) -> None:
        """A committed event, from either source, in any order: dispatched in id order, once."""
        event_id = event.get("id")
        if not isinstance(event_id, int) or self.position is None or event_id <= self.position:
            return
        self._pending[event_id] = event
        self._advance()

    def _advance(self) -> None:
        assert self.position is not None
        while self._pending:
            event = self._pending.pop(self.position + 1, None)
            if event is None:
                break
            self.position += 1
            self.dispatch(event)
        if not self._pending:
            self._gap = None
        elif self._gap is None or self._gap[0] != self.position:
            self._gap = (self.position, time.monotonic())
            self._wake.set()  # read the store now: the missing ids are usually committed already

    def _pass_gap(self) -> None:
        """Give up on ids that did not commit within `gap_timeout`: later events must not wait for ever."""
        assert self.position is not None and self._pending
        lowest = min(self._pending)
        log.info(
            "websocket hub: event ids %d..%d did not appear within %gs (rolled back, or committed too late to "
            "be pushed live; they stay readable with since)",
            self.position + 1,
            lowest - 1,
            self.gap_timeout,
        )
        now = time.monotonic()
        for missing in range(self.position + 1, min(lowest, self.position + 1 + _LATE_MAX)):
            self._late[missing] = now
        while len(self._late) > _LATE_MAX:
            del self._late[next(iter(self._late))]
        self.position = lowest - 1
        self._advance()

    def _arrive_late(self, rows: list[dict[str, Any]]) -> None:
        """Events whose ids were passed as never coming, found committed after all: pushed now, out of id order
        (each connection still sends an id once)."""
        for row in rows:
            if self._late.pop(int(row["id"]), None) is not None:
                log.info("websocket hub: event %d committed late; pushed out of id order", row["id"])
                self.dispatch(row)

    def dispatch(self, event: Mapping[str, Any]) -> None:
        if not self.connections:
            return
        data: str | None = None
        for conn in tuple(self.connections):
            if conn.subscriptions:
                data = data or event_message(event)
                conn.offer(event, data)

    async def _tail(self) -> None:
        # The tail runs every poll interval (a quarter second): during a database outage a warning each time would
        # bury every other line of the log, so the outage is reported once when it starts and once when it ends.
        failures = 0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake.wait(), self.poll_interval if self.connections else self.idle_interval
                )
            self._wake.clear()
            self.tails += 1
            try:
                await self._read_store()
                if failures:
                    log.info("websocket hub: reading new events again (after %d failed reads)", failures)
                    failures = 0
            except StoreUnavailable as e:
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "websocket hub: cannot read new events (%s); retrying quietly until it can", e)
            except Exception:
                log.exception("websocket hub: reading new events failed")

    async def catch_up(self) -> None:
        """Dispatch what the store holds beyond the position now, instead of at the next tail: a subscription with
        `since` then replays every event committed before it was asked for (the bus does not run while no socket
        is open, and a busy machine can delay the tail by more than its interval)."""
        await self._read_store()

    async def _read_store(self) -> None:
        position = await self.ready()
        rows = await anyio.to_thread.run_sync(self._read_after, position)
        for row in rows:
            self.arrive(row)
        if self._gap is not None and time.monotonic() - self._gap[1] >= self.gap_timeout:
            self._pass_gap()
        if self._late:
            expired = time.monotonic() - LATE_WINDOW
            self._late = {i: t for i, t in self._late.items() if t > expired}
            if self._late:
                self._arrive_late(await anyio.to_thread.run_sync(self._read_ids, tuple(self._late)))
        if len(rows) == _TAIL_BATCH and self._gap is None:
            self._wake.set()  # more to read (above a gap the same rows would come back: wait for it instead)

    # -- the store (worker threads) --------------------------------------------------------------------------------
    def last_id(self) -> int:
        """The store's highest event id: where a live-only subscription starts."""
        return store.last_event_id(self.db)

    def run_exists(self, run_id: str) -> bool:
        return run_exists(self.db, run_id)

    def _read_after(self, after: int) -> list[dict[str, Any]]:
        return store.events_after(self.db, after, limit=_TAIL_BATCH)

    def _read_ids(self, ids: tuple[int, ...]) -> list[dict[str, Any]]:
        return store.events_with_ids(self.db, ids)

    def replay(self, subscription: Subscription, since: int, upto: int) -> tuple[list[dict[str, Any]], bool]:
        """Stored events matching `subscription` with since < id <= upto, oldest first (at most REPLAY_LIMIT; the
        flag says whether there were more)."""
        run, commit = subscription.scope()
        rows = store.events_between(self.db, since, upto, run=run, commit=commit, limit=REPLAY_LIMIT + 1)
        return rows[:REPLAY_LIMIT], len(rows) > REPLAY_LIMIT
