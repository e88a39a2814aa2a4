"""Local servers shaped like the places Odin posts to: GitHub's, GitLab's or Gitea's commit status API, Slack's
incoming webhooks, a generic receiver that checks Odin's HMAC signature, and a real SMTP server (aiosmtpd). Loopback
only. The HTTP ones share one recording server (`_Server`): every request is kept as a `Hit` (path, headers, raw body,
when, the status answered), and answers come from a script first (`answer_next`, `fail_next`), then from the kind's
own judgement, then its success answer.

`FakeProvider` answers 201 with a JSON id, or from a script (`fail_next(500, 500)`, a 429 with `Retry-After`).
`FakeSlack` answers as Slack does: 200 `ok`, or from a script (`answer_next(400, "invalid_payload")`, 404
`no_service`, 429 with `Retry-After`). `FakeReceiver` answers 200 only to a body whose `X-Odin-Signature` matches.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    raw: bytes
    at: float
    answered: int
    method: str = "POST"

    @property
    def body(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.raw or b"{}")
        return parsed


@dataclass
class _Server:
    ok_status: int = 200
    ok_text: str = "ok"
    content_type: str = "text/plain"
    path: str = "/hook"
    hits: list[Hit] = field(default_factory=list)
    script: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"

    def answer_next(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        with self.lock:
            self.script.append((status, text, headers or {}))

    def judge(self, headers: dict[str, str], raw: bytes) -> tuple[int, str, dict[str, str]] | None:
        return None

    def respond(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, str, dict[str, str]] | None:
        """The answer of a stateful fake (an API with resources, `fake_forges.py`); by default `judge`'s."""
        return self.judge(headers, raw)

    def ok_answer(self) -> str:
        """The body of a success answer (called with `lock` held)."""
        return self.ok_text

    def start(self) -> _Server:
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def handle_any(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with fake.lock:
                    answer = fake.script.pop(0) if fake.script else None
                answer = answer or fake.respond(self.command, self.path, headers, raw)
                with fake.lock:
                    status, text, extra = answer or (fake.ok_status, fake.ok_answer(), {})
                    fake.hits.append(Hit(self.path, headers, raw, time.monotonic(), status, self.command))
                payload = text.encode()
                self.send_response(status)
                for k, v in extra.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", fake.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_GET = do_PUT = do_PATCH = handle_any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class FakeProvider(_Server):
    """GitHub's, GitLab's or Gitea's commit status API: 201 with a JSON id to every POST, unless scripted."""

    ok_status: int = 201
    content_type: str = "application/json"
    path: str = ""

    @property
    def received(self) -> list[Hit]:
        """Every request so far, in order (the live list)."""
        return self.hits

    def ok_answer(self) -> str:
        return json.dumps({"id": len(self.hits) + 1})

    def fail_next(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        """The next requests are answered with `statuses`, in order (with `headers`, a `Retry-After` say)."""
        with self.lock:
            self.script.extend((status, "{}", headers or {}) for status in statuses)

    def states(self, context: str) -> list[str]:
        """The states of `context` that were accepted (answered 2xx), in order."""
        with self.lock:
            return [
                h.body["state"]
                for h in self.hits
                if h.body.get("context", h.body.get("name")) == context and h.answered < 300
            ]


class FakeSlack(_Server):
    """Slack's incoming webhook: 200 `ok` to a body with `text`, 400 `invalid_payload` to one without."""

    def judge(self, headers: dict[str, str], raw: bytes) -> tuple[int, str, dict[str, str]] | None:
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, "invalid_payload", {}
        return None if isinstance(body, dict) and body.get("text") else (400, "invalid_payload", {})


@dataclass
class FakeReceiver(_Server):
    """A generic webhook receiver holding the shared secret: 401 to a body whose signature does not match."""

    secret: str = ""

    def judge(self, headers: dict[str, str], raw: bytes) -> tuple[int, str, dict[str, str]] | None:
        expected = "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(headers.get("x-odin-signature", ""), expected):
            return 401, "bad signature", {}
        return None

    def verified(self) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.answered == 200]


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    message: Message


class MailSink:
    """A real SMTP server on loopback (no TLS, no auth) keeping what it is sent."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        with socket.socket() as s:  # a free port: the controller needs one before it starts
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.mails.append(Mail(str(envelope.mail_from), list(envelope.rcpt_tos), message_from_bytes(content)))
        return "250 Message accepted for delivery"

    def start(self) -> MailSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
