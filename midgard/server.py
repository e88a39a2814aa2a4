"""The agent's HTTP service: a read-only ASGI app on uvicorn, behind one bearer token.

    GET /v1/report   the node's report as JSON (midgard/report.py)          token required
    GET /metrics     the same in Prometheus format, DCGM-exporter names     token required
    GET /healthz     `ok` while the process serves (no data, so no token: kubelet probes stay simple)

Why not Litestar like the API: the agent has three fixed read-only routes and one job, to answer the API's fan-out
and Prometheus quickly from a cache; a plain ASGI callable keeps the per-request cost to a dict lookup and a header
compare (the target is >= 500 requests/s per agent on a loaded node) and the agent's import cheap.

Readings are cached for `ttl` seconds (default 1). A burst of queries costs one NVML pass: the first request after
expiry starts the collection in a worker thread (NVML and /proc reads block) and every request arriving meanwhile
awaits that same future (single-flight). JSON and metrics bytes are rendered once per report, on first demand.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import msgspec

from .collect import Collector
from .metrics import render_metrics
from .report import NodeReport, encode_report

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class _Cached:
    report: NodeReport
    at: float  # time.monotonic() when collected
    json: bytes | None = None
    metrics: bytes | None = None

    def json_bytes(self) -> bytes:
        if self.json is None:
            self.json = encode_report(self.report)
        return self.json

    def metrics_bytes(self) -> bytes:
        if self.metrics is None:
            self.metrics = render_metrics(self.report).encode()
        return self.metrics


class ReportCache:
    """The latest report, refreshed at most once per `ttl`, single-flight."""

    def __init__(self, collector: Collector, ttl: float = 1.0) -> None:
        self.collector = collector
        self.ttl = ttl
        self.passes = 0  # collections made: tests and the benchmark check a burst costs one
        self._cached: _Cached | None = None
        self._inflight: asyncio.Future[_Cached] | None = None

    async def get(self) -> _Cached:
        cached = self._cached
        if cached is not None and time.monotonic() - cached.at < self.ttl:
            return cached
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._inflight)

    async def _refresh(self) -> _Cached:
        try:
            report = await asyncio.to_thread(self.collector.collect)
            self.passes += 1
            self._cached = _Cached(report, time.monotonic())
            return self._cached
        finally:
            self._inflight = None


class MidgardApp:
    """The ASGI application (`uvicorn.Config(MidgardApp(...))`)."""

    def __init__(self, cache: ReportCache, token: str) -> None:
        if not token:
            raise ValueError("Midgard needs a token (--token-file or MIDGARD_TOKEN)")
        self.cache = cache
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/healthz":
            await _respond(send, 200, b"ok\n", b"text/plain; charset=utf-8")
            return
        if path not in ("/v1/report", "/metrics"):
            await _respond(send, 404, b'{"detail":"not found"}', b"application/json")
            return
        if method not in ("GET", "HEAD"):
            await _respond(send, 405, b'{"detail":"read-only: GET only"}', b"application/json", [(b"allow", b"GET")])
            return
        if not self._authorised(scope):
            await _respond(
                send,
                401,
                b'{"detail":"a valid bearer token is required"}',
                b"application/json",
                [(b"www-authenticate", b'Bearer realm="midgard"')],
            )
            return
        try:
            cached = await self.cache.get()
        except Exception as e:  # a bug, not a node condition (those are in the report): say so, keep serving
            log.exception("collecting the report failed")
            body = msgspec.json.encode({"detail": f"collecting the report failed: {type(e).__name__}: {e}"})
            await _respond(send, 503, body, b"application/json")
            return
        if path == "/v1/report":
            await _respond(send, 200, cached.json_bytes(), b"application/json", head=method == "HEAD")
        else:
            await _respond(
                send, 200, cached.metrics_bytes(), b"text/plain; version=0.0.4; charset=utf-8", head=method == "HEAD"
            )

    def _authorised(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                # Constant-time: the time to refuse says nothing about how much of the token was right.
                return hmac.compare_digest(value, self._expected)
        return False

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.to_thread(self.cache.collector.close)
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    head: bool = False,
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else body})
