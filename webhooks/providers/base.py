"""What every provider module shares: the `Provider` interface, constant-time signature checks, safe JSON reading.

Signatures are checked against every configured secret, with no early exit, so neither the time taken nor anything
else tells a caller which secret matched or how many there are (two are valid while a secret is being rotated).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol
from urllib.parse import parse_qs

from odin.webhooks.events import MalformedPayload, ParsedEvent

Headers = Mapping[str, str]
"""Request headers with lower-case names."""

MAX_DELIVERY_ID = 200
_PRINTABLE_ID = re.compile(r"^[\x21-\x7e]{1,200}$")


class Provider(Protocol):
    """One git provider's webhook dialect. Implementations are stateless; `verify` runs before `parse`."""

    name: str
    delivery_headers: tuple[str, ...]
    """Where the provider puts its delivery id (read, without trusting it, to name a rejected delivery in the log)."""

    def signature_present(self, headers: Headers) -> bool:
        """Whether the request carries this provider's signature header at all (for the log: missing vs wrong)."""
        ...

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[bytes]) -> bool:
        """True when the signature matches one of `secrets`; compares against all of them, in constant time."""
        ...

    def delivery_id(self, headers: Headers, body: bytes) -> str:
        """The provider's id of this delivery (the same on a redelivery), or a digest of the body."""
        ...

    def parse(self, headers: Headers, body: bytes) -> ParsedEvent:
        """The event, normalised. Raises `MalformedPayload` with a message for the sender."""
        ...


def hmac_sha256_matches(signature: str | None, body: bytes, secrets: Sequence[bytes], *, prefix: str = "") -> bool:
    """Does `signature` (hex, after an optional `prefix` such as "sha256=") equal HMAC-SHA256(secret, body) for one of
    the secrets? Every secret is compared, whatever the earlier comparisons found."""
    given = (signature or "").strip()
    if prefix:
        given = given[len(prefix) :] if given[: len(prefix)].lower() == prefix else ""
    given_bytes = given.lower().encode("ascii", "replace")
    matched = False
    for secret in secrets:
        expected = hmac.new(secret, body, hashlib.sha256).hexdigest().encode("ascii")
        matched |= hmac.compare_digest(expected, given_bytes)
    return matched


def token_matches(token: str | None, secrets: Sequence[bytes]) -> bool:
    """Does a plain shared token (GitLab's `X-Gitlab-Token`) equal one of the secrets? Constant time, all compared."""
    given = (token or "").encode("utf-8", "replace")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(secret, given)
    return matched


def delivery_id_from(headers: Headers, body: bytes, *names: str) -> str:
    """The first of the named headers that holds a sane id; else `sha256:<digest of the body>`, which is stable across
    redeliveries of the same payload."""
    for name in names:
        value = headers.get(name, "").strip()
        if _PRINTABLE_ID.match(value):
            return value
    return body_digest(body)


def body_digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def load_payload(headers: Headers, body: bytes) -> dict[str, Any]:
    """The JSON object in the body. Providers that offer a form encoding (GitHub, Gitea) put it in `payload=`."""
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    raw: bytes | str = body
    if content_type == "application/x-www-form-urlencoded":
        try:
            fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
        except (UnicodeDecodeError, ValueError) as e:
            raise MalformedPayload("the form-encoded body cannot be read") from e
        if len(fields.get("payload", [])) != 1:
            raise MalformedPayload("a form-encoded delivery must have exactly one `payload` field")
        raw = fields["payload"][0]
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as e:  # RecursionError: absurdly deep nesting, e.g. 100,000 `[`
        raise MalformedPayload("the body is not valid JSON") from e
    if not isinstance(data, dict):
        raise MalformedPayload("the body must be a JSON object")
    return data


def obj(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    """`data[key]` when it is a JSON object, else {} (payload fields are optional unless a provider says otherwise)."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def required_text(data: Mapping[str, Any], key: str, what: str) -> str:
    value = text(data, key)
    if value is None:
        raise MalformedPayload(f"{what}: `{key}` is missing or not a string")
    return value


def urls(*values: object) -> tuple[str, ...]:
    """The non-empty strings among `values`, de-duplicated, in order."""
    return tuple(dict.fromkeys(v for v in values if isinstance(v, str) and v))


def first_header(headers: Headers, names: Iterable[str]) -> str | None:
    for name in names:
        if name in headers:
            return headers[name]
    return None
