"""The WebSocket protocol as an AsyncAPI 3.0 document: up to date, served, and what the server really sends."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
from websockets.asyncio.client import ClientConnection, connect

from odin.api.client.ws import ws_url
from odin.api.ws.asyncapi import CLIENT_MESSAGES, SERVER_MESSAGES, asyncapi_document, document_text
from tests.api.conftest import Served
from tests.api.ws_messages import problems_with, server_messages_match_the_asyncapi_document  # noqa: F401

FILE = Path(__file__).resolve().parents[2] / "docs" / "websocket.asyncapi.json"
TIMEOUT = 30.0


def test_the_shipped_document_is_the_generated_one() -> None:
    assert FILE.read_text() == document_text(), (
        "docs/websocket.asyncapi.json is stale: .venv/bin/python -m odin.api.ws.asyncapi > docs/websocket.asyncapi.json"
    )


def test_every_message_has_a_valid_json_schema() -> None:
    doc = asyncapi_document()
    assert doc["asyncapi"] == "3.0.0" and doc["channels"]["ws"]["address"] == "/v1/ws"
    names = {str(k.__struct_config__.tag) for k in CLIENT_MESSAGES + SERVER_MESSAGES}
    assert set(doc["channels"]["ws"]["messages"]) == set(doc["components"]["messages"]) == names
    for schema in doc["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    subscribe = {"$ref": "#/components/schemas/Subscribe", "components": doc["components"]}
    jsonschema.validate({"type": "subscribe", "run": "train-3f2a9c1-1", "since": 0}, subscribe)
    start = {"$ref": "#/components/schemas/Start", "components": doc["components"]}
    jsonschema.validate({"type": "start", "pipeline": "train", "params": {"epochs": 300}}, start)
    assert not jsonschema.Draft202012Validator(subscribe).is_valid({"type": "subscribe", "colour": 1})


def test_the_message_check_refuses_what_the_document_does_not_say() -> None:
    assert problems_with('{"type": "pong", "id": "p"}') == []
    assert problems_with('{"type": "pong", "id": "p", "colour": 1}')  # undeclared field
    assert problems_with('{"type": "subscribed", "id": null}')  # missing subscription
    assert problems_with('{"type": "welcome", "protocol": "odin.v1", "user": "a", "role": "root"}')
    assert problems_with('{"type": "hello"}')
    event = {"id": 1, "time": "2024-05-01T12:00:03Z", "kind": "x", "run_id": None, "task": None, "commit_sha": None}
    assert problems_with(json.dumps({"type": "event", "event": {**event, "data": {}}})) == []
    assert problems_with(json.dumps({"type": "events", "events": [{**event, "data": {}, "extra": 1}]}))
    assert problems_with(json.dumps({"type": "event", "event": event}))  # no data


def test_served_beside_the_openapi_document_without_a_token(served: Served) -> None:
    r = httpx.get(f"{served.url}/v1/ws/schema", timeout=30)
    assert r.status_code == 200 and r.json() == json.loads(FILE.read_text())
    assert "/v1/ws/schema" in httpx.get(f"{served.url}/schema/openapi.json", timeout=30).json()["paths"]


def test_every_kind_of_server_message_matches_the_document(served: Served) -> None:
    """Connections that make the server send each message type; the autouse fixture validates every one."""
    seen: set[str] = set()
    headers = {"Authorization": f"Bearer {served.admin_token}"}

    async def receive(conn: ClientConnection, until: str) -> dict[str, Any]:
        while True:
            message: dict[str, Any] = json.loads(await asyncio.wait_for(conn.recv(), TIMEOUT))
            seen.add(message["type"])
            if message["type"] == until:
                return message

    async def commands() -> str:
        async with connect(ws_url(served.url), additional_headers=headers) as conn:
            await receive(conn, "welcome")
            await conn.send(json.dumps({"type": "ping", "id": "p"}))
            await receive(conn, "pong")
            await conn.send(json.dumps({"type": "subscribe", "id": "all", "all": True}))
            await receive(conn, "subscribed")
            await conn.send(json.dumps({"type": "start", "id": "r", "pipeline": "ok", "params": {"n": 3}}))
            run_id = str((await receive(conn, "result"))["run"]["id"])
            await conn.send(json.dumps({"type": "unsubscribe", "subscription": "all"}))
            await receive(conn, "unsubscribed")
            await conn.send(json.dumps({"type": "subscribe", "run": "no-such-run"}))
            await receive(conn, "error")
            return run_id

    async def replays(run_id: str, since: int, until: str) -> None:
        async with connect(ws_url(served.url), additional_headers=headers) as conn:
            await receive(conn, "welcome")
            await conn.send(json.dumps({"type": "subscribe", "run": run_id, "since": since}))
            await receive(conn, until)

    run_id = asyncio.run(commands())
    served.wait_run(run_id)
    ids = [e["id"] for e in served.get(f"/v1/runs/{run_id}/events").json()["items"]]
    asyncio.run(replays(run_id, 0, "events"))  # the replay waits in the queue and leaves as one message
    asyncio.run(replays(run_id, ids[-2], "event"))
    assert seen == {str(k.__struct_config__.tag) for k in SERVER_MESSAGES}
