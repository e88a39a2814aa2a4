"""The WebSocket hub against a real store: events leave in id order, once, whatever order their sources report them in.

On Postgres an event id is taken from a sequence before its transaction commits, so a slow transaction can make id
N visible after N+1: the Postgres case holds a real transaction open to show the hub waiting for it, and passing a
gap that never fills (a rollback) after `gap_timeout`; an id passed that way and committed later is pushed then.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from odin.api.ws import hub as hub_module
from odin.api.ws.hub import Connection, EventHub, Subscription
from odin.controller.store.models import EVENTS

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def insert(db: Engine, run_id: str = "r", event_id: int | None = None) -> dict[str, Any]:
    values: dict[str, Any] = {"kind": "task.status", "run_id": run_id, "task": "t", "data": {}}
    if event_id is not None:
        values["id"] = event_id
    with db.begin() as conn:
        new_id = conn.execute(EVENTS.insert().values(**values).returning(EVENTS.c.id)).scalar_one()
        row = conn.execute(sa.select(EVENTS).where(EVENTS.c.id == new_id)).one()
    return dict(row._mapping)


async def received(conn: Connection, count: int, timeout: float = 10) -> list[int]:
    ids: list[int] = []
    deadline = time.monotonic() + timeout
    while len(ids) < count:
        for item in await asyncio.wait_for(conn.take(100), max(0.0, deadline - time.monotonic())):
            ids.append(json.loads(item)["id"])
    return ids


async def nothing_more(conn: Connection, hub: EventHub) -> None:
    """After the tail has read the store twice more, nothing else is queued."""
    for _ in range(2):
        hub._wake.set()
        await asyncio.sleep(0)  # let the tail run (bounded by the outer timeout)
        await asyncio.sleep(hub.poll_interval * 2)
    assert conn.waiting == 0


def test_events_reported_out_of_order_leave_in_id_order_once(db: Engine) -> None:
    async def scenario() -> None:
        before = insert(db)  # written before the hub starts: never pushed live
        hub = EventHub(db, None, poll_interval=0.05, gap_timeout=5)
        await hub.start()
        try:
            assert hub.position == before["id"]
            conn = hub.connect(100)
            conn.subscriptions["a"] = Subscription("a", all=True)
            a, b, c = insert(db), insert(db), insert(db)
            hub.arrive(c)  # the bus reports the last one first: it waits for a and b, read from the store
            hub.arrive(c)
            assert conn.waiting == 0
            assert await received(conn, 3) == [a["id"], b["id"], c["id"]]
            hub.arrive(b)  # late copies of what was dispatched are dropped
            await nothing_more(conn, hub)
        finally:
            await hub.stop()

    run(scenario())


def test_a_gap_that_never_fills_is_passed_after_the_gap_timeout(db: Engine) -> None:
    async def scenario() -> None:
        hub = EventHub(db, None, poll_interval=0.05, gap_timeout=0.5)
        await hub.start()
        try:
            conn = hub.connect(100)
            conn.subscriptions["a"] = Subscription("a", run="r")
            first = insert(db)
            assert await received(conn, 1) == [first["id"]]
            later = insert(db, event_id=first["id"] + 3)  # ids first+1, first+2 never commit
            started = time.monotonic()
            assert await received(conn, 1) == [later["id"]]
            assert time.monotonic() - started >= 0.5, "it waited for the missing ids first"
            late = insert(db, event_id=first["id"] + 1)  # committed too late to go in order: pushed late, once
            assert await received(conn, 1) == [late["id"]]
            hub.arrive(late)  # the bus reporting it too changes nothing
            await nothing_more(conn, hub)
        finally:
            await hub.stop()

    run(scenario())


def test_ids_passed_over_are_looked_for_only_within_the_late_window(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "LATE_WINDOW", 0.2)

    async def scenario() -> None:
        hub = EventHub(db, None, poll_interval=0.05, gap_timeout=0.1)
        await hub.start()
        try:
            conn = hub.connect(100)
            conn.subscriptions["a"] = Subscription("a", all=True)
            first = insert(db)
            later = insert(db, event_id=first["id"] + 2)
            assert await received(conn, 2) == [first["id"], later["id"]]
            deadline = time.monotonic() + 10
            while hub._late and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert not hub._late, "forgotten after the window"
            insert(db, event_id=first["id"] + 1)  # far too late: readable with `since`, not pushed
            await nothing_more(conn, hub)
        finally:
            await hub.stop()

    run(scenario())


def test_a_gap_below_more_rows_than_one_read_is_passed_too(db: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "_TAIL_BATCH", 3)  # one read sees only rows just above the gap

    async def scenario() -> None:
        hub = EventHub(db, None, poll_interval=0.05, gap_timeout=0.3)
        await hub.start()
        try:
            conn = hub.connect(100)
            conn.subscriptions["a"] = Subscription("a", all=True)
            first = insert(db)
            later = [insert(db, event_id=first["id"] + 2 + i)["id"] for i in range(8)]
            assert await received(conn, 9) == [first["id"], *later]
        finally:
            await hub.stop()

    run(scenario())


def test_an_id_committed_after_a_higher_one_is_still_delivered_first(db: Engine) -> None:
    if db.dialect.name != "postgresql":
        return  # SQLite serialises writers: ids become visible in order there
    slow_id: list[int] = []

    async def scenario() -> None:
        hub = EventHub(db, None, poll_interval=0.05, gap_timeout=30)
        await hub.start()
        try:
            conn = hub.connect(100)
            conn.subscriptions["a"] = Subscription("a", all=True)
            with db.connect() as slow:
                tx = slow.begin()
                slow_id.append(
                    slow.execute(
                        EVENTS.insert().values(kind="run.status", run_id="slow", data={}).returning(EVENTS.c.id)
                    ).scalar_one()
                )
                fast = insert(db)  # id slow+1, visible first
                hub.arrive(fast)
                await asyncio.sleep(0.3)  # several tail reads: still waiting for the lower id
                assert conn.waiting == 0
                tx.commit()
            assert await received(conn, 2) == [slow_id[0], fast["id"]]
        finally:
            await hub.stop()

    run(scenario())


def test_with_no_socket_open_the_tail_reads_rarely_and_a_connection_brings_it_back(db: Engine) -> None:
    # Four reads a second of a table nobody listens to were a quarter of an idle server's CPU (500 repositories).
    async def scenario() -> None:
        idle = EventHub(db, None, poll_interval=0.01, idle_interval=3600)
        busy = EventHub(db, None, poll_interval=0.01, idle_interval=3600)
        await idle.start()
        await busy.start()
        try:
            busy.connect(100)
            while busy.tails < 20:  # the connected hub reads every 10 ms (bounded by run's timeout)
                await asyncio.sleep(0.01)
            assert idle.tails <= 1, "no socket: no read every poll interval"
            conn = idle.connect(100)  # wakes the tail at once
            conn.subscriptions["a"] = Subscription("a", all=True)
            event = insert(db)
            assert await received(conn, 1) == [event["id"]]  # read from the store: there is no bus
            tails = idle.tails
            while idle.tails < tails + 5:
                await asyncio.sleep(0.01)
        finally:
            await idle.stop()
            await busy.stop()

    run(scenario())
