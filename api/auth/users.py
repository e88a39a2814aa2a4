"""Users and roles: who may read (viewer), start and stop runs (member), and manage users (admin)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine as DbEngine

from odin.api.auth.passwords import hash_password, needs_rehash, rehash, verify_dummy, verify_password
from odin.controller.store.db import transaction
from odin.controller.store.models import REVOKED_SESSIONS, USERS
from odin.controller.store.types import utcnow


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


def _info(row: Any) -> UserInfo:
    return UserInfo(row.id, row.username, Role(row.role), bool(row.disabled), row.email, row.created_at)


def create_user(
    db: DbEngine, username: str, password: str, role: Role = Role.VIEWER, *, email: str | None = None
) -> int:
    check_username(username)
    password_hash = hash_password(password)
    with transaction(db) as conn:
        try:
            with conn.begin_nested():
                return int(
                    conn.execute(
                        USERS.insert()
                        .values(
                            username=username,
                            password_hash=password_hash,
                            role=role.value,
                            disabled=False,
                            created_at=utcnow(),
                            email=email,
                        )
                        .returning(USERS.c.id)
                    ).scalar_one()
                )
        except sa.exc.IntegrityError as e:
            raise UserExists(f"user {username!r} already exists") from e


def ensure_admin(db: DbEngine, password: str | None) -> bool:
    """First start: create `admin` with the configured password. Never a default password. True if created."""
    if not password:
        return False
    with db.connect() as conn:
        exists = conn.execute(sa.select(USERS.c.id).where(USERS.c.username == "admin")).first()
    if exists:
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
    with db.connect() as conn:
        row = conn.execute(
            sa.select(
                USERS.c.id,
                USERS.c.username,
                USERS.c.password_hash,
                USERS.c.role,
                USERS.c.disabled,
                USERS.c.token_generation,
            ).where(USERS.c.username == username)
        ).first()
    if row is None:
        verify_dummy(password)
        return None
    if not verify_password(row.password_hash, password) or row.disabled:
        return None
    if needs_rehash(row.password_hash):
        with transaction(db) as conn:  # only if unchanged meanwhile: a concurrent password change wins
            conn.execute(
                USERS.update()
                .where(USERS.c.id == row.id, USERS.c.password_hash == row.password_hash)
                .values(password_hash=rehash(password))
            )
    return LoginResult(row.username, Role(row.role), row.id, row.token_generation)


def standing(db: DbEngine, username: str) -> Standing | None:
    """The user's current role, state, token generation and logged-out sessions; None when there is no such user."""
    with db.connect() as conn:
        row = conn.execute(
            sa.select(USERS.c.id, USERS.c.role, USERS.c.disabled, USERS.c.token_generation).where(
                USERS.c.username == username
            )
        ).first()
        if row is None:
            return None
        logged_out = frozenset(
            conn.execute(
                sa.select(REVOKED_SESSIONS.c.jti).where(
                    REVOKED_SESSIONS.c.user_id == row.id, REVOKED_SESSIONS.c.expires_at > utcnow()
                )
            ).scalars()
        )
    return Standing(row.id, Role(row.role), bool(row.disabled), int(row.token_generation), logged_out)


def end_session(db: DbEngine, username: str, jti: str, expires_at: datetime) -> None:
    """Log one session out: its token (`jti`) stops working; the user's other sessions go on."""
    with transaction(db) as conn:
        user_id = conn.execute(sa.select(USERS.c.id).where(USERS.c.username == username)).scalar()
        if user_id is None:
            raise UserNotFound(f"no user {username!r}")
        now = utcnow()
        conn.execute(REVOKED_SESSIONS.delete().where(REVOKED_SESSIONS.c.expires_at <= now))  # nothing to remember
        if expires_at > now:
            try:
                with conn.begin_nested():
                    conn.execute(REVOKED_SESSIONS.insert().values(jti=jti, user_id=user_id, expires_at=expires_at))
            except sa.exc.IntegrityError:
                pass  # logged out twice at once: once is enough


def end_sessions(db: DbEngine, username: str) -> None:
    """Log `username` out everywhere: every access token issued so far stops working (API tokens are kept).

    One generation number per user rather than a row per token: the server does not keep the tokens it issued.
    """
    with transaction(db) as conn:
        res = conn.execute(
            USERS.update().where(USERS.c.username == username).values(token_generation=USERS.c.token_generation + 1)
        )
        if not res.rowcount:
            raise UserNotFound(f"no user {username!r}")


def get_user(db: DbEngine, username: str) -> UserInfo:
    with db.connect() as conn:
        row = conn.execute(sa.select(USERS).where(USERS.c.username == username)).first()
    if row is None:
        raise UserNotFound(f"no user {username!r}")
    return _info(row)


def list_users(db: DbEngine) -> list[UserInfo]:
    with db.connect() as conn:
        return [_info(r) for r in conn.execute(sa.select(USERS).order_by(USERS.c.username))]


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
    if password is not None or disabled:
        values["token_generation"] = USERS.c.token_generation + 1
    if email is not None:
        values["email"] = email or None
    with transaction(db) as conn:
        if values:
            res = conn.execute(USERS.update().where(USERS.c.username == username).values(**values))
            if not res.rowcount:
                raise UserNotFound(f"no user {username!r}")
            admins = conn.execute(
                sa.select(sa.func.count())
                .select_from(USERS)
                .where(USERS.c.role == Role.ADMIN.value, USERS.c.disabled.is_(False))
            ).scalar_one()
            if not admins:
                raise LastAdmin(f"{username!r} is the last enabled admin; make another admin first")
        row = conn.execute(sa.select(USERS).where(USERS.c.username == username)).first()
    if row is None:
        raise UserNotFound(f"no user {username!r}")
    return _info(row)
