"""Commits: what Odin saw, whether it was valid, what it changed and which runs it started."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.params import PathParameter, QueryParameter

from odin.api.deps import Ctx
from odin.api.errors import errors
from odin.api.schemas import CommitDetail, CommitPage
from odin.api.services import commits as service


@get(
    "/v1/commits",
    sync_to_thread=True,
    operation_id="listCommits",
    summary="Commits Odin has recorded, most recently seen first",
    tags=["commits"],
    responses=errors(),
)
def list_commits(
    ctx: Ctx,
    branch: Annotated[str | None, QueryParameter(max_length=255)] = None,
    validation: Annotated[
        str | None, QueryParameter(description="valid, invalid, skipped, absorbed or baseline", max_length=16)
    ] = None,
    pipeline: Annotated[
        str | None, QueryParameter(description="Commits that changed this pipeline", max_length=500)
    ] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, QueryParameter(max_length=500)] = None,
) -> CommitPage:
    return service.list_commits(
        ctx.db, branch=branch, validation=validation, pipeline=pipeline, limit=limit, cursor=cursor
    )


@get(
    "/v1/commits/{sha:str}",
    sync_to_thread=True,
    operation_id="getCommit",
    summary="A commit by SHA or unique prefix (>= 7): validation problems, pipelines changed, runs",
    tags=["commits"],
    responses=errors(404),
)
def get_commit(ctx: Ctx, sha: Annotated[str, PathParameter(max_length=40)]) -> CommitDetail:
    return service.get_commit(ctx.db, sha)
