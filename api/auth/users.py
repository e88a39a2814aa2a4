"""Users and roles: who may read (viewer), start and stop runs (member), and manage users (admin)."""

from __future__ import annotations

from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from odin.api.auth.passwords import hash_password, verify_dummy, verify_password
from odin.controller.store.db import transaction
from odin.controller.store.models import USERS
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


def create_user(db: Engine, username: str, password: str, role: Role = Role.VIEWER) -> int:
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
                        )
                        .returning(USERS.c.id)
                    ).scalar_one()
                )
        except sa.exc.IntegrityError as e:
            raise UserExists(f"user {username!r} already exists") from e


def ensure_admin(db: Engine, password: str | None) -> bool:
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


def authenticate(db: Engine, username: str, password: str) -> tuple[str, Role] | None:
    """(username, role) when the password matches an enabled user; None otherwise, in constant-ish time."""
    with db.connect() as conn:
        row = conn.execute(
            sa.select(USERS.c.username, USERS.c.password_hash, USERS.c.role, USERS.c.disabled).where(
                USERS.c.username == username
            )
        ).first()
    if row is None:
        verify_dummy(password)
        return None
    if not verify_password(row.password_hash, password) or row.disabled:
        return None
    return row.username, Role(row.role)
