"""Long-lived API tokens for CI jobs and tools: created, listed, revoked; stored as a hash, shown once.

Format: `odin_` + 43 URL-safe characters (256 random bits). The prefix makes a leaked token easy to recognise (secret
scanners, logs) and lets the middleware tell it from a JWT without trying to parse it.

Why SHA-256 and not argon2 (which protects passwords): a slow, salted hash exists to make guessing *low-entropy*
secrets expensive after a database leak. Nobody guesses 256 random bits, so a fast hash loses nothing there, and it
lets every request find its token by an indexed equality lookup instead of spending ~50 ms of CPU on argon2.

A token acts as its user with the token's role, capped by the user's current role: demoting or disabling a user
takes effect on their tokens at once.

Verified tokens are remembered for `ttl` seconds (ODIN_AUTH_CACHE_SECONDS, the bound that already applies to a
user's standing), keyed by the token's hash: CI polling `GET /v1/runs` sends the same token hundreds of times a
second, and a store lookup for each (a worker-thread hop, a pooled connection, a query) was the larger half of that
request's CPU. What the cache may not delay: a token's expiry is checked against the clock on every request; a
revocation or a change to its user made through this server (`forget`, `forget_user`) applies at the next request;
one made by another replica or `odin users` applies within `ttl`. Only tokens that verified are remembered: an
unknown, revoked or expired token is looked up every time.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
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
    """Checks presented API tokens against the store, remembering verified ones for `ttl` seconds (0: never);
    records `last_used_at` at most once a minute per token."""

    MAX_ENTRIES = 10_000

    def __init__(self, db: DbEngine, ttl: float = 0.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.db = db
        self.ttl = ttl
        self.clock = clock
        self._last_write: dict[int, float] = {}
        self._verified: dict[str, tuple[store.TokenCheck, float]] = {}  # token hash -> (the store's answer, read at)
        self._forgotten = 0  # bumped by each forget: an answer read before one is not remembered (it may predate it)
        self._lock = threading.Lock()

    def cached(self, token: str) -> TokenOwner | None:
        """The owner of a token verified less than `ttl` ago and not expired since; None: ask `verify`. No I/O, so
        the event loop calls it directly."""
        if self.ttl <= 0:
            return None
        digest = hash_token(token)
        with self._lock:
            entry = self._verified.get(digest)
        if entry is None:
            return None
        row, read_at = entry
        if self.clock() - read_at >= self.ttl:
            return None
        if row.expires_at is not None and row.expires_at <= utcnow():
            with self._lock:
                self._verified.pop(digest, None)
            return None  # `verify` says why, in the words every refusal uses
        return _owner(row)

    def verify(self, token: str) -> TokenOwner:
        """The token's owner as the store says now, or `TokenInvalid` saying why it is refused. Blocking."""
        digest = hash_token(token)
        with self._lock:
            read_at, forgotten = self.clock(), self._forgotten
        row = store.find_token(self.db, digest)
        if row is None:
            raise TokenInvalid("unknown API token")
        if row.revoked_at is not None:
            raise TokenInvalid("this API token was revoked")
        if row.expires_at is not None and row.expires_at <= utcnow():
            raise TokenInvalid("this API token has expired; create a new one")
        if row.disabled:
            raise TokenInvalid("the user of this API token is disabled")
        if self.ttl > 0:
            with self._lock:
                if len(self._verified) >= self.MAX_ENTRIES:
                    self._verified.clear()  # simplest bound: tokens in use are looked up once more, then cached
                if forgotten == self._forgotten:
                    self._verified[digest] = (row, read_at)
        self._touch(row.id)
        return _owner(row)

    def forget(self, token_id: int) -> None:
        """The token changed (revoked through this server): look it up again at its next use."""
        with self._lock:
            self._forgotten += 1
            for digest in [d for d, (row, _) in self._verified.items() if row.id == token_id]:
                del self._verified[digest]

    def forget_user(self, username: str) -> None:
        """The user changed (disabled, demoted, deleted through this server): look their tokens up again."""
        with self._lock:
            self._forgotten += 1
            for digest in [d for d, (row, _) in self._verified.items() if row.username == username]:
                del self._verified[digest]

    def _touch(self, token_id: int) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last_write.get(token_id)
            if last is not None and now - last < _LAST_USED_EVERY:
                return
            self._last_write[token_id] = now
        store.touch_token(self.db, token_id)


def _owner(row: store.TokenCheck) -> TokenOwner:
    """Who a verified token acts as: its user, with the token's role capped by the user's role now."""
    token_role, user_role = Role(row.role), Role(row.user_role)
    role = token_role if user_role.allows(token_role) else user_role
    return TokenOwner(row.id, row.username, role, row.expires_at)
