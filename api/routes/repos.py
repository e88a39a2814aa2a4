"""Followed repositories, managed by admins: register, list, show, update, remove (each change an audited event)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, delete, get, patch, post
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from odin.api.auth.middleware import principal_of, require
from odin.api.auth.users import Role
from odin.api.deps import Ctx, in_thread
from odin.api.errors import errors
from odin.api.schemas.repos import RepoCreate, RepoList, RepoOut, RepoUpdate
from odin.api.services import repos

ADMIN = [require(Role.ADMIN)]
Name = Annotated[str, PathParameter(max_length=100)]
Removed = Annotated[bool, QueryParameter(description="Include removed repositories")]


@get(
    "/v1/repos",
    guards=ADMIN,
    operation_id="listRepos",
    summary="Followed repositories (admin)",
    description="With `removed=true`, removed repositories too (their runs, commits and events stay readable).",
    tags=["repos"],
    responses=errors(403),
)
async def list_repos_route(
    ctx: Ctx, removed: Annotated[bool, QueryParameter(description="Include removed repositories")] = False
) -> RepoList:
    return RepoList(items=await in_thread(repos.list_repos, ctx, include_removed=removed))


@post(
    "/v1/repos",
    guards=ADMIN,
    status_code=HTTP_201_CREATED,
    operation_id="addRepo",
    summary="Follow a repository (admin)",
    description="Branches are fnmatch patterns (`main`, `release/*`); `default_branch` (manual runs, schedules) is "
    "the first without wildcards unless given. Credentials and the webhook secret are references (`env:NAME`, "
    "`file:/path`), never values (422). The leader starts polling within seconds; a remote it cannot reach or "
    "authenticate to shows as Ready=False on the repository and is retried with backoff.",
    tags=["repos"],
    responses=errors(403, 409, 413, 422),
)
async def add_repo_route(data: JSONBody[RepoCreate], ctx: Ctx, request: Request[Any, Any, Any]) -> RepoOut:
    return await in_thread(repos.add_repo, ctx, data, by=principal_of(request).name)


@get(
    "/v1/repos/{name:str}",
    guards=ADMIN,
    operation_id="getRepo",
    summary="One repository, with its conditions (admin)",
    tags=["repos"],
    responses=errors(403, 404),
)
async def get_repo_route(ctx: Ctx, name: Name) -> RepoOut:
    return await in_thread(repos.get_repo, ctx, name)


@patch(
    "/v1/repos/{name:str}",
    guards=ADMIN,
    operation_id="updateRepo",
    summary="Change a repository's settings, or disable or enable it (admin)",
    description="Only the fields sent change. A new URL or default branch starts the repository afresh (its next "
    "sync is a baseline). The repository ODIN_REPO names is changed through the settings (409).",
    tags=["repos"],
    responses=errors(403, 404, 409, 413, 422),
)
async def update_repo_route(
    data: JSONBody[RepoUpdate], ctx: Ctx, name: Name, request: Request[Any, Any, Any]
) -> RepoOut:
    return await in_thread(repos.update_repo, ctx, name, data, by=principal_of(request).name)


@delete(
    "/v1/repos/{name:str}",
    guards=ADMIN,
    status_code=HTTP_200_OK,
    operation_id="removeRepo",
    summary="Stop following a repository, keeping its history (admin)",
    tags=["repos"],
    responses=errors(403, 404, 409),
)
async def remove_repo_route(ctx: Ctx, name: Name, request: Request[Any, Any, Any]) -> RepoOut:
    return await in_thread(repos.remove_repo, ctx, name, by=principal_of(request).name)
