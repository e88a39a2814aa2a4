"""The WebSocket protocol as an AsyncAPI 3.0 document, generated from the message types in `protocol`.

The OpenAPI document is the HTTP API's contract; this is the WebSocket's: every client->server and server->client
message with its JSON Schema (from msgspec, so it is what the server decodes and encodes), the channel `/v1/ws`, and
the close codes. It is served at `GET /v1/ws/schema` and shipped as docs/websocket.asyncapi.json; a test keeps the
file equal to what this module generates. Regenerate it with

    .venv/bin/python -m odin.api.ws.asyncapi > docs/websocket.asyncapi.json
"""

from __future__ import annotations

import functools
import json
from typing import Any

import msgspec
from litestar import get

from odin.api.ws import protocol as p

CLIENT_MESSAGES: tuple[type[msgspec.Struct], ...] = (
    p.Auth,
    p.Subscribe,
    p.Unsubscribe,
    p.Start,
    p.Rerun,
    p.Cancel,
    p.Ping,
)
SERVER_MESSAGES: tuple[type[msgspec.Struct], ...] = (
    p.Welcome,
    p.Subscribed,
    p.Unsubscribed,
    p.Result,
    p.Pong,
    p.Error,
    p.EventMessage,
    p.EventsMessage,
)

_SUMMARIES = {
    "auth": "Authenticate (first message, when the token is not in the handshake)",
    "subscribe": "Receive the events of a run, a commit, or everything; `since` replays stored ones first",
    "unsubscribe": "Stop a subscription",
    "start": "Start a run (member role)",
    "rerun": "Rerun a finished run (member role)",
    "cancel": "Cancel a run (member role)",
    "ping": "Check the connection; answered by pong",
    "welcome": "Authenticated: who you are",
    "subscribed": "A subscription started",
    "unsubscribed": "A subscription ended",
    "result": "A command succeeded",
    "pong": "The answer to ping",
    "error": "A request failed, or the connection is being closed (then with the close code as status)",
    "event": "One event",
    "events": "Several events that were waiting together, oldest first",
}

_CLOSE_CODES = (
    "Close codes: 4401 not authenticated (no token in time, an invalid one, expired or revoked); 4429 too slow "
    "(more than ODIN_WS_QUEUE_SIZE messages waiting: reconnect and subscribe with since); 1012 the server is "
    "restarting; 1011 the token could not be checked (store unavailable)."
)


def _tag(kind: type[msgspec.Struct]) -> str:
    return str(kind.__struct_config__.tag)


@functools.cache
def asyncapi_document() -> dict[str, Any]:
    from odin.api.version import API_VERSION

    kinds = CLIENT_MESSAGES + SERVER_MESSAGES
    _, schemas = msgspec.json.schema_components(kinds, ref_template="#/components/schemas/{name}")
    messages = {
        _tag(kind): {
            "name": _tag(kind),
            "title": kind.__name__,
            "summary": _SUMMARIES[_tag(kind)],
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{kind.__name__}"},
        }
        for kind in kinds
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Odin WebSocket API",
            "version": API_VERSION,
            "description": (
                "Live events for runs, commits or everything, and commands to start, rerun and cancel runs, over one "
                f"WebSocket (subprotocol {p.PROTOCOL}). Every message, both ways, is one JSON object in a text frame "
                "with a `type` field. Authenticate with the subprotocol `bearer.<token>` (offered next to "
                f"{p.PROTOCOL}), an `Authorization: Bearer` header, or a first `auth` message. {_CLOSE_CODES} "
                "See docs/websocket.md."
            ),
        },
        "defaultContentType": "application/json",
        "channels": {
            "ws": {
                "address": "/v1/ws",
                "title": "The Odin WebSocket",
                "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in messages},
            }
        },
        "operations": {
            "receiveClientMessage": {
                "action": "receive",
                "title": "Messages a client sends",
                "channel": {"$ref": "#/channels/ws"},
                "messages": [{"$ref": f"#/channels/ws/messages/{_tag(k)}"} for k in CLIENT_MESSAGES],
            },
            "sendServerMessage": {
                "action": "send",
                "title": "Messages the server sends",
                "channel": {"$ref": "#/channels/ws"},
                "messages": [{"$ref": f"#/channels/ws/messages/{_tag(k)}"} for k in SERVER_MESSAGES],
            },
        },
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
    }


def document_text() -> str:
    return json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n"


@get(
    "/v1/ws/schema",
    exclude_from_auth=True,
    sync_to_thread=False,
    operation_id="websocketSchema",
    summary="The WebSocket protocol (/v1/ws) as an AsyncAPI 3.0 document: every message's JSON Schema",
    tags=["operations"],
    security=[{}],
)
def ws_schema() -> dict[str, Any]:
    return asyncapi_document()


if __name__ == "__main__":
    print(document_text(), end="")
