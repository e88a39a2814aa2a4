"""Every message a server sends over a WebSocket in a test must match the published AsyncAPI document.

WebSocket test modules import `server_messages_match_the_asyncapi_document` (an autouse fixture): it records each
message the test's clients receive — whatever client they use, `OdinWebSocket` or raw `websockets` — and checks
them all at the end against the document's JSON Schemas, including that no field goes undeclared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from websockets.asyncio.connection import Connection

from odin.api.ws.asyncapi import SERVER_MESSAGES, asyncapi_document


def _validators() -> dict[str, tuple[jsonschema.protocols.Validator, set[str]]]:
    components = asyncapi_document()["components"]
    found = {}
    for kind in SERVER_MESSAGES:
        name = str(kind.__struct_config__.tag)
        schema = {"$ref": components["messages"][name]["payload"]["$ref"], "components": components}
        declared = set(components["schemas"][kind.__name__]["properties"])
        found[name] = (jsonschema.Draft202012Validator(schema), declared)
    return found


def problems_with(raw: str | bytes) -> list[str]:
    """What is wrong with one server message, measured against the AsyncAPI document ([] when nothing)."""
    message: Any = json.loads(raw)
    if not isinstance(message, dict) or message.get("type") not in _VALIDATORS:
        return [f"not a declared server message: {raw!r}"]
    validator, declared = _VALIDATORS[message["type"]]
    found = [f"{raw!r}: {e.message} at {list(e.absolute_path)}" for e in validator.iter_errors(message)]
    if undeclared := set(message) - declared:
        found.append(f"{raw!r}: undeclared fields {sorted(undeclared)}")
    event_fields = set(asyncapi_document()["components"]["schemas"]["Event"]["properties"])
    events = [message["event"]] if message["type"] == "event" else message.get("events", [])
    for event in events if message["type"] in ("event", "events") else []:
        if undeclared := set(event) - event_fields:
            found.append(f"{raw!r}: undeclared event fields {sorted(undeclared)}")
    return found


_VALIDATORS = _validators()


@pytest.fixture(autouse=True)
def server_messages_match_the_asyncapi_document(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str | bytes]]:
    received: list[str | bytes] = []
    original = Connection.recv

    async def recording(self: Connection, decode: bool | None = None) -> str | bytes:
        data: str | bytes = await original(self, decode)
        received.append(data)
        return data

    monkeypatch.setattr(Connection, "recv", recording)
    yield received
    problems = [problem for raw in received for problem in problems_with(raw)]
    assert not problems, "server messages that do not match docs/websocket.asyncapi.json:\n" + "\n".join(problems)
