"""The messages of the WebSocket protocol (docs/websocket.md), as msgspec tagged unions on the `type` field.

Client messages forbid unknown fields and are validated on decode, so a client in any language gets a precise
error for a misspelt field instead of a silently ignored one. Server messages are typed here too, and the server
encodes its replies from them; both sets are published as an AsyncAPI document (`odin.api.ws.asyncapi`,
docs/websocket.asyncapi.json, `GET /v1/ws/schema`), the WebSocket's counterpart of the OpenAPI document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Final, Literal

import msgspec

from odin.api.inputs import control_character
from odin.api.schemas import RunSummary

PROTOCOL: Final = "odin.v1"
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
    no_cache: bool = False  # run tasks with `cache: true` without looking up earlier runs


class Rerun(_Client, tag="rerun"):
    run: RunId
    latest: bool = False
    failed_only: bool = False
    task: Annotated[str, msgspec.Meta(min_length=1, max_length=63)] | None = None
    params: Params | None = None
    no_cache: bool = False  # run tasks with `cache: true` without looking up earlier runs


class Cancel(_Client, tag="cancel"):
    run: RunId


class Ping(_Client, tag="ping"):
    pass


ClientMessage = Auth | Subscribe | Unsubscribe | Start | Rerun | Cancel | Ping


# -- server to client ------------------------------------------------------------------------------------------------
class _Server(msgspec.Struct, tag_field="type", kw_only=True):
    """Open to additions: a client ignores fields it does not know (new ones may come in a compatible release)."""


class Welcome(_Server, tag="welcome"):
    """The first message after a successful authentication."""

    protocol: Literal["odin.v1"]
    user: str
    role: Literal["admin", "member", "viewer"]


class Subscribed(_Server, tag="subscribed"):
    id: str | None
    subscription: str
    replayed: int | msgspec.UnsetType = msgspec.UNSET  # with `since`: stored events replayed before live ones
    truncated: bool | msgspec.UnsetType = msgspec.UNSET  # with `since`: more than 10,000 were left out


class Unsubscribed(_Server, tag="unsubscribed"):
    id: str | None
    subscription: str


class Result(_Server, tag="result"):
    """A command's success: 201 for start and rerun (the new run), 202 for cancel (the run)."""

    id: str | None
    status: int
    run: RunSummary


class Pong(_Server, tag="pong"):
    id: str | None


class Error(_Server, tag="error"):
    """A request's failure (HTTP statuses), or why the server is closing the connection (close codes 4401, 4429...)."""

    status: int
    detail: str
    id: str | msgspec.UnsetType | None = msgspec.UNSET  # the request's id; absent when the connection is closing
    extra: Any | msgspec.UnsetType = msgspec.UNSET


class Event(msgspec.Struct, kw_only=True):
    """One state change, as stored in the events table; `id`s are unique and increase."""

    id: int
    time: datetime
    kind: str
    run_id: str | None
    task: str | None
    commit_sha: str | None
    data: dict[str, Any]


class EventMessage(_Server, tag="event"):
    event: Event


class EventsMessage(_Server, tag="events"):
    """Several events that were waiting together, oldest first."""

    events: list[Event]


ServerMessage = Welcome | Subscribed | Unsubscribed | Result | Pong | Error | EventMessage | EventsMessage

_decoder = msgspec.json.Decoder(ClientMessage)

_NAMES = frozenset({"id", "run", "pipeline", "ref", "task", "subscription", "token"})
"""Fields that name something (a run, a ref, a pipeline...): no control character belongs in them, as in a URL path.
Other text (parameter values) may hold any character but NUL, as in an HTTP JSON body (`odin.api.inputs`)."""


def bad_characters(message: ClientMessage) -> str | None:
    """Why `message` is refused for the characters it holds (`run contains a NUL character`), or None.

    The HTTP routes refuse these before any handler runs (`odin.api.inputs`); a WebSocket message reaches its
    handler decoded, so the same rules are applied here: a NUL never reaches the store, where Postgres cannot hold
    one (SQLite stored it silently), and a control character never reaches a name, a ref or a log line."""
    for field in message.__struct_fields__:
        value = getattr(message, field)
        if isinstance(value, str):
            problem = control_character(value) if field in _NAMES else _nul(value)
            if problem is not None:
                return f"{field} contains {problem}; remove it"
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = _nul(key) or (_nul(item) if isinstance(item, str) else None)
                if problem is not None:
                    return f"{field}.{key!r} contains {problem}; remove it"
    return None


def _nul(text: str) -> str | None:
    return "a NUL character (\\x00)" if "\0" in text else None


def decode(data: str | bytes) -> ClientMessage:
    """Raises `msgspec.ValidationError` / `msgspec.DecodeError` with a message fit for the client."""
    message: ClientMessage = _decoder.decode(data)
    return message


encode = msgspec.json.Encoder().encode
