"""A WebSocket client for `/v1/ws` (the `websockets` library): subscribe to live events, drive runs.

    async with await OdinWebSocket.connect("http://127.0.0.1:9003", token) as ws:
        await ws.subscribe(run="train-3f2a9c1-1")
        async for event in ws.events():
            print(event.kind, event.task, event.data)

A reader task demultiplexes what the server sends: replies go to the request that asked (matched by `id`), events
to `events()`. The protocol is in docs/websocket.md; any language with a WebSocket library can speak it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from odin.api.client.errors import ApiError, ServerUnreachable
from odin.api.schemas import EventOut, RunSummary

PROTOCOL = "odin.v1"

_CLOSED = object()


def ws_url(server: str) -> str:
    base = server.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + "/v1/ws"
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :] + "/v1/ws"
    return base + "/v1/ws"


class ConnectionLost(Exception):
    """The server closed the connection (`code`, `reason`), e.g. 4401 expired token, 4429 too slow."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"connection closed ({code}): {reason}")
        self.code = code
        self.reason = reason


class OdinWebSocket:
    def __init__(self, conn: ClientConnection, welcome: Mapping[str, Any]) -> None:
        self._conn = conn
        self.user = str(welcome.get("user"))
        self.role = str(welcome.get("role"))
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._events: asyncio.Queue[Any] = asyncio.Queue()
        self._closed: ConnectionLost | None = None
        self._reader = asyncio.create_task(self._read(), name="odin-ws-reader")

    @classmethod
    async def connect(cls, server: str, token: str, *, open_timeout: float = 10.0) -> OdinWebSocket:
        """Connect and authenticate (the token travels in the Authorization header of the handshake)."""
        try:
            conn = await connect(
                ws_url(server),
                subprotocols=[PROTOCOL],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=open_timeout,
                max_size=2**24,
            )
        except InvalidStatus as e:
            raise ApiError(e.response.status_code, f"the server refused the WebSocket: {e}") from e
        except (OSError, TimeoutError, WebSocketException) as e:
            raise ServerUnreachable(f"cannot open a WebSocket to {server}: {e}") from e
        try:
            first = msgspec.json.decode(await asyncio.wait_for(conn.recv(), open_timeout))
        except ConnectionClosed as e:
            raise ApiError(401, e.rcvd.reason if e.rcvd else "the server closed the connection") from e
        if first.get("type") != "welcome":
            await conn.close()
            raise ApiError(int(first.get("status") or 401), str(first.get("detail") or first))
        return cls(conn, first)

    async def __aenter__(self) -> OdinWebSocket:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._conn.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    # -- requests -------------------------------------------------------------------------------------------------
    async def request(self, message: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        """Send `message` with a fresh id; the matching reply, or `ApiError` for an error reply."""
        if self._closed is not None:
            raise self._closed
        request_id = f"c{next(self._ids)}"
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._conn.send(msgspec.json.encode({**message, "id": request_id}).decode())
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)
        if reply.get("type") == "error":
            raise ApiError(int(reply.get("status") or 400), str(reply.get("detail")), reply.get("extra"))
        return reply

    async def subscribe(
        self, *, run: str | None = None, commit: str | None = None, all: bool = False, since: int | None = None
    ) -> str:
        """Start receiving events; `since` replays stored events after that id first. Returns the subscription id."""
        message: dict[str, Any] = {"type": "subscribe"}
        if run is not None:
            message["run"] = run
        if commit is not None:
            message["commit"] = commit
        if all:
            message["all"] = True
        if since is not None:
            message["since"] = since
        return str((await self.request(message))["subscription"])

    async def unsubscribe(self, subscription: str) -> None:
        await self.request({"type": "unsubscribe", "subscription": subscription})

    async def ping(self) -> None:
        await self.request({"type": "ping"})

    async def start(
        self, pipeline: str, *, ref: str | None = None, params: Mapping[str, str | int | float | bool] | None = None
    ) -> RunSummary:
        message: dict[str, Any] = {"type": "start", "pipeline": pipeline, "params": dict(params or {})}
        if ref is not None:
            message["ref"] = ref
        return msgspec.convert((await self.request(message))["run"], RunSummary)

    async def rerun(
        self, run: str, *, latest: bool = False, failed_only: bool = False, task: str | None = None
    ) -> RunSummary:
        message: dict[str, Any] = {"type": "rerun", "run": run, "latest": latest, "failed_only": failed_only}
        if task is not None:
            message["task"] = task
        return msgspec.convert((await self.request(message))["run"], RunSummary)

    async def cancel(self, run: str) -> RunSummary:
        return msgspec.convert((await self.request({"type": "cancel", "run": run}))["run"], RunSummary)

    # -- events -----------------------------------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[EventOut]:
        """Events of every subscription, in the order received; ends with `ConnectionLost` when the server closes."""
        while True:
            yield await self.next_event()

    async def next_event(self, timeout: float | None = None) -> EventOut:
        """The next event (`TimeoutError` after `timeout` seconds; `ConnectionLost` once the server closed)."""
        item = await asyncio.wait_for(self._events.get(), timeout)
        if item is _CLOSED:
            self._events.put_nowait(_CLOSED)  # every later call ends the same way
            assert self._closed is not None
            raise self._closed
        event: EventOut = item
        return event

    async def _read(self) -> None:
        try:
            async for raw in self._conn:
                message = msgspec.json.decode(raw)
                kind = message.get("type")
                if kind == "event":
                    self._events.put_nowait(msgspec.convert(message["event"], EventOut))
                    continue
                if kind == "events":  # several events that were waiting together, oldest first
                    for event in message["events"]:
                        self._events.put_nowait(msgspec.convert(event, EventOut))
                    continue
                future = self._pending.get(str(message.get("id")))
                if future is not None and not future.done():
                    future.set_result(message)
                elif kind == "error":
                    self._closed = ConnectionLost(message.get("status"), str(message.get("detail")))
        except ConnectionClosed:
            pass
        finally:
            rcvd = self._conn.close_code
            reason = self._conn.close_reason or (self._closed.reason if self._closed else "closed")
            self._closed = ConnectionLost(rcvd, reason)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(self._closed)
            self._events.put_nowait(_CLOSED)
