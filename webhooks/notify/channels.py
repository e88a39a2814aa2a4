"""The three channels: a Slack incoming webhook, a generic signed HTTP webhook, e-mail over SMTP.

Each `send` makes one attempt and says what became of it (`Result`): sent, worth retrying (no sooner than
`retry_after`), or failed for good with a reason a user can act on. Reasons never carry a secret: a Slack webhook's
URL is one, so it is never named; a generic webhook is named by its host only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from odin.webhooks.notify.message import Message
from odin.webhooks.outbound import retry_after, retryable

if TYPE_CHECKING:
    import httpx  # the senders get a client; its errors are imported where they are caught

SIGNATURE_HEADER = "X-Odin-Signature"
DELIVERY_HEADER = "X-Odin-Delivery"
EVENT_HEADER = "X-Odin-Event"


@dataclass(frozen=True, slots=True)
class Result:
    sent: bool
    reason: str = ""
    retry_after: float | None = None
    """Not None: the failure may pass; retry no sooner than this many seconds (0: the backoff decides)."""


SENT = Result(True)


def sign(secret: str, body: bytes) -> str:
    """The `X-Odin-Signature` value: `sha256=` and the hex HMAC-SHA256 of the raw body with the shared secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def slack_body(message: Message, run_url: str | None) -> dict[str, Any]:
    """Slack's `text` (notifications, clients without blocks) and a section block with the same words."""
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": message.text[:3000]}}]
    if run_url:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{run_url}|Open the run>"}]})
    return {"text": message.text, "blocks": blocks}


def send_slack(client: httpx.Client, webhook_url: str, body: dict[str, Any]) -> Result:
    import httpx

    try:
        response = client.post(webhook_url, json=body)
    except httpx.HTTPError as e:
        return Result(False, f"Slack did not answer ({type(e).__name__})", retry_after=0.0)
    if response.status_code == 200:
        return SENT
    # Slack answers with a short word: invalid_payload, no_service (webhook revoked), channel_not_found...
    said = f"Slack answered {response.status_code} {response.text[:100].strip()!r}"
    if retryable(response):
        return Result(False, said, retry_after=retry_after(response))
    return Result(False, said)


def send_webhook(
    client: httpx.Client, url: str, secret: str, payload: dict[str, Any], *, delivery: str, event: str
) -> Result:
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(secret, body),
        DELIVERY_HEADER: delivery,
        EVENT_HEADER: event,
    }
    host = urlsplit(url).netloc.rsplit("@", 1)[-1]
    import httpx

    try:
        response = client.post(url, content=body, headers=headers)
    except httpx.HTTPError as e:
        return Result(False, f"{host} did not answer ({type(e).__name__})", retry_after=0.0)
    if response.status_code < 300:
        return SENT
    said = f"{host} answered {response.status_code}"
    if retryable(response):
        return Result(False, said, retry_after=retry_after(response))
    return Result(False, said)


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    sender: str
    user: str | None = None
    password: str | None = None
    starttls: bool = True
    timeout: float = 10.0


def send_email(smtp: SmtpSettings, to: list[str], message: Message) -> Result:
    mail = EmailMessage()
    mail["From"] = smtp.sender
    mail["To"] = ", ".join(to)
    mail["Subject"] = message.subject
    mail.set_content(message.text)
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout) as server:
            if smtp.starttls:
                server.starttls(context=ssl.create_default_context())
            if smtp.user:
                server.login(smtp.user, smtp.password or "")
            refused = server.send_message(mail)
    except smtplib.SMTPRecipientsRefused as e:
        return Result(False, f"the SMTP server refused every recipient ({', '.join(sorted(e.recipients))})")
    except smtplib.SMTPAuthenticationError as e:
        return Result(False, f"the SMTP server refused ODIN_SMTP_USER's login ({e.smtp_code})")
    except smtplib.SMTPResponseException as e:
        said = f"the SMTP server answered {e.smtp_code}"
        return Result(False, said, retry_after=0.0) if 400 <= e.smtp_code < 500 else Result(False, said)
    except smtplib.SMTPNotSupportedError:
        return Result(False, "the SMTP server does not offer STARTTLS (set ODIN_SMTP_STARTTLS=false if it is local)")
    except (smtplib.SMTPException, OSError) as e:
        return Result(False, f"cannot reach the SMTP server {smtp.host}:{smtp.port} ({type(e).__name__})", 0.0)
    if refused:
        return Result(False, f"the SMTP server refused {', '.join(sorted(refused))}")
    return SENT
