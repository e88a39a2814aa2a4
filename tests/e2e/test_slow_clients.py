"""Slow clients against a real `odin serve`, over real sockets: a request head or body that stalls is cut off within
its limit, connections over the cap are refused at once, and WebSockets and normal requests are left alone."""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.git import GitRemote
from tests.support.server import OdinServer

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
SLACK = 3.0  # the server's timer, the event loop and this test's scheduling on a busy machine


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OdinServer]:
    """One server for the module: starting `odin serve` is the slow part, and the tests leave it as they found it."""
    tmp = tmp_path_factory.mktemp("slow-clients")
    remote = GitRemote.create(tmp / "remote")
    remote.commit({"hello/main.yml": "name: hello\ntasks:\n  - {name: hi, image: busybox, command: [echo, hi]}\n"})
    env = {
        "ODIN_REPO": remote.file_url,
        "ODIN_HTTP_HEADER_TIMEOUT": str(HEADER_TIMEOUT),
        "ODIN_HTTP_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "ODIN_HTTP_MAX_CONNECTIONS": "150",
        "ODIN_WS_AUTH_TIMEOUT": "30",
    }
    with OdinServer(tmp / "state", env) as s:
        yield s


def connect(server: OdinServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def closed_within(sock: socket.socket, seconds: float) -> tuple[float, bytes]:
    """Read until the server closes the connection; (seconds it took, what it sent). Fails after `seconds`."""
    started = time.monotonic()
    received = b""
    while True:
        left = seconds - (time.monotonic() - started)
        if left <= 0:
            raise AssertionError(f"the connection was still open after {seconds} s (received {received[:200]!r})")
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return time.monotonic() - started, received
        received += chunk


def test_a_request_the_parser_refuses_is_answered_400_in_the_apis_json_error_format(server: OdinServer) -> None:
    """uvicorn answers it in plain text, which no API client expects (schemathesis generated this very header)."""
    with connect(server) as sock:
        sock.sendall(b'GET /v1/runs HTTP/1.1\r\nHost: odin\r\nTransfer-Encoding: vqVp5.r"&\r\n\r\n')
        _, answer = closed_within(sock, 10)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body) == {"status_code": 400, "detail": "Invalid HTTP request received."}


def test_a_half_sent_request_head_is_closed_within_the_header_timeout(server: OdinServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: odin\r\nX-Slow: 1\r\n")  # no blank line: the head never ends
        took, answer = closed_within(sock, HEADER_TIMEOUT + SLACK)
    assert took >= HEADER_TIMEOUT * 0.9
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_a_head_trickled_a_line_at_a_time_is_closed_too(server: OdinServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        sock.settimeout(0.2)
        lines = 0
        while time.monotonic() - started < HEADER_TIMEOUT + SLACK:
            try:
                sock.sendall(f"X-Line-{lines}: a\r\n".encode())  # a header line every 0.2 s keeps bytes coming
                lines += 1
                if sock.recv(65536) == b"":
                    break
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        else:
            raise AssertionError("a trickling head was never cut off")
    assert lines >= 2


def test_a_hundred_slowloris_connections_are_all_dropped(server: OdinServer) -> None:
    socks = [connect(server) for _ in range(100)]
    try:
        for sock in socks:
            sock.sendall(b"POST /webhooks/github HTTP/1.1\r\nHost: odin\r\n")
        deadline = time.monotonic() + HEADER_TIMEOUT + SLACK
        for sock in socks:
            closed_within(sock, max(0.1, deadline - time.monotonic()))
    finally:
        for sock in socks:
            sock.close()
    assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_a_stalled_body_is_closed_within_the_body_timeout(server: OdinServer) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"POST /webhooks/github HTTP/1.1\r\nHost: odin\r\nContent-Length: 1000\r\n"
            b"X-Hub-Signature-256: sha256=" + b"0" * 64 + b"\r\n\r\n" + b"{" * 10
        )
        took, _ = closed_within(sock, BODY_TIMEOUT + SLACK)
    assert took >= BODY_TIMEOUT * 0.9


def test_connections_over_the_cap_are_refused_at_once(git_remote: GitRemote, tmp_path: Path) -> None:
    git_remote.commit({"hello/main.yml": "name: hello\ntasks:\n  - {name: hi, image: busybox, command: [echo, hi]}\n"})
    env = {"ODIN_REPO": git_remote.file_url, "ODIN_HTTP_MAX_CONNECTIONS": "5", "ODIN_HTTP_HEADER_TIMEOUT": "30"}
    with OdinServer(tmp_path / "state", env) as server:
        held = [connect(server) for _ in range(5)]
        try:
            for sock in held:
                sock.sendall(b"GET /healthz HTTP/1.1\r\n")
            with connect(server) as extra:
                _, answer = closed_within(extra, SLACK)
            assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
            assert b"retry-after: 5" in answer
        finally:
            for sock in held:
                sock.close()
        wait_healthy = time.monotonic() + 10
        while True:  # the held connections' slots are freed as the server sees them close
            try:
                if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < wait_healthy, "the server did not serve again after the held connections closed"


def test_websockets_and_kept_alive_connections_outlive_the_head_timeout(server: OdinServer) -> None:
    key = base64.b64encode(os.urandom(16))
    with connect(server) as ws:
        ws.sendall(
            b"GET /v1/ws HTTP/1.1\r\nHost: odin\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n"
        )
        ws.settimeout(5)
        assert ws.recv(4096).startswith(b"HTTP/1.1 101"), "upgraded"
        ws.settimeout(HEADER_TIMEOUT + 1.5)
        with pytest.raises(TimeoutError):  # nothing to read, and not closed: the head deadline no longer applies
            ws.recv(4096)
    with httpx.Client(base_url=server.url, timeout=5) as client:  # one connection, kept alive across requests
        assert client.get("/healthz").status_code == 200
        time.sleep(HEADER_TIMEOUT + 0.5)  # deliberately idle longer than the head deadline (keep-alive is 5 s)
        assert client.get("/healthz").status_code == 200
