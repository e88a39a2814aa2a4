"""JWT access tokens: issued at login, verified on every `/v1` request.

Decisions: the accepted algorithms are pinned to the one configured (so `alg: none` and HS/RS confusion are
rejected by pyjwt before any key is used); `iss` and `aud` are required and checked; a small leeway absorbs clock
skew between replicas; every token has a `jti` so it can be revoked or traced. HS256 secrets shorter than 32 bytes
are refused at start rather than silently accepted.
"""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class Claims:
    sub: str
    role: str
    jti: str
    exp: int
    kind: str = "access"


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


def issue(keys: TokenKeys, *, subject: str, role: str, ttl: int, kind: str = "access") -> tuple[str, Claims]:
    now = int(time.time())
    claims = Claims(sub=subject, role=role, jti=uuid.uuid4().hex, exp=now + ttl, kind=kind)
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
    }
    return jwt.encode(payload, keys.signing_key, algorithm=keys.algorithm), claims


def verify(keys: TokenKeys, token: str) -> Claims:
    try:
        payload = jwt.decode(
            token,
            keys.verification_key,
            algorithms=[keys.algorithm],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY_SECONDS,
            options={"require": ["sub", "role", "iat", "exp", "iss", "aud", "jti"]},
        )
    except jwt.ExpiredSignatureError as e:
        raise TokenInvalid("the token has expired; log in again") from e
    except jwt.InvalidTokenError as e:
        raise TokenInvalid(f"invalid token: {e}") from e
    return Claims(
        sub=str(payload["sub"]),
        role=str(payload["role"]),
        jti=str(payload["jti"]),
        exp=int(payload["exp"]),
        kind=str(payload.get("kind", "access")),
    )
