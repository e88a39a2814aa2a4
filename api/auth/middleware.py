"""Authenticates every HTTP request to `/v1` from its bearer token; public routes opt out by name.

Browsers using the console send the same JWT in the HttpOnly session cookie instead (`odin.api.auth.cookies`): it is
accepted when no `Authorization` header is sent, from this site only, and with the CSRF token on requests that change
something.

Handlers that must stay open (login, health, readiness, metrics, webhooks with their own signatures) set
`exclude_from_auth=True` in their route decorator; everything else requires a valid token. Roles are enforced by
guards (`require(Role.MEMBER)`), not here: authentication says who, guards say what.

Two kinds of bearer token are accepted: short-lived JWTs from `POST /v1/auth/token` (signature verified in process,
then the user's standing checked against the store, see `odin.api.auth.standing`) and API tokens `odin_...` (looked
up by hash in the store, in a worker thread so the event loop never waits on it, and remembered for
ODIN_AUTH_CACHE_SECONDS, see `odin.api.auth.api_tokens`). Either way the role is the user's role now. WebSocket
connections authenticate inside their handler (see `odin.api.ws`): browsers cannot set headers on them.

A 401 carries `WWW-Authenticate: Bearer` (RFC 6750), with `error="invalid_token"` when a token was presented.
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
from odin.api.auth.cookies import CSRF_HEADER, SAFE_METHODS, cookie_token, csrf_ok, same_origin
from odin.api.auth.standing import Standings
from odin.api.auth.tokens import LEEWAY_SECONDS, Claims, TokenInvalid, TokenKeys, bearer_challenge, verify
from odin.api.auth.users import Role, Standing


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

    JWTs whose signature verified once are remembered until they expire (a bounded cache keyed by the token itself):
    the signature and claims cannot change, so checking them again on every request of a session would only spend
    CPU. What can change — the user's existence, state, role and token generation — is checked on every use, against
    `standings` (the store, cached briefly and forgotten on change).
    """

    CACHE_SIZE = 10_000

    def __init__(
        self, keys: TokenKeys, api_tokens: ApiTokenVerifier | None, standings: Standings, *, max_ttl: int
    ) -> None:
        self.keys = keys
        self.api_tokens = api_tokens
        self.standings = standings
        self.max_ttl = max_ttl
        self._verified: dict[str, Claims] = {}
        if api_tokens is not None:
            standings.on_forget(api_tokens.forget_user)  # a user changed here: their API tokens are looked up again

    async def authenticate(self, token: str) -> Principal:
        token = token.strip()
        if not token:
            raise TokenInvalid("missing bearer token: log in (`odinctl login`) or send an API token")
        if is_api_token(token):
            if self.api_tokens is None:
                raise TokenInvalid("API tokens are not accepted by this server")
            owner = self.api_tokens.cached(token)
            if owner is None:
                owner = await anyio.to_thread.run_sync(self.api_tokens.verify, token)
            return Principal(owner.username, owner.role, str(owner.token_id), "api", owner.expires_at)
        claims = self._verified.get(token)
        if claims is not None and claims.exp + LEEWAY_SECONDS <= time.time():
            del self._verified[token]
            raise TokenInvalid("the token has expired; log in again")
        if claims is None:
            claims = verify(self.keys, token, max_ttl=self.max_ttl)
            if len(self._verified) >= self.CACHE_SIZE:
                self._verified.clear()  # simplest bound: sessions re-verify once, then are cached again
            self._verified[token] = claims
        try:
            role = _judge(claims, await self.standings.get(claims.sub))
        except TokenInvalid:  # the cached standing may be older than the token: ask the store before refusing
            self.standings.forget(claims.sub)
            role = _judge(claims, await self.standings.get(claims.sub))
        return Principal(claims.sub, role, claims.jti, "session", datetime.fromtimestamp(claims.exp, UTC))


def _judge(claims: Claims, user: Standing | None) -> Role:
    """The role a verified token has now, or `TokenInvalid` saying why it has none."""
    if user is None or user.user_id != claims.uid:
        raise TokenInvalid("the user of this token no longer exists")
    if user.disabled:
        raise TokenInvalid("the user of this token is disabled")
    if user.generation != claims.gen:
        raise TokenInvalid("this token was ended by a logout or a password change; log in again")
    if claims.jti in user.logged_out:
        raise TokenInvalid("this session was logged out; log in again")
    return user.role


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        # The console's pages authenticate from the session cookie themselves (and send a browser to the login page
        # instead of answering 401): see `odin.api.console`.
        super().__init__(app, exclude=["^/schema", "^/console", "^/$"], scopes={ScopeType.HTTP})
        self.authenticator = authenticator

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:  # type: ignore[type-arg]
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header and (session := cookie_token(connection.cookies)) is not None:
            _check_cookie_request(connection, session)
            scheme, token = "bearer", session
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException(
                "missing bearer token: log in (`odinctl login`) or send an API token",
                headers={"WWW-Authenticate": bearer_challenge()},
            )
        try:
            principal = await self.authenticator.authenticate(token)
        except TokenInvalid as e:
            raise NotAuthorizedException(str(e), headers={"WWW-Authenticate": bearer_challenge(str(e))}) from e
        return AuthenticationResult(user=principal, auth=principal)


def _check_cookie_request(connection: ASGIConnection, session: str) -> None:  # type: ignore[type-arg]
    """A request authenticated by the console's cookie: from this site, and with the CSRF token when it changes
    something (see `odin.api.auth.cookies`)."""
    if not same_origin(connection.headers):
        raise PermissionDeniedException("cross-origin request refused: the session cookie only works from Odin's pages")
    if connection.scope.get("method", "GET") not in SAFE_METHODS and not csrf_ok(
        session, connection.headers.get(CSRF_HEADER)
    ):
        raise PermissionDeniedException(
            "missing or wrong X-CSRF-Token header: requests made with the console's cookie must carry the page's "
            "CSRF token (or use an Authorization: Bearer token)"
        )


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
