"""Users, managed by admins: create, list, change role, disable, reset a password."""

from __future__ import annotations

from typing import Annotated

from litestar import get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter
from litestar.status_codes import HTTP_201_CREATED

from odin.api.auth.middleware import Authenticator, require
from odin.api.auth.users import Role, UserInfo, create_user, get_user, list_users, update_user
from odin.api.deps import Ctx, in_thread
from odin.api.errors import errors
from odin.api.schemas import UserCreate, UserList, UserOut, UserUpdate

ADMIN = [require(Role.ADMIN)]
Username = Annotated[str, PathParameter(max_length=100)]


def _out(u: UserInfo) -> UserOut:
    return UserOut(
        username=u.username,
        role=u.role.value,
        disabled=u.disabled,
        email=u.email,
        created_at=u.created_at,
    )


@get(
    "/v1/users",
    guards=ADMIN,
    operation_id="listUsers",
    summary="Every user (admin)",
    tags=["users"],
    responses=errors(403),
)
async def list_users_route(ctx: Ctx) -> UserList:
    return UserList(items=[_out(u) for u in await in_thread(list_users, ctx.db)])


@post(
    "/v1/users",
    guards=ADMIN,
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
    operation_id="createUser",
    summary="Create a user (admin)",
    tags=["users"],
    responses=errors(403, 409, 413, 422),
)
def create_user_route(data: JSONBody[UserCreate], ctx: Ctx) -> UserOut:
    create_user(ctx.db, data.username, data.password, Role(data.role), email=data.email)
    return _out(get_user(ctx.db, data.username))


@get(
    "/v1/users/{username:str}",
    guards=ADMIN,
    operation_id="getUser",
    summary="One user (admin)",
    tags=["users"],
    responses=errors(403, 404),
)
async def get_user_route(ctx: Ctx, username: Username) -> UserOut:
    return _out(await in_thread(get_user, ctx.db, username))


@patch(
    "/v1/users/{username:str}",
    guards=ADMIN,
    operation_id="updateUser",
    summary="Change a user's role, e-mail or password, or disable them (admin)",
    description="Takes effect at the user's next request: a new role applies to their existing tokens; a new "
    "password or disabling ends their login sessions (open WebSockets are closed with 4401). Disabling a user also "
    "stops their API tokens. The last enabled admin cannot be demoted or disabled (409).",
    tags=["users"],
    responses=errors(403, 404, 409, 413, 422),
)
async def update_user_route(
    data: JSONBody[UserUpdate], ctx: Ctx, username: Username, authenticator: NamedDependency[Authenticator]
) -> UserOut:
    updated = await in_thread(
        update_user,
        ctx.db,
        username,
        role=Role(data.role) if data.role else None,
        disabled=data.disabled,
        password=data.password,
        email=data.email,
    )
    authenticator.standings.forget(username)
    return _out(updated)
