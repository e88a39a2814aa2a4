"""A tiny reverse proxy that serves a server under a path prefix, as nginx's `location /odin/ { proxy_pass
http://odin/; }` does: `/odin/x` is forwarded as `/x`, anything else is 404. WebSocket upgrades pass through.

One request per connection (each forwarded with `Connection: close`, upgrades excepted), then bytes are piped both
ways until a side closes: no HTTP parsing beyond the request line and headers, which is all a prefix needs. The
`Host` header is forwarded unchanged, so the server sees the browser's origin, as behind a real proxy.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

_HEAD_LIMIT = 64 * 1024


class PrefixProxy:
    def __init__(self, prefix: str, upstream_port: int, *, port: int = 0) -> None:
        self.prefix = prefix.rstrip("/")
        self.upstream = ("127.0.0.1", upstream_port)
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[str] = []  # the request lines as the browser sent them
        self.refused: list[str] = []  # those outside the prefix (answered 404)
        self._closed = False

    def __enter__(self) -> PrefixProxy:
        threading.Thread(target=self._accept, name="prefix-proxy", daemon=True).start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < _HEAD_LIMIT:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            header, _, rest = head.partition(b"\r\n\r\n")
            request_line, *fields = header.decode("latin-1").split("\r\n")
            self.requests.append(request_line)
            method, target, version = request_line.split(" ", 2)
            if target != self.prefix and not target.startswith(self.prefix + "/"):
                self.refused.append(request_line)
                client.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            upgrade = any(f.lower().startswith("upgrade:") for f in fields)
            kept = [f for f in fields if upgrade or not f.lower().startswith(("connection:", "keep-alive:"))]
            if not upgrade:
                kept.append("Connection: close")
            forwarded = "\r\n".join([f"{method} {target[len(self.prefix) :] or '/'} {version}", *kept])
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            with upstream:
                upstream.sendall(forwarded.encode("latin-1") + b"\r\n\r\n" + rest)
                back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
                back.start()
                _pipe(client, upstream)
                back.join()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy until `source` ends, then tell `sink` nothing more is coming."""
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
