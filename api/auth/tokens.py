"""JWT access tokens: issued at login, verified on every `/v1` request.

Decisions: the accepted algorithms are pinned to the one configured (so `alg: none` and HS/RS confusion are
rejected by pyjwt before any key is used); `iss` and `aud` are required and checked; a small leeway absorbs clock
skew between replicas; every token has a `jti` so it can be traced (whoami, logs). HS256 secrets shorter than 32
bytes are refused at start rather than silently accepted.

A valid signature says only that this server issued the token once. What it may do now is the store's answer: the
token names its user (`sub`, `uid`) and the user's token generation at login (`gen`); the middleware compares them
with the user's current record on every request (see `odin.api.auth.standing`). The lifetime is the server's too: a
token whose `exp - iat` exceeds `max_ttl` (ODIN_TOKEN_TTL), or issued in the future, is refused even when signed.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

ISSUER = "odin"
AUDIENCE = "odin-api"
LEEWAY_SECONDS = 30
MIN_HS_SECRET_BYTES = 32


class TokenInvalid(Exception):
    """The token cannot be accepted; the message is safe to show to the client."""


REALM = "odin"


def bearer_challenge(description: str | None = None) -> str:
    """The `WWW-Authenticate` value of a 401 (RFC 6750 section 3): `error="invalid_token"` when a token was
    presented and refused (`description` says why); without an error code when none was presented."""
    if description is None:
        return f'Bearer realm="{REALM}"'
    # error_description allows printable ASCII except '"' and '\\' (RFC 6750 section 3).
    safe = "".join(c if " " <= c <= "~" and c not in '"\\' else "'" if c == '"' else "?" for c in description)
    return f'Bearer realm="{REALM}", error="invalid_token", error_description="{safe[:200]}"'


ACCESS = "access"
"""The only kind of JWT Odin issues (API tokens are not JWTs); any other `kind` is refused."""


@dataclass(frozen=True, slots=True)
class Claims:
    sub: str
    role: str  # the role at login, for clients to display; authority comes from the store
    jti: str
    exp: int
    uid: int
    gen: int
    iat: int = 0
    kind: str = ACCESS


@dataclass(frozen=True)
class TokenKeys:
    """Signing and verification keys for one algorithm: HS256 (shared secret) or RS256/EdDSA (key pair)."""

    algorithm: str
    signing_key: Any
    verification_key: Any

    @classmethod
    def hs256(cls, secret: bytes) -> TokenKeys:
        if len(secret) < MIN_HS_SECRET_BYTES:
            raise ValueError(f"the JWT secret must be at least {MIN_HS_SECRET_BYTES} bytes (got {len(secret)})")
        return cls("HS256", secret, secret)

    @classmethod
    def from_pem(cls, algorithm: str, private_pem: bytes, public_pem: bytes) -> TokenKeys:
        if algorithm not in ("RS256", "EdDSA", "ES256"):
            raise ValueError(f"unsupported JWT algorithm {algorithm!r}")
        from cryptography.hazmat.primitives import serialization

        private = serialization.load_pem_private_key(private_pem, password=None)
        public = serialization.load_pem_public_key(public_pem)
        return cls(algorithm, private, public)


def load_or_create_secret(path: Path) -> bytes:
    """The embedded default: a random secret generated once, kept 0600 in the data directory."""
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48).encode()
    fd = path.open("xb")
    try:
        path.chmod(0o600)
        fd.write(secret)
    finally:
        fd.close()
    return secret


def issue(
    keys: TokenKeys, *, subject: str, role: str, ttl: int, user_id: int, generation: int, kind: str = ACCESS
) -> tuple[str, Claims]:
    now = int(time.time())
    claims = Claims(
        sub=subject, role=role, jti=uuid.uuid4().hex, exp=now + ttl, uid=user_id, gen=generation, iat=now, kind=kind
    )
    payload = {
        "sub": subject,
        "role": role,
        "iat": now,
        "nbf": now,
        "exp": claims.exp,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": claims.jti,
        "kind": kind,
        "uid": user_id,
        "gen": generation,
    }
    return jwt.encode(payload, keys.signing_key, algorithm=keys.algorithm), claims


_JTI = re.compile(r"[A-Za-z0-9_-]{1,64}")
_REQUIRED = ["sub", "role", "iat", "exp", "iss", "aud", "jti", "kind", "uid", "gen"]


def verify(keys: TokenKeys, token: str, *, max_ttl: int | None = None) -> Claims:
    """The token's claims, once its signature, issuer, audience, times and kind are right; else `TokenInvalid`."""
    try:
        payload = jwt.decode(
            token,
            keys.verification_key,
            algorithms=[keys.algorithm],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY_SECONDS,
            options={"require": _REQUIRED},
        )
    except jwt.ExpiredSignatureError as e:
        raise TokenInvalid("the token has expired; log in again") from e
    except jwt.InvalidTokenError as e:
        raise TokenInvalid(f"invalid token: {e}") from e
    try:
        claims = Claims(
            sub=str(payload["sub"]),
            role=str(payload["role"]),
            jti=str(payload["jti"]),
            exp=int(payload["exp"]),
            uid=_integer(payload["uid"]),
            gen=_integer(payload["gen"]),
            iat=int(payload["iat"]),
            kind=str(payload["kind"]),
        )
    except (TypeError, ValueError) as e:
        raise TokenInvalid("invalid token: `uid` and `gen` must be integers") from e
    if not _JTI.fullmatch(claims.jti):  # it names the session in the store: a bounded, plain identifier
        raise TokenInvalid("invalid token: `jti` must be 1 to 64 letters, digits, '-' or '_'")
    if claims.kind != ACCESS:
        raise TokenInvalid(f"invalid token: kind {claims.kind!r} is not an access token")
    if claims.iat > time.time() + LEEWAY_SECONDS:  # pyjwt < 2.10 does not check it
        raise TokenInvalid("invalid token: the token is not yet valid (iat in the future)")
    if max_ttl is not None and claims.exp - claims.iat > max_ttl:
        raise TokenInvalid(f"invalid token: it lives longer than this server allows ({max_ttl} s); log in again")
    return claims


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("not an integer")
    return value
