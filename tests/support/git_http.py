"""A real smart-HTTP git server on loopback (`git http-backend` behind a counting HTTP front), for tests that must
know how often Odin contacts its remote. Not a fake: every answer is git's own.

    with GitHttpServer.serving(remote.root) as server:
        mirror = Mirror(server.url("remote.git"), cache, allow_insecure_http=True)
        mirror.fetch()
        assert server.ref_listings == 1

Set `server.token` to require HTTP basic authentication with that password (any user name), as GitHub, GitLab and
Gitea do for a private repository over https: a request without it, or with another, is answered 401.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest


def _http_backend() -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    exec_path = subprocess.run([git, "--exec-path"], capture_output=True, text=True, check=False).stdout.strip()
    backend = Path(exec_path) / "git-http-backend"
    return str(backend) if backend.exists() else None


class GitHttpServer:
    """Serves the bare repositories under `root`; counts the ref listings (`GET .../info/refs?service=...`), which
    every fetch starts with, so `ref_listings` is the number of times a client contacted the remote."""

    def __init__(self, root: Path, backend: str) -> None:
        self.root = root
        self.backend = backend
        self.ref_listings = 0
        self.token: str | None = None  # the password every request must carry (basic auth); None: anonymous
        self.refused = 0  # requests answered 401
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None

    @classmethod
    @contextlib.contextmanager
    def serving(cls, root: Path) -> Iterator[GitHttpServer]:
        backend = _http_backend()
        if backend is None:
            pytest.skip("git http-backend is not installed")
        server = cls(root, backend)
        outer = server

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer._serve(self)

            do_POST = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        server._server = httpd
        thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), name="git-http", daemon=True)
        thread.start()
        try:
            yield server
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=10)

    def url(self, name: str) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/{name}"

    def _authorized(self, request: http.server.BaseHTTPRequestHandler) -> bool:
        if self.token is None:
            return True
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            password = base64.b64decode(encoded, validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
        return scheme.lower() == "basic" and password == self.token

    def _serve(self, request: http.server.BaseHTTPRequestHandler) -> None:
        path, _, query = request.path.partition("?")
        if not self._authorized(request):
            self._read_body(request)
            with self._lock:
                self.refused += 1
            request.send_response(401)
            request.send_header("WWW-Authenticate", 'Basic realm="git"')
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        if path.endswith("/info/refs"):
            with self._lock:
                self.ref_listings += 1
        body = self._read_body(request)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": request.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_PROTOCOL": request.headers.get("Git-Protocol", ""),
            "HTTP_CONTENT_ENCODING": request.headers.get("Content-Encoding", ""),
        }
        out = subprocess.run([self.backend], input=body, env=env, capture_output=True, check=False).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = out.partition(b"\n\n")
        status = 200
        headers: list[tuple[str, str]] = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        request.send_response(status)
        for name, value in headers:
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    @staticmethod
    def _read_body(request: http.server.BaseHTTPRequestHandler) -> bytes:
        if request.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(request.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    request.rfile.readline()
                    return b"".join(chunks)
                chunks.append(request.rfile.read(size))
                request.rfile.readline()
        length = int(request.headers.get("Content-Length") or 0)
        return request.rfile.read(length) if length else b""
