"""A local HTTP server standing in for GitHub's, GitLab's or Gitea's commit status API.

It records every request (path, headers, JSON body) and answers from a script: `fail_next(500, 500)` makes the next
two requests fail, `answers` with a `Retry-After` header test backoff. Loopback only.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float
    answered: int


@dataclass
class FakeProvider:
    received: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def fail_next(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        with self.lock:
            self.script.extend((s, headers or {}) for s in statuses)

    def start(self) -> FakeProvider:
        provider = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with provider.lock:
                    status, extra = provider.script.pop(0) if provider.script else (201, {})
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    provider.received.append(Received(self.path, headers, body, time.monotonic(), status))
                payload = json.dumps({"id": len(provider.received)}).encode()
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def states(self, context: str) -> list[str]:
        """The states of `context` that were accepted (answered 2xx), in order."""
        with self.lock:
            return [
                r.body["state"]
                for r in self.received
                if r.body.get("context", r.body.get("name")) == context and r.answered < 300
            ]
