"""The WebSocket API over real connections: authentication, subscriptions, replay, commands, errors."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from odin.api.client import ApiError, ConnectionLost, OdinWebSocket
from odin.api.client.ws import ws_url
from odin.api.schemas import EventOut
from tests.api.conftest import JWT_SECRET, Served
from tests.api.ws_messages import server_messages_match_the_asyncapi_document  # noqa: F401 (autouse)

T = TypeVar("T")
TIMEOUT = 30.0


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, 120))  # type: ignore[arg-type]


async def until_run_ends(ws: OdinWebSocket, run_id: str) -> list[EventOut]:
    events: list[EventOut] = []
    while True:
        event = await ws.next_event(TIMEOUT)
        if event.run_id == run_id:
            events.append(event)
            if event.kind == "run.status" and event.data.get("status") in ("succeeded", "failed", "cancelled"):
                return events


async def recv_json(conn: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await asyncio.wait_for(conn.recv(), TIMEOUT))
    return message


def test_start_a_run_and_follow_it_live(served: Served) -> None:
    async def scenario() -> None:
        async with await OdinWebSocket.connect(served.url, served.admin_token) as ws:
            assert (ws.user, ws.role) == ("admin", "admin")
            await ws.subscribe(all=True)
            started = await ws.start("ok", params={"who": "ws"})
            assert started.trigger == "api" and started.pipeline == "ok"
            events = await until_run_ends(ws, started.id)
            received = time.time()
            kinds = [(e.kind, e.task, e.data.get("status")) for e in events]
            assert ("task.status", "prep", "running") in kinds and kinds[-1] == ("run.status", None, "succeeded")
            assert [e.id for e in events] == sorted({e.id for e in events}), "each event once, in order"
            assert all(e.commit_sha == started.commit_sha for e in events)
            assert received - events[-1].time.timestamp() < 5

    run(scenario())


def test_subscribe_to_a_commit_sees_its_runs_and_the_commit(served: Served) -> None:
    async def scenario() -> None:
        sha = served.remote.head
        async with await OdinWebSocket.connect(served.url, served.admin_token) as ws:
            sha = await asyncio.to_thread(served.remote.commit, {"gate/touch.txt": "x"}, "Touch gate")
            await ws.subscribe(commit=sha[:10])
            seen: list[EventOut] = []
            while not any(e.kind == "run.created" for e in seen):
                seen.append(await ws.next_event(TIMEOUT))
            run_id = next(e.run_id for e in seen if e.kind == "run.created")
            assert run_id is not None
            served.release(run_id)
            rest = await until_run_ends(ws, run_id)
            assert all(e.commit_sha == sha for e in seen + rest)

    run(scenario())


def test_since_replays_stored_events_then_follows_without_gaps_or_duplicates(served: Served) -> None:
    first = served.wait_run(served.start("ok")["id"])
    stored = served.get(f"/v1/runs/{first['id']}/events").json()["items"]

    async def scenario() -> None:
        async with await OdinWebSocket.connect(served.url, served.admin_token) as ws:
            reply = await ws.request({"type": "subscribe", "run": first["id"], "since": 0})
            assert reply["replayed"] == len(stored) and reply["truncated"] is False
            replayed = [await ws.next_event(TIMEOUT) for _ in stored]
            assert [e.id for e in replayed] == [e["id"] for e in stored]
            middle = stored[len(stored) // 2]["id"]
            await ws.subscribe(run=first["id"], since=middle)  # overlaps the first subscription: nothing twice
            rerun = await ws.rerun(first["id"])
            await ws.subscribe(run=rerun.id, since=0)
            live = await until_run_ends(ws, rerun.id)
            assert live[0].kind == "run.created" and [e.id for e in live] == sorted({e.id for e in live})
            with pytest.raises(TimeoutError):
                await ws.next_event(0.3)  # the overlapping replay sent nothing already sent

    run(scenario())


def test_cancel_over_the_websocket_and_command_errors(served: Served) -> None:
    viewer = served.user("wes", "viewer")

    async def scenario() -> None:
        async with await OdinWebSocket.connect(served.url, served.admin_token) as ws:
            started = await ws.start("gate")
            await ws.subscribe(run=started.id, since=0)  # replay: nothing that happened already is missed
            cancelled = await ws.cancel(started.id)
            assert cancelled.id == started.id
            events = await until_run_ends(ws, started.id)
            assert events[-1].data["status"] == "cancelled"
            with pytest.raises(ApiError) as e:
                await ws.cancel(started.id)
            assert e.value.status == 409
            with pytest.raises(ApiError) as e:
                await ws.start("nope")
            assert e.value.status == 404 and "nope" in e.value.detail
            with pytest.raises(ApiError) as e:
                await ws.rerun("no-such-run")
            assert e.value.status == 404
        async with await OdinWebSocket.connect(served.url, viewer) as ws:
            with pytest.raises(ApiError) as e:
                await ws.start("ok")
            assert e.value.status == 403 and "member role" in e.value.detail
            await ws.subscribe(all=True)
            await ws.ping()  # still connected

    run(scenario())


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ("not json", "invalid message"),
        ('{"type": "dance"}', "invalid message"),
        ('{"type": "subscribe", "run": "x", "colour": 1}', "unknown field"),
        ('{"type": "subscribe"}', "exactly one of"),
        ('{"type": "subscribe", "run": "x", "all": true}', "exactly one of"),
        ('{"type": "subscribe", "commit": "zz"}', "invalid message"),
        ('{"type": "unsubscribe", "subscription": "nope"}', "no subscription"),
        ('{"type": "auth", "token": "again"}', "already authenticated"),
    ],
)
def test_bad_messages_get_an_error_and_the_connection_stays(served: Served, message: str, words: str) -> None:
    async def scenario() -> None:
        async with connect(
            ws_url(served.url), additional_headers={"Authorization": f"Bearer {served.admin_token}"}
        ) as conn:
            assert (await recv_json(conn))["type"] == "welcome"
            await conn.send(message)
            reply = await recv_json(conn)
            assert reply["type"] == "error" and words in reply["detail"], reply
            await conn.send('{"type": "ping", "id": "p"}')
            assert await recv_json(conn) == {"type": "pong", "id": "p"}

    run(scenario())


def test_authentication_by_subprotocol_or_first_message(served: Served) -> None:
    async def scenario() -> None:
        async with connect(
            ws_url(served.url),
            subprotocols=["odin.v1", f"bearer.{served.admin_token}"],  # type: ignore[list-item]
        ) as conn:
            assert conn.subprotocol == "odin.v1"
            welcome = await recv_json(conn)
            assert (welcome["type"], welcome["user"]) == ("welcome", "admin")
        async with connect(ws_url(served.url)) as conn:
            await conn.send(json.dumps({"type": "auth", "token": served.admin_token}))
            assert (await recv_json(conn))["type"] == "welcome"
        api = served.post("/v1/auth/tokens", json={"name": "ws"}).json()["token"]
        async with connect(ws_url(served.url)) as conn:
            await conn.send(json.dumps({"type": "auth", "token": api}))
            assert (await recv_json(conn))["role"] == "admin"

    run(scenario())


def forged(seconds: int) -> str:
    now = int(time.time())
    claims = {"sub": "admin", "role": "admin", "iat": now, "nbf": now, "exp": now + seconds}
    claims.update(iss="odin", aud="odin-api", jti=uuid.uuid4().hex, kind="access", uid=1, gen=0)
    return jwt.encode(claims, JWT_SECRET, "HS256")


@pytest.mark.parametrize(
    ("first", "words"),
    [
        ('{"type": "auth", "token": "not-a-token"}', "invalid token"),
        ('{"type": "auth", "token": "odin_unknown"}', "unknown API token"),
        ('{"type": "subscribe", "all": true}', "authenticate first"),
        ("garbage", "first message"),
        (None, "no auth message within"),
    ],
)
def test_unauthenticated_connections_are_closed_with_4401(served: Served, first: str | None, words: str) -> None:
    async def scenario() -> None:
        async with connect(ws_url(served.url)) as conn:
            if first is not None:
                await conn.send(first)
            reply = await recv_json(conn)
            assert reply["type"] == "error" and reply["status"] == 4401 and words in reply["detail"]
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(conn.recv(), TIMEOUT)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401

    run(scenario())


def test_a_connection_ends_when_its_token_expires(served: Served) -> None:
    async def scenario() -> None:
        expired = forged(-3600)
        with pytest.raises(ApiError) as refused:
            await OdinWebSocket.connect(served.url, expired)
        assert refused.value.status == 4401 and "expired" in refused.value.detail
        async with await OdinWebSocket.connect(served.url, forged(2)) as ws:
            await ws.subscribe(all=True)
            with pytest.raises(ConnectionLost) as lost:
                while True:
                    await ws.next_event(TIMEOUT)
            assert lost.value.code == 4401 and "expired" in lost.value.reason

    run(scenario())
