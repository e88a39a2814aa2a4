"""Users and roles: who may read (viewer), start and stop runs (member), and manage users (admin)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from odin.api.auth.passwords import hash_password, needs_rehash, rehash, verify_dummy, verify_password
from odin.controller.store import users as store
from odin.controller.store.db import DbEngine


class Role(StrEnum):
    VIEWER = "viewer"
    MEMBER = "member"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        return _RANK[self] >= _RANK[needed]


_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2}


class UserExists(Exception):
    pass


class UserNotFound(Exception):
    pass


class InvalidUsername(ValueError):
    pass


class LastAdmin(Exception):
    """The change would leave no enabled admin, and nobody could manage users any more."""


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user as the API shows it: never the password hash."""

    id: int
    username: str
    role: Role
    disabled: bool
    email: str | None
    created_at: datetime


_USERNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


def check_username(username: str) -> None:
    """Names appear in run records, commit authors and logs: keep them short and unambiguous."""
    if not 1 <= len(username) <= 100 or not set(username) <= _USERNAME_CHARS or username[0] in ".-":
        raise InvalidUsername(
            "a user name has 1 to 100 characters among letters, digits, '.', '_', '-' and '@', "
            "and does not start with '.' or '-'"
        )


@dataclass(frozen=True, slots=True)
class Standing:
    """What a token may do now, by the store: checked on every request (see `odin.api.auth.standing`)."""

    user_id: int
    role: Role
    disabled: bool
    generation: int
    logged_out: frozenset[str] = frozenset()  # `jti`s of sessions ended one by one, not yet expired


@dataclass(frozen=True, slots=True)
class LoginResult:
    username: str
    role: Role
    user_id: int
    generation: int


def _info(row: store.UserRow) -> UserInfo:
    return UserInfo(row.id, row.username, Role(row.role), row.disabled, row.email, row.created_at)


def create_user(
    db: DbEngine, username: str, password: str, role: Role = Role.VIEWER, *, email: str | None = None
) -> int:
    check_username(username)
    user_id = store.insert_user(db, username, hash_password(password), role.value, email=email)
    if user_id is None:
        raise UserExists(f"user {username!r} already exists")
    return user_id


def ensure_admin(db: DbEngine, password: str | None) -> bool:
    """First start: create `admin` with the configured password. Never a default password. True if created."""
    if not password:
        return False
    if store.user_exists(db, "admin"):
        return False
    try:
        create_user(db, "admin", password, Role.ADMIN)
    except UserExists:
        return False
    return True


def authenticate(db: DbEngine, username: str, password: str) -> LoginResult | None:
    """Who logged in, when the password matches an enabled user; None otherwise, in constant-ish time.

    A hash made with older (weaker) argon2 parameters than the current ones is replaced on a successful login, the
    only moment the password is known: raising the parameters upgrades every active user's hash over time.
    """
    row = store.credentials(db, username)
    if row is None:
        verify_dummy(password)
        return None
    if not verify_password(row.password_hash, password) or row.disabled:
        return None
    if needs_rehash(row.password_hash):
        store.replace_password_hash(db, row.id, row.password_hash, rehash(password))
    return LoginResult(row.username, Role(row.role), row.id, row.token_generation)


def standing(db: DbEngine, username: str) -> Standing | None:
    """The user's current role, state, token generation and logged-out sessions; None when there is no such user."""
    row = store.standing(db, username)
    if row is None:
        return None
    return Standing(row.user_id, Role(row.role), row.disabled, row.generation, row.logged_out)


def end_session(db: DbEngine, username: str, jti: str, expires_at: datetime) -> None:
    """Log one session out: its token (`jti`) stops working; the user's other sessions go on."""
    if not store.end_session(db, username, jti, expires_at):
        raise UserNotFound(f"no user {username!r}")


def end_sessions(db: DbEngine, username: str) -> None:
    """Log `username` out everywhere: every access token issued so far stops working (API tokens are kept).

    One generation number per user rather than a row per token: the server does not keep the tokens it issued.
    """
    if not store.raise_generation(db, username):
        raise UserNotFound(f"no user {username!r}")


def get_user(db: DbEngine, username: str) -> UserInfo:
    row = store.get_user(db, username)
    if row is None:
        raise UserNotFound(f"no user {username!r}")
    return _info(row)


def list_users(db: DbEngine) -> list[UserInfo]:
    return [_info(r) for r in store.list_users(db)]


def update_user(
    db: DbEngine,
    username: str,
    *,
    role: Role | None = None,
    disabled: bool | None = None,
    password: str | None = None,
    email: str | None = None,
) -> UserInfo:
    """Change what is given; the rest stays. A new password is hashed here (and checked for strength).

    A new password or disabling ends the user's sessions (their token generation goes up), so re-enabling a user
    does not revive tokens issued before. A role change needs no such step: every request reads the current role.
    """
    values: dict[str, Any] = {}
    if role is not None:
        values["role"] = role.value
    if disabled is not None:
        values["disabled"] = disabled
    if password is not None:
        values["password_hash"] = hash_password(password)
    if email is not None:
        values["email"] = email or None
    try:
        row = store.update_user(
            db, username, values, end_sessions=password is not None or bool(disabled), admin_role=Role.ADMIN.value
        )
    except store.NoEnabledAdmin as e:
        raise LastAdmin(f"{username!r} is the last enabled admin; make another admin first") from e
    if row is None:
        raise UserNotFound(f"no user {username!r}")
    return _info(row)
