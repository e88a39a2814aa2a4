"""Authenticates every HTTP request to `/v1` from its bearer token; public routes opt out by name.

Handlers that must stay open (login, health, readiness, metrics, webhooks with their own signatures) set
`exclude_from_auth=True` in their route decorator; everything else requires a valid token. Roles are enforced by
guards (`require(Role.MEMBER)`), not here: authentication says who, guards say what.

Two kinds of bearer token are accepted: short-lived JWTs from `POST /v1/auth/token` (verified without the store) and
API tokens `odin_...` (looked up by hash in the store, in a worker thread so the event loop never waits on it).
WebSocket connections authenticate inside their handler (see `odin.api.ws`): browsers cannot set headers on them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio.to_thread
from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp, Guard

from odin.api.auth.api_tokens import ApiTokenVerifier, is_api_token
from odin.api.auth.tokens import LEEWAY_SECONDS, TokenInvalid, TokenKeys, verify
from odin.api.auth.users import Role


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (from a login token) or a CI client (from an API token acting as its user)."""

    name: str
    role: Role
    token_id: str
    kind: str = "session"  # "session" (JWT from a login) or "api" (an API token)
    expires_at: datetime | None = None


class Authenticator:
    """Turns a bearer token into a `Principal`, or raises `TokenInvalid` with a message safe to show.

    JWTs that verified once are remembered until they expire (a bounded cache keyed by the token itself): the
    signature and claims cannot change, so checking them again on every request of a session would only spend CPU
    (a tenth of a millisecond, a tenth of a request's cost). Expiry is still checked on every use.
    """

    CACHE_SIZE = 10_000

    def __init__(self, keys: TokenKeys, api_tokens: ApiTokenVerifier | None) -> None:
        self.keys = keys
        self.api_tokens = api_tokens
        self._verified: dict[str, Principal] = {}

    async def authenticate(self, token: str) -> Principal:
        token = token.strip()
        if not token:
            raise TokenInvalid("missing bearer token: log in (`odinctl login`) or send an API token")
        if is_api_token(token):
            if self.api_tokens is None:
                raise TokenInvalid("API tokens are not accepted by this server")
            owner = await anyio.to_thread.run_sync(self.api_tokens.verify, token)
            return Principal(owner.username, owner.role, str(owner.token_id), "api", owner.expires_at)
        known = self._verified.get(token)
        if known is not None and known.expires_at is not None:
            if known.expires_at.timestamp() + LEEWAY_SECONDS > time.time():
                return known
            del self._verified[token]
        claims = verify(self.keys, token)
        try:
            role = Role(claims.role)
        except ValueError as e:
            raise TokenInvalid("invalid token: unknown role") from e
        principal = Principal(claims.sub, role, claims.jti, "session", datetime.fromtimestamp(claims.exp, UTC))
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.clear()  # simplest bound: sessions re-verify once, then are cached again
        self._verified[token] = principal
        return principal


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        super().__init__(app, exclude=["^/schema"], scopes={ScopeType.HTTP})
        self.authenticator = authenticator

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:  # type: ignore[type-arg]
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("missing bearer token: log in (`odinctl login`) or send an API token")
        try:
            principal = await self.authenticator.authenticate(token)
        except TokenInvalid as e:
            raise NotAuthorizedException(str(e)) from e
        return AuthenticationResult(user=principal, auth=principal)


def principal_of(connection: ASGIConnection) -> Principal:  # type: ignore[type-arg]
    user = connection.scope.get("user")
    if not isinstance(user, Principal):
        raise NotAuthorizedException("authentication required")
    return user


def require(role: Role) -> Guard:
    """A guard letting through principals with at least `role`."""

    def guard(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:  # type: ignore[type-arg]
        user = principal_of(connection)
        if not user.role.allows(role):
            raise PermissionDeniedException(f"this needs the {role.value} role; you are {user.role.value}")

    return guard
