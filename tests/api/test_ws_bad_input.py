"""NUL and control characters in WebSocket messages: a clear error, the connection kept, never a traceback.

Over HTTP, `odin.api.inputs` refuses them before any handler runs; a WebSocket message is decoded by the socket's
handler instead, and a NUL that reached the store failed in the driver on Postgres. Real connections to a real
`odin serve`, on SQLite and Postgres.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import connect

from odin.api.client.ws import ws_url
from tests.api.conftest import Served
from tests.api.test_ws import recv_json, run
from tests.api.ws_messages import server_messages_match_the_asyncapi_document  # noqa: F401 (autouse)

# (message, what the error's detail names): each string the server uses, poisoned once.
POISONED: list[tuple[dict[str, Any], str]] = [
    ({"type": "subscribe", "run": "a\0b"}, "NUL"),
    ({"type": "start", "pipeline": "ok\0"}, "NUL"),
    ({"type": "start", "pipeline": "ok", "ref": "ma\0in"}, "NUL"),
    ({"type": "start", "pipeline": "ok", "params": {"who": "a\0b"}}, "NUL"),
    ({"type": "start", "pipeline": "ok", "params": {"w\0ho": "a"}}, "NUL"),
    ({"type": "rerun", "run": "a\0b"}, "NUL"),
    ({"type": "rerun", "run": "ok-1", "task": "t\0"}, "NUL"),
    ({"type": "cancel", "run": "a\0b"}, "NUL"),
    ({"type": "unsubscribe", "subscription": "s\0"}, "NUL"),
    ({"type": "subscribe", "run": "a\nb"}, "control character"),
    ({"type": "subscribe", "run": "a\x1b[2Jb"}, "control character"),
    ({"type": "start", "pipeline": "o\x01k"}, "control character"),
    ({"type": "start", "pipeline": "ok", "ref": "ma\x7fin"}, "control character"),
    ({"type": "cancel", "run": "a\rb"}, "control character"),
]


@pytest.mark.parametrize(("message", "words"), POISONED, ids=[f"{m['type']}-{i}" for i, (m, _) in enumerate(POISONED)])
def test_bad_characters_in_a_message_are_a_400_and_the_connection_stays(
    served: Served, message: dict[str, Any], words: str
) -> None:
    async def scenario() -> None:
        async with connect(
            ws_url(served.url), additional_headers={"Authorization": f"Bearer {served.admin_token}"}
        ) as conn:
            assert (await recv_json(conn))["type"] == "welcome"
            await conn.send(json.dumps({**message, "id": "bad"}))
            reply = await recv_json(conn)
            assert (reply["type"], reply["id"], reply["status"]) == ("error", "bad", 400), reply
            assert words in reply["detail"], reply
            await conn.send('{"type": "ping", "id": "p"}')
            assert await recv_json(conn) == {"type": "pong", "id": "p"}

    run(scenario())


def test_a_nul_in_a_message_id_or_the_first_auth_message_is_refused_clearly(served: Served) -> None:
    async def scenario() -> None:
        async with connect(
            ws_url(served.url), additional_headers={"Authorization": f"Bearer {served.admin_token}"}
        ) as conn:
            assert (await recv_json(conn))["type"] == "welcome"
            await conn.send(json.dumps({"type": "ping", "id": "p\0"}))
            reply = await recv_json(conn)
            assert (reply["type"], reply["status"]) == ("error", 400) and "NUL" in reply["detail"], reply
        async with connect(ws_url(served.url)) as conn:
            await conn.send(json.dumps({"type": "auth", "token": "odin_\0"}))
            reply = await recv_json(conn)
            assert (reply["type"], reply["status"]) == ("error", 4401), reply
            await asyncio.wait_for(conn.wait_closed(), 30)

    run(scenario())


def test_the_server_logged_no_traceback(served: Served) -> None:
    assert "Traceback" not in served.server.log()
