"""API tokens in the store: the queries behind `odin.api.auth.api_tokens`.

The API makes the token and its hash and decides what a token may do; this module stores, lists, revokes and finds
rows by hash (an indexed equality lookup on every request made with a token) and answers with plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from odin.controller.store.db import DbEngine, read_once, reading, transaction
from odin.controller.store.tables import API_TOKENS, USERS
from odin.controller.store.types import utcnow


@dataclass(frozen=True, slots=True)
class TokenRow:
    """A token as listed: never its hash."""

    id: int
    name: str
    username: str
    role: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """What a request's token check needs: the token's state and its user's."""

    id: int
    role: str
    expires_at: datetime | None
    revoked_at: datetime | None
    username: str
    user_role: str
    disabled: bool


_SELECT = sa.select(
    API_TOKENS.c.id,
    API_TOKENS.c.name,
    USERS.c.username,
    API_TOKENS.c.role,
    API_TOKENS.c.prefix,
    API_TOKENS.c.created_at,
    API_TOKENS.c.expires_at,
    API_TOKENS.c.last_used_at,
    API_TOKENS.c.revoked_at,
).join(USERS, USERS.c.id == API_TOKENS.c.user_id)

_CHECK = (
    sa.select(
        API_TOKENS.c.id,
        API_TOKENS.c.role,
        API_TOKENS.c.expires_at,
        API_TOKENS.c.revoked_at,
        USERS.c.username,
        USERS.c.role.label("user_role"),
        USERS.c.disabled,
    )
    .join(USERS, USERS.c.id == API_TOKENS.c.user_id)
    .where(API_TOKENS.c.token_hash == sa.bindparam("token_hash"))
)


def _row(row: Any) -> TokenRow:
    return TokenRow(
        id=row.id,
        name=row.name,
        username=row.username,
        role=row.role,
        prefix=row.prefix,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def insert_token(
    db: DbEngine,
    username: str,
    *,
    name: str,
    token_hash: str,
    prefix: str,
    role: str,
    created_at: datetime,
    expires_at: datetime | None,
) -> TokenRow | None:
    """Store a new token of `username`; None when there is no such user."""
    with transaction(db) as conn:
        user_id = conn.execute(sa.select(USERS.c.id).where(USERS.c.username == username)).scalar()
        if user_id is None:
            return None
        token_id = conn.execute(
            API_TOKENS.insert()
            .values(
                user_id=user_id,
                name=name,
                token_hash=token_hash,
                prefix=prefix,
                role=role,
                created_at=created_at,
                expires_at=expires_at,
            )
            .returning(API_TOKENS.c.id)
        ).scalar_one()
        return _row(conn.execute(_SELECT.where(API_TOKENS.c.id == token_id)).one())


def list_tokens(db: DbEngine, username: str | None = None) -> list[TokenRow]:
    """Tokens of one user (or everyone's), newest first, revoked ones included."""
    q = _SELECT.order_by(API_TOKENS.c.created_at.desc(), API_TOKENS.c.id.desc())
    if username is not None:
        q = q.where(USERS.c.username == username)
    with reading(db) as conn:
        return [_row(r) for r in conn.execute(q)]


def revoke_token(db: DbEngine, token_id: int, *, owner: str | None) -> TokenRow | None:
    """Mark a token (of `owner`, or anyone's when None) revoked unless it already is; None when there is none."""
    with transaction(db) as conn:
        q = _SELECT.where(API_TOKENS.c.id == token_id)
        if owner is not None:
            q = q.where(USERS.c.username == owner)
        row = conn.execute(q).first()
        if row is None:
            return None
        if row.revoked_at is None:
            conn.execute(API_TOKENS.update().where(API_TOKENS.c.id == token_id).values(revoked_at=utcnow()))
            row = conn.execute(_SELECT.where(API_TOKENS.c.id == token_id)).one()
    return _row(row)


def find_token(db: DbEngine, token_hash: str) -> TokenCheck | None:
    """The token with this hash and its user's standing; None when no token has it."""
    row = read_once(db, lambda conn: conn.execute(_CHECK, {"token_hash": token_hash}).first())
    if row is None:
        return None
    return TokenCheck(row.id, row.role, row.expires_at, row.revoked_at, row.username, row.user_role, bool(row.disabled))


def touch_token(db: DbEngine, token_id: int) -> None:
    """Record that the token was used now."""
    with transaction(db) as conn:
        conn.execute(API_TOKENS.update().where(API_TOKENS.c.id == token_id).values(last_used_at=utcnow()))
