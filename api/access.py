"""One structured log line and two metrics per HTTP request: method, route, status, duration, user.

What is logged is chosen, never dumped: no headers (the Authorization header carries tokens), no query strings, no
bodies. Fields are attached to the record (`extra`), so the JSON log format (ODIN_LOG_FORMAT=json) emits them as keys;
the text format prints one readable line. Logged at INFO on `odin.api.access`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from odin.api.auth.middleware import Principal
from odin.api.errors import classify
from odin.api.metrics import HTTP_DURATION, HTTP_REQUESTS

log = logging.getLogger("odin.api.access")


def access_log(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        answered: float | None = None

        async def send_wrapper(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = int(message["status"])
                answered = time.perf_counter()
            await send(message)

        try:
            await app(scope, receive, send_wrapper)
        except Exception as e:  # raised by a middleware (401 from authentication): answered further out
            if answered is None:
                failure = classify(e)
                status = failure.status if failure is not None else 500
            raise
        finally:
            elapsed = (answered or time.perf_counter()) - started
            method = scope.get("method", "?")
            route = scope.get("path_template") or "unmatched"
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_DURATION.labels(method, route).observe(elapsed)
            if log.isEnabledFor(logging.INFO):
                user = scope.get("user")
                name = user.name if isinstance(user, Principal) else None
                fields: dict[str, Any] = {
                    "method": method,
                    "path": scope.get("path"),
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "user": name,
                    "client": (scope.get("client") or ("-",))[0],
                }
                log.info(
                    "%s %s %d %.1fms user=%s",
                    method,
                    fields["path"],
                    status,
                    fields["duration_ms"],
                    name or "-",
                    extra={"http": fields},
                )

    return middleware
