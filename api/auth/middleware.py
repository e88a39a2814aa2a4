"""Authenticates every HTTP request to `/v1` from its bearer token; public routes opt out by name.

Handlers that must stay open (login, health, readiness, metrics, webhooks with their own signatures) set
`exclude_from_auth=True` in their route decorator; everything else requires a valid token. Roles are enforced by
guards (`require(Role.MEMBER)`), not here: authentication says who, guards say what.
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar.connection import ASGIConnection
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp, Guard

from odin.api.auth.tokens import Claims, TokenInvalid, TokenKeys, verify
from odin.api.auth.users import Role


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a user (from a login token) or a CI client (from an API token)."""

    name: str
    role: Role
    token_id: str


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    def __init__(self, app: ASGIApp, keys: TokenKeys) -> None:
        super().__init__(app, exclude=["^/schema"], scopes={ScopeType.HTTP})
        self.keys = keys

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:  # type: ignore[type-arg]
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("missing bearer token: log in (`odinctl login`) or send an API token")
        try:
            claims: Claims = verify(self.keys, token.strip())
        except TokenInvalid as e:
            raise NotAuthorizedException(str(e)) from e
        try:
            role = Role(claims.role)
        except ValueError as e:
            raise NotAuthorizedException("invalid token: unknown role") from e
        return AuthenticationResult(user=Principal(claims.sub, role, claims.jti), auth=claims)


def require(role: Role) -> Guard:
    """A guard letting through principals with at least `role`."""

    def guard(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:  # type: ignore[type-arg]
        user = connection.scope.get("user")
        if not isinstance(user, Principal):
            raise NotAuthorizedException("authentication required")
        if not user.role.allows(role):
            raise PermissionDeniedException(f"this needs the {role.value} role; you are {user.role.value}")

    return guard
