"""What a run produced: its artifacts listed and downloaded (Range honoured), and results across runs per commit."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import PathParameter, QueryParameter
from litestar.response import Stream

from odin.api.deps import Ctx, in_thread
from odin.api.errors import errors
from odin.api.schemas import ArtifactList, DirectoryListing, ResultsPage
from odin.api.services import artifacts as service
from odin.api.services import results as results_service
from odin.api.services.artifacts import Download

RunId = Annotated[str, PathParameter(description="Run id, e.g. train-3f2a9c1-1", max_length=100)]
TaskName = Annotated[str, PathParameter(description="Task name", max_length=63)]
ArtifactName = Annotated[str, PathParameter(description="Artifact name, as the task declares it", max_length=63)]

_BYTES = {
    200: ResponseSpec(
        data_container=bytes,
        media_type="application/octet-stream",
        description="The whole file (a directory artifact: an uncompressed tar stream, application/x-tar)",
        generate_examples=False,
    ),
    206: ResponseSpec(
        data_container=bytes,
        media_type="application/octet-stream",
        description="The part a single `Range: bytes=...` asked for, with Content-Range",
        generate_examples=False,
    ),
}


def _stream(d: Download) -> Stream:
    return Stream(d.body, status_code=d.status, headers=d.headers, media_type=d.media_type)


@get(
    "/v1/runs/{run_id:str}/artifacts",
    sync_to_thread=True,
    operation_id="listRunArtifacts",
    summary="Every task's artifacts: name, task, type, size, digest and download URL",
    tags=["runs"],
    responses=errors(404),
)
def list_artifacts(ctx: Ctx, run_id: RunId) -> ArtifactList:
    return service.list_artifacts(ctx.db, run_id)


@get(
    "/v1/runs/{run_id:str}/artifacts/{task:str}/{name:str}",
    operation_id="getArtifact",
    summary="Download one artifact: a file (Range, If-Range honoured; ETag is its digest), a directory as a tar",
    description="A file answers 200, or 206 for a single `Range: bytes=a-b | a- | -n`; a range starting past the "
    "end is 416 with `Content-Range: bytes */<size>`; several ranges or a malformed one get the whole file. A "
    "directory streams as an uncompressed tar of its files (what `argo cp` and a KFP user unpack); its files one by "
    "one, with ranges, are under `/files`.",
    tags=["runs"],
    responses={**_BYTES, **errors(404, 416)},
)
async def get_artifact(
    ctx: Ctx, request: Request[Any, Any, Any], run_id: RunId, task: TaskName, name: ArtifactName
) -> Stream:
    reader = ctx.artifact_reader()
    d = await in_thread(
        service.download,
        reader,
        ctx.db,
        run_id,
        task,
        name,
        range_header=request.headers.get("range"),
        if_range=request.headers.get("if-range"),
    )
    return _stream(d)


@get(
    "/v1/runs/{run_id:str}/artifacts/{task:str}/{name:str}/files",
    sync_to_thread=True,
    operation_id="listArtifactFiles",
    summary="The files of a directory artifact, each with its size and download URL",
    tags=["runs"],
    responses=errors(404),
)
def list_artifact_files(ctx: Ctx, run_id: RunId, task: TaskName, name: ArtifactName) -> DirectoryListing:
    return service.listing(ctx.artifact_reader(), ctx.db, run_id, task, name)


@get(
    "/v1/runs/{run_id:str}/artifacts/{task:str}/{name:str}/files/{path:path}",
    operation_id="getArtifactFile",
    summary="Download one file of a directory artifact (Range, If-Range honoured)",
    tags=["runs"],
    responses={**_BYTES, **errors(404, 416)},
)
async def get_artifact_file(
    ctx: Ctx,
    request: Request[Any, Any, Any],
    run_id: RunId,
    task: TaskName,
    name: ArtifactName,
    path: Annotated[str, PathParameter(description="The file's path inside the directory", max_length=4096)],
) -> Stream:
    d = await in_thread(
        service.member,
        ctx.artifact_reader(),
        ctx.db,
        run_id,
        task,
        name,
        path,
        range_header=request.headers.get("range"),
        if_range=request.headers.get("if-range"),
    )
    return _stream(d)


@get(
    "/v1/results",
    sync_to_thread=True,
    operation_id="listResults",
    summary="Results of a pipeline's runs, newest first, with each run's commit: compare commits by their metrics",
    tags=["runs"],
    responses=errors(),
)
def list_results(
    ctx: Ctx,
    pipeline: Annotated[str, QueryParameter(description="Pipeline directory, e.g. train", max_length=500)],
    since: Annotated[
        str | None, QueryParameter(description="30d, 12h, 2w, 90m, or an RFC 3339 time", max_length=64)
    ] = None,
    limit: Annotated[int, QueryParameter(description="At most this many runs", ge=1, le=10_000)] = 50,
    cursor: Annotated[
        str | None, QueryParameter(description="next_cursor of the previous page: the runs after it", max_length=300)
    ] = None,
    all_columns: Annotated[
        bool,
        QueryParameter(
            description="columns names the results of every run since `since`, not only of this page's (a client "
            "streaming all pages as CSV writes its header first)"
        ),
    ] = False,
) -> ResultsPage:
    return results_service.results(ctx.db, pipeline, since=since, limit=limit, cursor=cursor, all_columns=all_columns)
