"""Verified API tokens are remembered for ODIN_AUTH_CACHE_SECONDS, and never longer: a revocation made elsewhere
(another replica, `odin`, the database) is refused once that bound has passed, one made through this server at once,
an expiry on every request. On a real store (SQLite and Postgres), with the cache's clock in the test's hands."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from odin.api.auth.api_tokens import ApiTokenVerifier, create_api_token, revoke_api_token
from odin.api.auth.middleware import Authenticator
from odin.api.auth.standing import Standings
from odin.api.auth.tokens import TokenInvalid, TokenKeys
from odin.api.auth.users import Role, create_user, update_user
from odin.controller.store.db import DbEngine
from odin.controller.store.models import API_TOKENS
from odin.controller.store.types import utcnow
from tests.support.wait import wait_until

TTL = 2.0


class Clock:
    """The cache's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def authenticator(db: DbEngine, clock: Clock, ttl: float = TTL) -> Authenticator:
    verifier = ApiTokenVerifier(db, ttl, clock=clock)
    return Authenticator(TokenKeys.hs256(b"k" * 40), verifier, Standings(db, ttl, clock=clock), max_ttl=3600)


def authenticate(auth: Authenticator, token: str) -> str:
    """The role the token acts with now, or TokenInvalid."""
    return asyncio.run(auth.authenticate(token)).role.value


def store_revokes(db: DbEngine, token_id: int) -> None:
    """What another replica or `odin` does: the store changes, this server's cache is not told."""
    with db.begin() as conn:
        conn.execute(API_TOKENS.update().where(API_TOKENS.c.id == token_id).values(revoked_at=utcnow()))


def test_a_revocation_elsewhere_is_refused_once_the_cache_bound_has_passed(db: DbEngine) -> None:
    create_user(db, "ci", "a-long-password", Role.MEMBER)
    token, info = create_api_token(db, "ci", "ci", Role.MEMBER)
    clock = Clock()
    auth = authenticator(db, clock)
    assert authenticate(auth, token) == "member"
    store_revokes(db, info.id)
    clock.now += TTL - 0.01
    assert authenticate(auth, token) == "member", "within the bound the verified answer is reused (no store read)"
    clock.now += 0.01
    with pytest.raises(TokenInvalid, match="revoked"):
        authenticate(auth, token)
    with pytest.raises(TokenInvalid, match="revoked"):
        authenticate(auth, token)  # a refused token is not remembered as valid, nor its refusal kept


def test_a_revocation_through_this_server_and_a_user_change_apply_at_once(db: DbEngine) -> None:
    create_user(db, "admin", "a-long-password", Role.ADMIN)  # the store keeps one enabled admin
    create_user(db, "ci", "a-long-password", Role.MEMBER)
    token, info = create_api_token(db, "ci", "ci", Role.MEMBER)
    other, _ = create_api_token(db, "ci", "other", Role.MEMBER)
    clock = Clock()
    auth = authenticator(db, clock)
    assert auth.api_tokens is not None
    assert authenticate(auth, token) == authenticate(auth, other) == "member"
    revoke_api_token(db, info.id, owner=None)
    auth.api_tokens.forget(info.id)  # what DELETE /v1/auth/tokens/{id} does after revoking
    with pytest.raises(TokenInvalid, match="revoked"):
        authenticate(auth, token)
    assert authenticate(auth, other) == "member"
    update_user(db, "ci", role=Role.VIEWER)
    auth.standings.forget("ci")  # what PATCH /v1/users/{name} does
    assert authenticate(auth, other) == "viewer", "the user's tokens are looked up again"
    update_user(db, "ci", disabled=True)
    auth.standings.forget("ci")
    with pytest.raises(TokenInvalid, match="disabled"):
        authenticate(auth, other)


def test_an_expiry_is_checked_on_every_request_whatever_the_cache(db: DbEngine) -> None:
    create_user(db, "ci", "a-long-password", Role.MEMBER)
    token, info = create_api_token(db, "ci", "ci", Role.MEMBER)
    with db.begin() as conn:
        conn.execute(
            API_TOKENS.update().where(API_TOKENS.c.id == info.id).values(expires_at=utcnow() + timedelta(seconds=1))
        )
    clock = Clock()
    auth = authenticator(db, clock, ttl=3600)
    assert authenticate(auth, token) == "member"

    def refused() -> bool:
        try:
            authenticate(auth, token)
        except TokenInvalid as e:
            assert "expired" in str(e)
            return True
        return False

    wait_until(refused, 10, message="an API token past its expiry, remembered for an hour, is refused")


def test_a_zero_ttl_reads_the_store_for_every_request(db: DbEngine) -> None:
    create_user(db, "ci", "a-long-password", Role.MEMBER)
    token, info = create_api_token(db, "ci", "ci", Role.MEMBER)
    auth = authenticator(db, Clock(), ttl=0)
    assert authenticate(auth, token) == "member"
    store_revokes(db, info.id)
    with pytest.raises(TokenInvalid, match="revoked"):
        authenticate(auth, token)
