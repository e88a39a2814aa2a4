"""Logging in: a username and password for a short-lived JWT access token."""

from __future__ import annotations

from litestar import post
from litestar.exceptions import NotAuthorizedException
from litestar.status_codes import HTTP_200_OK

from odin.api.auth.tokens import issue
from odin.api.auth.users import authenticate
from odin.api.context import AppContext
from odin.api.schemas import TokenRequest, TokenResponse


@post(
    "/v1/auth/token",
    status_code=HTTP_200_OK,
    exclude_from_auth=True,
    sync_to_thread=True,
    operation_id="createToken",
    summary="Log in: exchange a username and password for an access token",
    tags=["auth"],
)
def create_token(data: TokenRequest, ctx: AppContext) -> TokenResponse:
    found = authenticate(ctx.db, data.username, data.password)
    if found is None:
        raise NotAuthorizedException("wrong username or password")
    username, role = found
    token, _claims = issue(ctx.keys, subject=username, role=role.value, ttl=ctx.settings.token_ttl)
    return TokenResponse(access_token=token, token_type="bearer", expires_in=ctx.settings.token_ttl, role=role.value)
