"""Pipelines at any branch, tag or commit; validating a main.yml; reading and editing a pipeline's files.

In URLs a pipeline is one path segment: nested pipeline directories write '/' as ':' (`vision:detector`).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from litestar import Request, get, post, put
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK

from odin.api.auth.middleware import principal_of, require
from odin.api.auth.users import Role, UserNotFound, get_user
from odin.api.deps import Ctx, in_thread
from odin.api.errors import errors
from odin.api.schemas import (
    FileOut,
    FileWrite,
    FileWritten,
    PipelineDetail,
    PipelineList,
    ValidateRequest,
    ValidateResponse,
)
from odin.api.services import pipelines as service
from odin.controller.facade import Author

Ref = Annotated[
    str | None,
    QueryParameter(description="Branch, tag, commit SHA or prefix (default: the followed branch)", max_length=255),
]
Name = Annotated[str, PathParameter(description="Pipeline directory; nested ones with ':' for '/'", max_length=500)]
FilePath = Annotated[str, PathParameter(description="Path inside the pipeline directory", max_length=1000)]


@get(
    "/v1/pipelines",
    sync_to_thread=True,
    operation_id="listPipelines",
    summary="The pipelines at a ref, each with whether it is valid there",
    tags=["pipelines"],
    responses=errors(404, 502),
)
def list_pipelines(ctx: Ctx, ref: Ref = None) -> PipelineList:
    return service.list_pipelines(ctx.repo(), ref, ctx.db)


@get(
    "/v1/pipelines/{name:str}",
    sync_to_thread=True,
    operation_id="getPipeline",
    summary="A pipeline at a ref: its parsed DAG, parameters and problems",
    tags=["pipelines"],
    responses=errors(404, 502),
)
def get_pipeline(ctx: Ctx, name: Name, ref: Ref = None) -> PipelineDetail:
    return service.pipeline_detail(ctx.repo(), name, ref)


@get(
    "/v1/pipelines/{name:str}/files/{path:path}",
    operation_id="getPipelineFile",
    summary="A file of a pipeline at a ref (UTF-8 text, or base64 for binary files)",
    tags=["pipelines"],
    responses=errors(404, 422, 502),
)
async def get_file(ctx: Ctx, request: Request[Any, Any, Any], name: Name, path: FilePath, ref: Ref = None) -> FileOut:
    return await in_thread(service.read_file, ctx.repo(), name, _relative(request, path), ref)


def _relative(request: Request[Any, Any, Any], path: str) -> str:
    """The file path exactly as the client sent it after `/files/`. Litestar's path parameter is normalised (`//`
    collapsed, a trailing `/` dropped), which turned `/files//etc/passwd` into `etc/passwd`; the raw request path
    keeps what was sent, so the path rules (422) judge that: `/etc/passwd` is absolute, `a//b` has an empty part."""
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes):
        _name, _, rest = raw.partition(b"?")[0].partition(b"/v1/pipelines/")[2].partition(b"/")
        if rest.startswith(b"files/"):
            return unquote_to_bytes(rest.removeprefix(b"files/")).decode("utf-8", errors="replace")
    return path.removeprefix("/")


@put(
    "/v1/pipelines/{name:str}/files/{path:path}",
    guards=[require(Role.MEMBER)],
    status_code=HTTP_200_OK,
    sync_to_thread=True,
    operation_id="putPipelineFile",
    summary="Write a file as a new commit on the followed branch (authored by you) and push it",
    description="The commit then triggers like any other push. Send `If-Match: <sha>` (or `base_sha`) to be told "
    "with 409 when the branch moved since you read the file. A main.yml must be valid, and a main.yml.jinja2 must "
    "render with its defaults to a valid one (422 with its problems). "
    "Writing the content already there makes no commit.",
    tags=["pipelines"],
    responses=errors(403, 404, 409, 413, 422, 502),
)
def put_file(
    data: JSONBody[FileWrite],
    ctx: Ctx,
    request: Request[Any, Any, Any],
    name: Name,
    path: FilePath,
    if_match: Annotated[
        str | None,
        HeaderParameter(name="If-Match", description="The branch tip you based the change on", max_length=80),
    ] = None,
) -> FileWritten:
    user = principal_of(request)
    try:
        email = get_user(ctx.db, user.name).email
    except UserNotFound:
        email = None
    settings = ctx.settings
    return service.write_file(
        ctx.require_controller(),
        ctx.repo(),
        name,
        _relative(request, path),
        data,
        author=Author(user.name, email or f"{user.name}@{settings.git_author_domain}"),
        committer=Author(settings.git_committer_name, settings.git_committer_email),
        expected_base=if_match.strip().strip('"').lower() if if_match else None,
    )


@post(
    "/v1/validate",
    status_code=HTTP_200_OK,
    operation_id="validatePipeline",
    summary="Validate a main.yml's text; problems located by line and column",
    description="Answers 503 with Retry-After when more validations are in flight than the server queues "
    "(ODIN_VALIDATION_QUEUE).",
    tags=["pipelines"],
    responses=errors(413),
)
async def validate(data: JSONBody[ValidateRequest], ctx: Ctx) -> ValidateResponse:
    # In the validation line's own threads, never the pool other routes use; 503 at once when the line is full.
    return await ctx.validations().run(service.validate, ctx.pipeline_validator(), data)
