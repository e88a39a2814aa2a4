"""A reverse proxy in front of the real S3 server (SeaweedFS) that sees every request and fails the ones it is told to.

The transfer tests need what a real network does now and then: a part answered with a 500, a download whose
connection drops halfway through its body. This proxy passes requests to the real server byte for byte (the `Host`
header too, so SigV4 signatures made for the proxy's address still verify there), records each (method, path, query,
headers), and applies the first matching fault: `status` (an S3 XML error, the request never reaches the server) or
`cut_after` (the server's answer, cut after that many body bytes, connection closed).
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased


@dataclass
class Fault:
    """Fail the next `times` requests that `matches`: with `status`, or by cutting the answer after `cut_after`
    body bytes."""

    matches: Callable[[Seen], bool]
    times: int = 1
    status: int | None = None
    cut_after: int | None = None


@dataclass
class S3Proxy:
    url: str
    seen: list[Seen] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_fault(self, request: Seen) -> Fault | None:
        with self.lock:
            self.seen.append(request)
            for fault in self.faults:
                if fault.times > 0 and fault.matches(request):
                    fault.times -= 1
                    return fault
        return None

    def requests(self, method: str, **query: str) -> list[Seen]:
        """What was seen of `method` whose query has each of `query` (a value of "" matches any value)."""
        with self.lock:
            return [
                s
                for s in self.seen
                if s.method == method and all(k in s.query and v in ("", s.query[k][0]) for k, v in query.items())
            ]


@contextmanager
def s3_proxy(upstream: str) -> Iterator[S3Proxy]:
    """A proxy to `upstream` (http://host:port) on a free port of 127.0.0.1, for the duration of the block."""
    target = urlsplit(upstream)
    state = S3Proxy(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            parts = urlsplit(self.path)
            request = Seen(
                self.command,
                parts.path,
                parse_qs(parts.query, keep_blank_values=True),
                {k.lower(): v for k, v in self.headers.items()},
            )
            fault = state.take_fault(request)
            if fault is not None and fault.status is not None:
                error = b"<?xml version='1.0'?><Error><Code>InternalError</Code><Message>injected</Message></Error>"
                self.send_response(fault.status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(error)))
                self.end_headers()
                self.wfile.write(error)
                return
            upstream_conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=60)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream_conn.request(self.command, self.path, body=body, headers=headers)
                answer = upstream_conn.getresponse()
                data = answer.read()
                self.send_response(answer.status, answer.reason)
                for name, value in answer.getheaders():
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                declared = answer.getheader("Content-Length")
                self.send_header("Content-Length", declared if self.command == "HEAD" and declared else str(len(data)))
                self.end_headers()
                if self.command == "HEAD":
                    return
                if fault is not None and fault.cut_after is not None:
                    self.wfile.write(data[: fault.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)
            finally:
                upstream_conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="s3-proxy", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
