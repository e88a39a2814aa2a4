"""What an unauthenticated webhook request may cost: refused from its headers before the body when they decide, large
bodies verified while streamed to disk, and a cap on large bodies in flight — over real sockets to a real server."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket

from tests.webhooks.conftest import OdinFactory
from tests.webhooks.support import SECRET, Odin, load, point_at

MIB = 1024 * 1024


def open_request(odin: Odin, path: str, headers: dict[str, str], length: int) -> socket.socket:
    """A connection that sent a request's head (declaring `length` body bytes) and nothing of the body yet."""
    sock = socket.create_connection(("127.0.0.1", odin.settings.port), timeout=10)
    lines = [
        f"POST {path} HTTP/1.1",
        "Host: odin",
        f"Content-Length: {length}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return sock


def read_answer(sock: socket.socket, deadline: float) -> bytes:
    """The response head (and whatever body came with it) sent before `deadline` seconds from now."""
    sock.settimeout(deadline)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_wrong_gitlab_token_is_refused_before_the_body_is_read(odin: Odin) -> None:
    # 20 MiB declared, under the 25 MiB cap; not a byte of it sent. The answer cannot have waited for the body.
    with open_request(
        odin, "/webhooks/gitlab", {"X-Gitlab-Token": "wrong", "X-Gitlab-Event": "Push Hook"}, 20 * MIB
    ) as s:
        answer = read_answer(s, 5)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_a_missing_or_malformed_signature_is_refused_before_the_body_is_read(odin: Odin) -> None:
    for headers in ({}, {"X-Hub-Signature-256": "sha256=nothex"}, {"X-Hub-Signature-256": "SHA256=" + "a" * 64}):
        with open_request(odin, "/webhooks/github", {"X-GitHub-Event": "push", **headers}, 20 * MIB) as s:
            answer = read_answer(s, 5)
        assert answer.startswith(b"HTTP/1.1 401"), (headers, answer[:200])


def test_large_bodies_in_flight_are_capped_with_503_and_retry_after(odin_factory: OdinFactory) -> None:
    odin = odin_factory(webhook_large_bodies=1, webhook_spool_threshold=64 * 1024)
    wrong = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "0" * 64}
    length = 2 * MIB
    # `Expect: 100-continue`: the server says "100 Continue" when the handler starts reading the body, which is after
    # it took the only large-body slot.
    first = open_request(odin, "/webhooks/github", {**wrong, "Expect": "100-continue"}, length)
    try:
        assert read_answer(first, 5).startswith(b"HTTP/1.1 100"), "the first request is being read"
        first.sendall(b"x" * (length // 2))
        with open_request(odin, "/webhooks/github", wrong, length) as second:
            answer = read_answer(second, 5)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:300]
        assert b"retry-after: " in answer.lower()
        # A small body needs no slot.
        small = b"{}"
        res = odin.post("github", small, wrong)
        assert res.status_code == 401
        first.sendall(b"x" * (length - length // 2))
        assert read_answer(first, 10).startswith(b"HTTP/1.1 401"), "the whole body was verified, and did not match"
    finally:
        first.close()
    # The slot is free again.
    with open_request(odin, "/webhooks/github", wrong, length) as third:
        third.sendall(b"x" * length)
        assert read_answer(third, 10).startswith(b"HTTP/1.1 401")


def test_a_large_signed_body_is_verified_while_spooled_and_handled(odin_factory: OdinFactory) -> None:
    odin = odin_factory(webhook_spool_threshold=64 * 1024)
    delivery = point_at("github", load("github", "push"), after=odin.remote.head)
    delivery.body["padding"] = "p" * (3 * MIB)  # spooled to disk while it is verified
    raw = json.dumps(delivery.body).encode()
    digest = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    res = odin.post("github", raw, {**delivery.headers, "X-Hub-Signature-256": f"sha256={digest}"})
    assert res.status_code in (200, 202), res.text
    assert res.json()["status"] in ("accepted", "ignored")
    tampered = raw[:-2] + b" }"
    res = odin.post("github", tampered, {**delivery.headers, "X-Hub-Signature-256": f"sha256={digest}"})
    assert res.status_code == 401
    assert not any((odin.settings.data_dir / "spool").iterdir()), "spooled bodies leave nothing behind"
