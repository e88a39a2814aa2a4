"""The messages of the WebSocket protocol (docs/websocket.md), as msgspec tagged unions on the `type` field.

Client messages forbid unknown fields and are validated on decode, so a client in any language gets a precise
error for a misspelt field instead of a silently ignored one.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

PROTOCOL = "odin.v1"
BEARER_PREFIX = "bearer."

# Close codes (4000-4999 are the application's).
CLOSE_UNAUTHENTICATED = 4401  # no valid token, none in time, or it expired / was revoked while connected
CLOSE_TOO_SLOW = 4429  # the client did not read events fast enough; reconnect with `since`
CLOSE_GOING_AWAY = 1001

RunId = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Params = Annotated[dict[str, str | int | float | bool], msgspec.Meta(max_length=200)]
RequestId = Annotated[str, msgspec.Meta(max_length=100)]


class _Client(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    id: RequestId | None = None  # echoed in the reply, to match replies to requests


class Auth(_Client, tag="auth"):
    token: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]


class Subscribe(_Client, tag="subscribe"):
    run: RunId | None = None
    commit: Annotated[str, msgspec.Meta(pattern="^[0-9a-fA-F]{7,40}$")] | None = None
    all: bool = False
    since: Annotated[int, msgspec.Meta(ge=0)] | None = None  # replay stored events after this id first


class Unsubscribe(_Client, tag="unsubscribe"):
    subscription: RequestId


class Start(_Client, tag="start"):
    pipeline: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    ref: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None
    params: Params = msgspec.field(default_factory=dict)


class Rerun(_Client, tag="rerun"):
    run: RunId
    latest: bool = False
    failed_only: bool = False
    task: Annotated[str, msgspec.Meta(min_length=1, max_length=63)] | None = None
    params: Params | None = None


class Cancel(_Client, tag="cancel"):
    run: RunId


class Ping(_Client, tag="ping"):
    pass


ClientMessage = Auth | Subscribe | Unsubscribe | Start | Rerun | Cancel | Ping

_decoder = msgspec.json.Decoder(ClientMessage)


def decode(data: str | bytes) -> ClientMessage:
    """Raises `msgspec.ValidationError` / `msgspec.DecodeError` with a message fit for the client."""
    message: ClientMessage = _decoder.decode(data)
    return message


encode = msgspec.json.Encoder().encode
