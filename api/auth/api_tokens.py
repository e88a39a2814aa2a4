"""Long-lived API tokens for CI jobs and tools: created, listed, revoked; stored as a hash, shown once.

Format: `odin_` + 43 URL-safe characters (256 random bits). The prefix makes a leaked token easy to recognise (secret
scanners, logs) and lets the middleware tell it from a JWT without trying to parse it.

Why SHA-256 and not argon2 (which protects passwords): a slow, salted hash exists to make guessing *low-entropy*
secrets expensive after a database leak. Nobody guesses 256 random bits, so a fast hash loses nothing there, and it
lets every request find its token by an indexed equality lookup instead of spending ~50 ms of CPU on argon2.

A token acts as its user with the token's role, capped by the user's current role: demoting or disabling a user
takes effect on their tokens at once.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from odin.api.auth.tokens import TokenInvalid
from odin.api.auth.users import Role
from odin.controller.store import tokens as store
from odin.controller.store.db import DbEngine
from odin.controller.store.types import utcnow

TOKEN_PREFIX = "odin_"
_SHOWN_PREFIX = 12  # "odin_" and 7 characters: enough to tell tokens apart in a list, useless to an attacker
_LAST_USED_EVERY = 60.0  # seconds: `last_used_at` is a hint, not an audit log; do not write on every request


class TokenNotFound(Exception):
    pass


@dataclass(frozen=True, slots=True)
class ApiTokenInfo:
    id: int
    name: str
    username: str
    role: Role
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class TokenOwner:
    """Who an API token authenticates as."""

    token_id: int
    username: str
    role: Role
    expires_at: datetime | None


def is_api_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _info(row: store.TokenRow) -> ApiTokenInfo:
    return ApiTokenInfo(
        id=row.id,
        name=row.name,
        username=row.username,
        role=Role(row.role),
        prefix=row.prefix,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def create_api_token(
    db: DbEngine, username: str, name: str, role: Role, *, expires_in_days: int | None = None
) -> tuple[str, ApiTokenInfo]:
    """A new token for `username` (the caller checks `role` is within the user's). Returns it in clear, once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    row = store.insert_token(
        db,
        username,
        name=name,
        token_hash=hash_token(token),
        prefix=token[:_SHOWN_PREFIX],
        role=role.value,
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    if row is None:
        raise TokenNotFound(f"no user {username!r}")
    return token, _info(row)


def list_api_tokens(db: DbEngine, username: str | None = None) -> list[ApiTokenInfo]:
    """Tokens of one user (or everyone's, for admins), newest first; revoked ones included, marked."""
    return [_info(r) for r in store.list_tokens(db, username)]


def revoke_api_token(db: DbEngine, token_id: int, *, owner: str | None) -> ApiTokenInfo:
    """Revoke a token (of `owner`, or anyone's when None). Revoking twice is fine; unknown -> TokenNotFound."""
    row = store.revoke_token(db, token_id, owner=owner)
    if row is None:
        raise TokenNotFound(f"no API token {token_id}")
    return _info(row)


class ApiTokenVerifier:
    """Checks presented API tokens against the store; records `last_used_at` at most once a minute per token."""

    def __init__(self, db: DbEngine) -> None:
        self.db = db
        self._last_write: dict[int, float] = {}
        self._lock = threading.Lock()

    def verify(self, token: str) -> TokenOwner:
        row = store.find_token(self.db, hash_token(token))
        if row is None:
            raise TokenInvalid("unknown API token")
        if row.revoked_at is not None:
            raise TokenInvalid("this API token was revoked")
        if row.expires_at is not None and row.expires_at <= utcnow():
            raise TokenInvalid("this API token has expired; create a new one")
        if row.disabled:
            raise TokenInvalid("the user of this API token is disabled")
        token_role, user_role = Role(row.role), Role(row.user_role)
        role = token_role if user_role.allows(token_role) else user_role
        self._touch(row.id)
        return TokenOwner(row.id, row.username, role, row.expires_at)

    def _touch(self, token_id: int) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last_write.get(token_id)
            if last is not None and now - last < _LAST_USED_EVERY:
                return
            self._last_write[token_id] = now
        store.touch_token(self.db, token_id)
