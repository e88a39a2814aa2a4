"""Logging in (a short-lived JWT), who am I, and long-lived API tokens for CI."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from litestar import Request, delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from odin.api.auth.api_tokens import (
    ApiTokenInfo,
    create_api_token,
    list_api_tokens,
    revoke_api_token,
)
from odin.api.auth.middleware import Authenticator, principal_of
from odin.api.auth.tokens import LEEWAY_SECONDS
from odin.api.auth.users import Role, end_session, end_sessions
from odin.api.deps import Ctx, in_thread
from odin.api.errors import errors
from odin.api.schemas import (
    ApiTokenCreate,
    ApiTokenCreated,
    ApiTokenList,
    ApiTokenOut,
    TokenRequest,
    TokenResponse,
    WhoAmI,
)
from odin.api.services.sessions import log_in
from odin.controller.store.types import utcnow


@post(
    "/v1/auth/token",
    status_code=HTTP_200_OK,
    exclude_from_auth=True,
    sync_to_thread=True,
    operation_id="createToken",
    summary="Log in: exchange a username and password for an access token",
    description="Attempts are rate-limited per user name and client address, per client address, and failures "
    "per user name from any address (429 with Retry-After).",
    tags=["auth"],
    responses=errors(413, 429),
    security=[{}],
)
def create_token(data: JSONBody[TokenRequest], ctx: Ctx, request: Request[Any, Any, Any]) -> TokenResponse:
    address = request.client.host if request.client else "unknown"
    session = log_in(ctx, data.username, data.password, address)
    return TokenResponse(
        access_token=session.token, token_type="bearer", expires_in=session.expires_in, role=session.role.value
    )


@post(
    "/v1/auth/logout",
    status_code=HTTP_204_NO_CONTENT,
    operation_id="logout",
    summary="Log out: the presented session token stops working (everywhere=true: every session of yours)",
    description="The token's WebSockets are closed with 4401. With everywhere=true, every access token of yours "
    "issued so far stops working, on every device. API tokens are not sessions: they keep working until revoked "
    "(DELETE /v1/auth/tokens/{id}), and cannot log out (403).",
    tags=["auth"],
    responses=errors(403),
)
async def logout(
    ctx: Ctx,
    request: Request[Any, Any, Any],
    authenticator: NamedDependency[Authenticator],
    everywhere: Annotated[bool, QueryParameter(description="End every session of yours, not only this one")] = False,
) -> None:
    p = principal_of(request)
    if p.kind == "api":
        raise PermissionDeniedException("an API token cannot log out; revoke it with DELETE /v1/auth/tokens/{id}")
    if everywhere or p.expires_at is None:
        await in_thread(end_sessions, ctx.db, p.name)
    else:
        await in_thread(end_session, ctx.db, p.name, p.token_id, p.expires_at + timedelta(seconds=LEEWAY_SECONDS))
    authenticator.standings.forget(p.name)


@get(
    "/v1/auth/whoami",
    sync_to_thread=False,
    operation_id="whoAmI",
    summary="Who the presented token authenticates as",
    tags=["auth"],
    responses=errors(),
)
def whoami(request: Request[Any, Any, Any]) -> WhoAmI:
    p = principal_of(request)
    return WhoAmI(
        username=p.name,
        role=p.role.value,
        token_kind="api" if p.kind == "api" else "session",
        token_id=p.token_id,
        expires_at=p.expires_at,
    )


def _out(t: ApiTokenInfo) -> ApiTokenOut:
    now = utcnow()
    return ApiTokenOut(
        id=t.id,
        name=t.name,
        username=t.username,
        role=t.role.value,
        prefix=t.prefix,
        active=t.revoked_at is None and (t.expires_at is None or t.expires_at > now),
        created_at=t.created_at,
        expires_at=t.expires_at,
        last_used_at=t.last_used_at,
        revoked_at=t.revoked_at,
    )


@post(
    "/v1/auth/tokens",
    status_code=HTTP_201_CREATED,
    operation_id="createApiToken",
    summary="Create a long-lived API token for yourself (shown once)",
    description="The token acts as you, with the given role (at most yours). It must be created from a login "
    "session, not with another API token.",
    tags=["auth"],
    responses=errors(403, 413),
)
async def create_api_token_route(
    data: JSONBody[ApiTokenCreate], ctx: Ctx, request: Request[Any, Any, Any]
) -> ApiTokenCreated:
    p = principal_of(request)
    if p.kind == "api":
        raise PermissionDeniedException("API tokens cannot create API tokens; log in (`odinctl login`) to create one")
    role = Role(data.role) if data.role else p.role
    if not p.role.allows(role):
        raise PermissionDeniedException(f"a token cannot have more than your role ({p.role.value})")
    token, info = await in_thread(
        create_api_token, ctx.db, p.name, data.name, role, expires_in_days=data.expires_in_days
    )
    out = _out(info)
    return ApiTokenCreated(**{f: getattr(out, f) for f in out.__struct_fields__}, token=token)


@get(
    "/v1/auth/tokens",
    sync_to_thread=True,
    operation_id="listApiTokens",
    summary="Your API tokens (admins: everyone's with all=true); never the tokens themselves",
    tags=["auth"],
    responses=errors(403),
)
def list_api_tokens_route(
    ctx: Ctx,
    request: Request[Any, Any, Any],
    all_users: Annotated[bool, QueryParameter(name="all", description="Every user's tokens (admin)")] = False,
) -> ApiTokenList:
    p = principal_of(request)
    if all_users and p.role != Role.ADMIN:
        raise PermissionDeniedException("listing every user's tokens needs the admin role")
    return ApiTokenList(items=[_out(t) for t in list_api_tokens(ctx.db, None if all_users else p.name)])


@delete(
    "/v1/auth/tokens/{token_id:int}",
    status_code=HTTP_200_OK,
    sync_to_thread=True,
    operation_id="revokeApiToken",
    summary="Revoke an API token (yours; admins: anyone's). It stops working at once",
    tags=["auth"],
    responses=errors(404),
)
def revoke_api_token_route(
    ctx: Ctx, request: Request[Any, Any, Any], token_id: Annotated[int, PathParameter(ge=1, le=2**62)]
) -> ApiTokenOut:
    p = principal_of(request)
    revoked = revoke_api_token(ctx.db, token_id, owner=None if p.role == Role.ADMIN else p.name)
    if ctx.api_tokens is not None:
        ctx.api_tokens.forget(token_id)  # refused from the next request on, not once this server's cache expires
    return _out(revoked)
