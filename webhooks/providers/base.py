"""What every provider module shares: the `Provider` interface, constant-time signature checks, safe JSON reading.

Signatures are checked against every configured secret, with no early exit, so neither the time taken nor anything
else tells a caller which secret matched or how many there are (two are valid while a secret is being rotated).

A check is a `BodyCheck` fed with the body as it arrives (`update`), so a delivery is verified while it streams in and
an unauthenticated body is never held whole in memory. What a check can know from the headers alone it says before
the body (`settled`): a missing or malformed signature, or a token that is wrong, fails without reading a byte.

Signature headers are read exactly as each provider writes them (`sha256=` and 64 lower-case hex digits, or the bare
hex): no other case, no surrounding whitespace, no other prefix. Accepting variants no provider sends only widens what
a forger may try.
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

    def check(self, headers: Headers, secrets: Sequence[bytes]) -> BodyCheck:
        """A check of this delivery's signature against `secrets`, to be fed the body as it arrives."""
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


class BodyCheck(Protocol):
    """One delivery's signature check, fed with the raw body chunk by chunk."""

    def settled(self) -> bool | None:
        """The outcome when the headers alone decide it (a missing or malformed signature, a token); else None."""
        ...

    def update(self, chunk: bytes) -> None: ...

    def matches(self) -> bool:
        """Whether the signature matches one of the secrets, once the whole body went through `update`."""
        ...


_HEX64 = re.compile(r"[0-9a-f]{64}")


def exact_hex_signature(value: str | None, prefix: str = "") -> bytes | None:
    """The 64 lower-case hex digits of `value` when it is exactly `prefix` followed by them, else None."""
    if value is None or not value.startswith(prefix):
        return None
    digest = value[len(prefix) :]
    return digest.encode("ascii") if _HEX64.fullmatch(digest) else None


class HmacSha256Check:
    """HMAC-SHA256 of the body under every secret, computed as the body streams in; compared with the given hex digest
    at the end, against every secret whatever the earlier comparisons found."""

    def __init__(self, given: bytes | None, secrets: Sequence[bytes]) -> None:
        self._given = given
        self._macs = [hmac.new(s, digestmod=hashlib.sha256) for s in secrets] if given is not None else []

    def settled(self) -> bool | None:
        return False if self._given is None or not self._macs else None

    def update(self, chunk: bytes) -> None:
        for mac in self._macs:
            mac.update(chunk)

    def matches(self) -> bool:
        if self._given is None:
            return False
        matched = False
        for mac in self._macs:
            matched |= hmac.compare_digest(mac.hexdigest().encode("ascii"), self._given)
        return matched


class SettledCheck:
    """A check that the body cannot change (a shared token in a header, which does not cover the body)."""

    def __init__(self, matched: bool) -> None:
        self._matched = matched

    def settled(self) -> bool | None:
        return self._matched

    def update(self, chunk: bytes) -> None:
        pass

    def matches(self) -> bool:
        return self._matched


def verify_whole(check: BodyCheck, body: bytes) -> bool:
    """Run `check` over a body already in memory."""
    if check.settled() is not None:
        return bool(check.settled())
    check.update(body)
    return check.matches()


def hmac_sha256_matches(signature: str | None, body: bytes, secrets: Sequence[bytes], *, prefix: str = "") -> bool:
    """Is `signature` exactly `prefix` + the lower-case hex HMAC-SHA256(secret, body) for one of the secrets? Every
    secret is compared, whatever the earlier comparisons found."""
    return verify_whole(HmacSha256Check(exact_hex_signature(signature, prefix), secrets), body)


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
