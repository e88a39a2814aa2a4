"""Users and their login sessions in the store: the queries behind `odin.api.auth.users`.

The API owns what a user may be (roles, name rules, password strength and hashing); this module only reads and
writes rows and answers with plain values. Roles are the strings stored in `users.role`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from odin.controller.store.db import DbEngine, reading, transaction
from odin.controller.store.tables import REVOKED_SESSIONS, USERS
from odin.controller.store.types import utcnow


class NoEnabledAdmin(Exception):
    """The change would leave no enabled user with the admin role; nothing was written."""


@dataclass(frozen=True, slots=True)
class UserRow:
    id: int
    username: str
    role: str
    disabled: bool
    email: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a login checks: the stored hash, whether the user may log in, the generation its token will carry."""

    id: int
    username: str
    password_hash: str
    role: str
    disabled: bool
    token_generation: int


@dataclass(frozen=True, slots=True)
class StandingRow:
    user_id: int
    role: str
    disabled: bool
    generation: int
    logged_out: frozenset[str]  # `jti`s of sessions ended one by one, not yet expired


def _user(row: Any) -> UserRow:
    return UserRow(row.id, row.username, row.role, bool(row.disabled), row.email, row.created_at)


def insert_user(db: DbEngine, username: str, password_hash: str, role: str, *, email: str | None) -> int | None:
    """The new user's id; None when the name is taken (the UNIQUE constraint decides, not a check first)."""
    with transaction(db) as conn:
        try:
            with conn.begin_nested():
                return int(
                    conn.execute(
                        USERS.insert()
                        .values(
                            username=username,
                            password_hash=password_hash,
                            role=role,
                            disabled=False,
                            created_at=utcnow(),
                            email=email,
                        )
                        .returning(USERS.c.id)
                    ).scalar_one()
                )
        except sa.exc.IntegrityError:
            return None


def user_exists(db: DbEngine, username: str) -> bool:
    with reading(db) as conn:
        return conn.execute(sa.select(USERS.c.id).where(USERS.c.username == username)).first() is not None


def credentials(db: DbEngine, username: str) -> Credentials | None:
    with reading(db) as conn:
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
        return None
    return Credentials(row.id, row.username, row.password_hash, row.role, bool(row.disabled), int(row.token_generation))


def replace_password_hash(db: DbEngine, user_id: int, old_hash: str, new_hash: str) -> None:
    """Store `new_hash` only if the hash is still `old_hash`: a concurrent password change wins."""
    with transaction(db) as conn:
        conn.execute(
            USERS.update()
            .where(USERS.c.id == user_id, USERS.c.password_hash == old_hash)
            .values(password_hash=new_hash)
        )


def standing(db: DbEngine, username: str) -> StandingRow | None:
    """The user's role, state, token generation and logged-out sessions; None when there is no such user."""
    with reading(db) as conn:
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
    return StandingRow(row.id, row.role, bool(row.disabled), int(row.token_generation), logged_out)


def end_session(db: DbEngine, username: str, jti: str, expires_at: datetime) -> bool:
    """Remember session `jti` as logged out until it expires (and forget expired ones); False: no such user."""
    with transaction(db) as conn:
        user_id = conn.execute(sa.select(USERS.c.id).where(USERS.c.username == username)).scalar()
        if user_id is None:
            return False
        now = utcnow()
        conn.execute(REVOKED_SESSIONS.delete().where(REVOKED_SESSIONS.c.expires_at <= now))  # nothing to remember
        if expires_at > now:
            try:
                with conn.begin_nested():
                    conn.execute(REVOKED_SESSIONS.insert().values(jti=jti, user_id=user_id, expires_at=expires_at))
            except sa.exc.IntegrityError:
                pass  # logged out twice at once: once is enough
    return True


def raise_generation(db: DbEngine, username: str) -> bool:
    """Raise the user's token generation (ends every session issued so far); False: no such user."""
    with transaction(db) as conn:
        res = conn.execute(
            USERS.update().where(USERS.c.username == username).values(token_generation=USERS.c.token_generation + 1)
        )
        return bool(res.rowcount)


def get_user(db: DbEngine, username: str) -> UserRow | None:
    with reading(db) as conn:
        row = conn.execute(sa.select(USERS).where(USERS.c.username == username)).first()
    return None if row is None else _user(row)


def list_users(db: DbEngine) -> list[UserRow]:
    with reading(db) as conn:
        return [_user(r) for r in conn.execute(sa.select(USERS).order_by(USERS.c.username))]


def update_user(
    db: DbEngine, username: str, changes: Mapping[str, Any], *, end_sessions: bool, admin_role: str
) -> UserRow | None:
    """Set the columns in `changes` (role, disabled, password_hash, email), raising the token generation too when
    `end_sessions`; None when there is no such user. Raises `NoEnabledAdmin` (and writes nothing) when no enabled
    user with `admin_role` would remain."""
    values = dict(changes)
    if end_sessions:
        values["token_generation"] = USERS.c.token_generation + 1
    with transaction(db) as conn:
        if values:
            res = conn.execute(USERS.update().where(USERS.c.username == username).values(**values))
            if not res.rowcount:
                return None
            admins = conn.execute(
                sa.select(sa.func.count())
                .select_from(USERS)
                .where(USERS.c.role == admin_role, USERS.c.disabled.is_(False))
            ).scalar_one()
            if not admins:
                raise NoEnabledAdmin(username)
        row = conn.execute(sa.select(USERS).where(USERS.c.username == username)).first()
    return None if row is None else _user(row)
