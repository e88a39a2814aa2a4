"""Slow clients cannot hold the server: a time limit on request heads and bodies, and a cap on connections.

uvicorn bounds the idle time between requests (`timeout_keep_alive`) but neither the time a client may take to send a
request's head nor a stalled body: a hundred connections sending one header line now and then (slowloris) were kept
open for ever, and every one counts against file descriptors and `limit_concurrency`. Its HTTP protocols take a class,
so the guard is a subclass of uvicorn's own protocol with three additions (and a request the parser refuses is
answered `400` in the API's JSON error format, not uvicorn's plain text):

* **Head deadline** (`ODIN_HTTP_HEADER_TIMEOUT`): from the connection's first byte — or from the first byte of the next
  request on a kept-alive connection — the whole request head must arrive within this many seconds. Otherwise the
  answer is `408` and the connection is closed.
* **Body idle limit** (`ODIN_HTTP_BODY_TIMEOUT`): while a request's body is being read and the server is ready for
  more, a gap of this many seconds without a byte closes the connection. Time the application spends before reading
  (flow control has paused reading) does not count.
* **Connection cap** (`ODIN_HTTP_MAX_CONNECTIONS`): a connection over the cap is answered `503` at once and closed,
  before its head is read. WebSockets count: they are connections too.

A WebSocket upgrade hands the connection to uvicorn's WebSocket protocol, after which none of this applies (its own
ping/pong and Odin's authentication timeout take over).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

log = logging.getLogger("odin.server")

_TIMEOUT_408 = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_FULL_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 42\r\n"
    b"retry-after: 5\r\nconnection: close\r\n\r\nthe server has too many connections open\r\n"
)


class GuardLimits:
    """The three limits; `None` disables one."""

    def __init__(self, header_timeout: float | None, body_timeout: float | None, max_connections: int | None) -> None:
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections


def guarded_protocol(limits: GuardLimits) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the limits applied (pass it as `uvicorn.Config(http=...)`)."""

    class GuardedHttpProtocol(_Guarded):
        guard = limits

    return GuardedHttpProtocol


class _Guarded(HttpToolsProtocol):
    guard: GuardLimits

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._timer: asyncio.TimerHandle | None = None
        self._waiting: str | None = None  # "head" or "body": what the timer is for
        self._idle = True  # between requests: the next byte starts a head
        self._last_cycle: object = None

    # -- connection ------------------------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        cap = self.guard.max_connections
        if cap is not None and len(self.connections) > cap:
            log.warning("connection from %s refused: %d connections open (ODIN_HTTP_MAX_CONNECTIONS)", self._who(), cap)
            transport.write(_FULL_503)
            transport.close()
            return
        self._expect_head()  # a connection that never sends a byte is a slow head too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._idle:
            self._expect_head()
        super().data_received(data)
        if self.transport.is_closing():
            self._cancel()
            return
        if self.transport.get_protocol() is not self:  # upgraded to a WebSocket: no longer ours to time
            self._cancel()
            return
        cycle = self.cycle
        if cycle is not None and cycle is not self._last_cycle:  # a new request's head is complete
            self._last_cycle = cycle
            self._cancel()
        # After an early answer (a 401 from the headers alone) uvicorn still reads the rest of the body to discard
        # it, so the body's idle limit keeps running until the body is complete either way.
        if cycle is not None and cycle is self._last_cycle:
            if cycle.more_body:
                self._expect_body()  # every byte of the body restarts its idle limit
            elif self._waiting == "body":
                self._cancel()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._cancel()
        cycle = self.cycle
        if cycle is not None and cycle.more_body:  # answered before the body was read: it must still arrive in time
            self._idle = False
            self._expect_body()
            return
        self._idle = not self.pipeline and cycle is not None and cycle.response_complete

    # -- timers ----------------------------------------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        """A request the HTTP parser refuses (a malformed head, an invalid `Transfer-Encoding`...) is answered as the
        API answers every error, JSON `{status_code, detail}`, instead of uvicorn's plain text: a client of the API
        reads one error format, and the OpenAPI document describes no other (the schemathesis test found it)."""
        body = json.dumps({"status_code": 400, "detail": msg}).encode()
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()

    def _expect_head(self) -> None:
        self._idle = False
        if self.guard.header_timeout is not None and self._waiting != "head":
            self._arm("head", self.guard.header_timeout)

    def _expect_body(self) -> None:
        if self.guard.body_timeout is not None:
            self._arm("body", self.guard.body_timeout)

    def _arm(self, what: str, seconds: float) -> None:
        self._cancel()
        self._waiting = what
        self._timer = self.loop.call_later(seconds, self._expired, what, seconds)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._waiting = None

    def _expired(self, what: str, seconds: float) -> None:
        self._timer = None
        self._waiting = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return
        if what == "body":
            cycle = self.cycle
            if cycle is None or not cycle.more_body:
                return
            if (
                self.flow.read_paused and not cycle.response_complete
            ):  # the application has not asked for more yet: not the client's delay
                self._expect_body()
                return
            log.info("closing the connection from %s: no body bytes for %.0f s", self._who(), seconds)
            self.transport.close()
            return
        log.info("closing the connection from %s: request head not complete within %.0f s", self._who(), seconds)
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_TIMEOUT_408)
        self.transport.close()

    def _who(self) -> str:
        return f"{self.client[0]}:{self.client[1]}" if self.client else "?"
