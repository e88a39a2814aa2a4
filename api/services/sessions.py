"""Logging in with a user name and password: shared by `POST /v1/auth/token` and the console's login form.

One function, so that the console's form is rate-limited exactly as the API is (per user name and address, per
address, and failures per account) and issues the same short-lived JWT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from litestar.exceptions import NotAuthorizedException, TooManyRequestsException

from odin.api.auth.tokens import issue
from odin.api.auth.users import Role, authenticate
from odin.api.context import AppContext


@dataclass(frozen=True, slots=True)
class Session:
    token: str
    username: str
    role: Role
    expires_in: int


def log_in(ctx: AppContext, username: str, password: str, address: str) -> Session:
    """A new session for `username`, or 401 (wrong credentials) / 429 (too many attempts, with Retry-After)."""
    assert ctx.login_limiter is not None and ctx.login_ip_limiter is not None
    assert ctx.login_account_limiter is not None
    wait = (
        ctx.login_ip_limiter.acquire(address)
        or ctx.login_limiter.acquire((username, address))
        or ctx.login_account_limiter.acquire(username)
    )
    if wait is not None:
        raise TooManyRequestsException(
            "too many login attempts; wait before trying again", headers={"Retry-After": str(math.ceil(wait))}
        )
    found = authenticate(ctx.db, username, password)
    if found is None:
        raise NotAuthorizedException("wrong username or password")
    ctx.login_account_limiter.refund(username)  # only failures count against the account
    token, _claims = issue(
        ctx.keys,
        subject=found.username,
        role=found.role.value,
        ttl=ctx.settings.token_ttl,
        user_id=found.user_id,
        generation=found.generation,
    )
    return Session(token, found.username, found.role, ctx.settings.token_ttl)
