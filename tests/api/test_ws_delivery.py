"""WebSocket delivery follows the store: in id order, each event once, whether or not a socket was open meanwhile.

Each scenario writes events while no socket is open (a run that finishes before anyone connects, a server restart
over the same database), then connects and checks the exact sequence of event ids a client receives against the
store's own list (`GET /v1/runs/{id}/events`). Every scenario ends on a later run whose last event is the barrier:
whatever a buggy hub would have sent late (stale events from its tail) arrives before it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from odin.api.client import ApiError, OdinWebSocket
from odin.api.client.ws import ws_url
from tests.api.conftest import Served, start_server
from tests.api.test_ws import forged
from tests.api.ws_messages import server_messages_match_the_asyncapi_document  # noqa: F401 (autouse)
from tests.support.wait import wait_until

T = TypeVar("T")
TIMEOUT = 30.0
TERMINAL = {"succeeded", "failed", "cancelled", "error"}


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 120))  # type: ignore[arg-type]


def event_ids(served: Served, run_id: str) -> list[int]:
    return [int(e["id"]) for e in served.get(f"/v1/runs/{run_id}/events").json()["items"]]


async def ids_until_run_ends(ws: OdinWebSocket, run_id: str) -> list[int]:
    """Every event id received, in the order received, up to and including `run_id`'s final status."""
    received: list[int] = []
    while True:
        event = await ws.next_event(TIMEOUT)
        received.append(event.id)
        if event.run_id == run_id and event.kind == "run.status" and event.data.get("status") in TERMINAL:
            return received


def start_in_thread(served: Served, pipeline: str) -> Awaitable[dict[str, Any]]:
    return asyncio.to_thread(served.start, pipeline)


def test_a_live_subscriber_gets_nothing_written_before_it_subscribed(served: Served) -> None:
    before = served.wait_run(served.start("ok")["id"])  # finishes while no socket is open

    async def scenario() -> None:
        async with await OdinWebSocket.connect(served.url, served.admin_token) as ws:
            reply = await ws.request({"type": "subscribe", "commit": before["commit_sha"]})
            assert reply["type"] == "subscribed" and "replayed" not in reply
            later = await start_in_thread(served, "ok")
            received = await ids_until_run_ends(ws, later["id"])
            assert received == event_ids(served, later["id"]), "only the new run's events, in order, once"

    run(scenario())


def test_since_after_events_written_with_no_socket_open_gives_each_later_event_once_in_order(served: Served) -> None:
    first = served.wait_run(served.start("ok")["id"])
    stored = event_ids(served, first["id"])
    since = stored[len(stored) // 2]

    async def scenario() -> None:
        async with await OdinWebSocket.connect(served.url, served.admin_token) as ws:
            reply = await ws.request({"type": "subscribe", "commit": first["commit_sha"], "since": since})
            # Everything committed before the subscribe is in the replay, even when the hub has not polled it yet.
            assert reply["replayed"] == len([i for i in stored if i > since])
            later = await start_in_thread(served, "ok")
            received = await ids_until_run_ends(ws, later["id"])
            assert received == [i for i in stored if i > since] + event_ids(served, later["id"])

    run(scenario())


def test_a_second_socket_does_not_receive_what_the_first_missed(served: Served) -> None:
    """One socket open the whole time, another connecting after events were written: each gets exactly its own."""
    first = served.wait_run(served.start("ok")["id"])

    async def scenario() -> None:
        async with await OdinWebSocket.connect(served.url, served.admin_token) as early:
            await early.subscribe(commit=first["commit_sha"])
            middle = served.wait_run((await start_in_thread(served, "ok"))["id"])
            early_ids = await ids_until_run_ends(early, middle["id"])
            assert early_ids == event_ids(served, middle["id"])
            async with await OdinWebSocket.connect(served.url, served.admin_token) as late:
                await late.subscribe(commit=first["commit_sha"], since=event_ids(served, first["id"])[-1])
                last = await start_in_thread(served, "ok")
                expected = event_ids(served, middle["id"])
                late_ids = await ids_until_run_ends(late, last["id"])
                assert late_ids == expected + event_ids(served, last["id"])
                assert await ids_until_run_ends(early, last["id"]) == event_ids(served, last["id"])

    run(scenario())


def test_subscribing_to_a_run_that_does_not_exist_is_an_error(served: Served) -> None:
    async def scenario() -> None:
        async with await OdinWebSocket.connect(served.url, served.admin_token) as ws:
            for since in (None, 0):
                with pytest.raises(ApiError) as missing:
                    await ws.subscribe(run="no-such-run", since=since)
                assert missing.value.status == 404 and "no-such-run" in missing.value.detail
            await ws.ping()  # the connection stays open

    run(scenario())


def test_a_token_expiring_as_the_client_connects_is_closed_cleanly(served: Served) -> None:
    """A token inside the verification leeway is accepted, then found expired at once, while the client is already
    sending: the server closed the socket while its sender still wrote to it, and logged an ERROR traceback."""
    logged = len(served.server.log())

    async def attempt() -> tuple[int, str]:
        conn = await connect(ws_url(served.url), additional_headers={"Authorization": f"Bearer {forged(-5)}"})
        try:
            for i in range(20):
                await conn.send(json.dumps({"type": "ping", "id": str(i)}))
            while True:
                await asyncio.wait_for(conn.recv(), TIMEOUT)
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, "the server closed the connection with a code"
            return closed.rcvd.code, closed.rcvd.reason
        finally:
            await conn.close()

    for _ in range(5):
        code, reason = run(attempt())
        assert code == 4401 and "expired" in reason
    log = wait_until(
        lambda: (tail := served.server.log()[logged:]).count("closed (4401): the token expired") == 5 and tail,
        10,
        message="each closed connection is logged once",
    )
    assert "Traceback" not in log and " ERROR " not in log, log
    assert "INFO    odin.api.ws.handler: websocket of admin from 127.0.0.1 closed (4401)" in log


def test_since_after_a_restart_gives_each_later_event_once_in_order(served: Served) -> None:
    first = served.wait_run(served.start("ok")["id"])
    stored = event_ids(served, first["id"])
    since = stored[2]
    served.server.stop()
    served.server.start()

    async def scenario() -> None:
        async with await OdinWebSocket.connect(served.url, served.admin_token) as ws:
            reply = await ws.request({"type": "subscribe", "commit": first["commit_sha"], "since": since})
            assert reply["replayed"] == len(stored) - 3
            later = await start_in_thread(served, "ok")
            received = await ids_until_run_ends(ws, later["id"])
            assert received == stored[3:] + event_ids(served, later["id"])

    run(scenario())


def test_a_replay_holds_every_event_committed_before_the_subscribe_even_before_the_hub_polls(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The hub's tail runs every ODIN_WS_POLL_INTERVAL; a replay must not depend on it having run (CI saw 7 of 12)."""
    tmp = tmp_path_factory.mktemp("slow-tail")
    slow = start_server(tmp, f"sqlite:///{tmp / 'odin.db'}", "sqlite", {"ODIN_WS_POLL_INTERVAL": "3600"})
    try:
        first = slow.wait_run(slow.start("ok")["id"])  # written while no socket is open: the bus is not listened to
        stored = event_ids(slow, first["id"])

        async def scenario() -> None:
            async with await OdinWebSocket.connect(slow.url, slow.admin_token) as ws:
                reply = await ws.request({"type": "subscribe", "run": first["id"], "since": 0})
                assert reply["replayed"] == len(stored) and reply["truncated"] is False
                assert [(await ws.next_event(TIMEOUT)).id for _ in stored] == stored

        run(scenario())
    finally:
        slow.server.stop()
