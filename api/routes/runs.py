"""Runs: find them by commit, pipeline, branch, status; read one with its tasks; start, rerun, cancel; logs, events."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.enums import MediaType
from litestar.exceptions import NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.response import Stream
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED

from odin.api.auth.middleware import principal_of, require
from odin.api.auth.users import Role
from odin.api.deps import Ctx, in_thread
from odin.api.errors import errors
from odin.api.schemas import EventPage, Rerun, RunDetail, RunPage, RunSummary, StartRun, TaskEvents, TaskPage
from odin.api.services import actions
from odin.api.services import runs as service
from odin.controller.vocabulary import TaskStatus

MEMBER = [require(Role.MEMBER)]
RunId = Annotated[str, PathParameter(description="Run id, e.g. train-3f2a9c1-1", max_length=100)]
Timestamp = QueryParameter(
    description="RFC 3339 / ISO 8601 time with a zone, e.g. 2024-05-01T12:00:00Z",
    max_length=64,
    schema_extra={"format": "date-time"},
)
TaskName = Annotated[str, PathParameter(description="Task name", max_length=63)]


@get(
    "/v1/runs",
    operation_id="listRuns",
    summary="Find runs, newest first: by commit (SHA or prefix >= 7), pipeline, branch, status, trigger, time",
    tags=["runs"],
    responses=errors(),
)
async def list_runs(
    ctx: Ctx,
    commit: Annotated[
        str | None, QueryParameter(description="Full commit SHA or a prefix of at least 7 hex digits", max_length=40)
    ] = None,
    pipeline: Annotated[str | None, QueryParameter(description="Pipeline directory", max_length=500)] = None,
    branch: Annotated[str | None, QueryParameter(max_length=255)] = None,
    status: Annotated[list[str] | None, QueryParameter(description="Run status; repeat for several")] = None,
    trigger: Annotated[
        list[str] | None, QueryParameter(description="poll, webhook, manual, rerun, api, schedule")
    ] = None,
    triggered_by: Annotated[str | None, QueryParameter(description="User who started the run", max_length=255)] = None,
    parent_run: Annotated[str | None, QueryParameter(description="Reruns of this run", max_length=100)] = None,
    created_after: Annotated[str | None, Timestamp] = None,
    created_before: Annotated[str | None, Timestamp] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, QueryParameter(description="next_cursor of the previous page", max_length=500)
    ] = None,
) -> RunPage:
    f = service.RunFilter(
        commit=commit,
        pipeline=pipeline,
        branch=branch,
        status=status or (),
        trigger=trigger or (),
        triggered_by=triggered_by,
        parent_run=parent_run,
        created_after=service.timestamp("created_after", created_after),
        created_before=service.timestamp("created_before", created_before),
    )
    page = await service.list_runs_on_loop(ctx.db, f, limit=limit, cursor=cursor)
    return page if page is not None else await in_thread(service.list_runs, ctx.db, f, limit=limit, cursor=cursor)


@get(
    "/v1/runs/{run_id:str}",
    sync_to_thread=True,
    operation_id="getRun",
    summary="A run with its tasks, frozen spec, parameters and conditions",
    description="`task_counts` counts every task by status. A run of more than 1,000 tasks embeds only its first "
    "1,000 (in creation order) and sets `tasks_next_cursor`: GET /v1/runs/{id}/tasks with it as `cursor` continues.",
    tags=["runs"],
    responses=errors(404),
)
def get_run(
    ctx: Ctx,
    run_id: RunId,
    tasks: Annotated[
        int,
        QueryParameter(description="Embed at most this many tasks (0: none, only their counts)", ge=0, le=1000),
    ] = service.EMBEDDED_TASKS,
) -> RunDetail:
    return service.get_run(ctx.db, run_id, mlflow_ui=ctx.mlflow_ui, task_limit=tasks)


@get(
    "/v1/runs/{run_id:str}/tasks",
    sync_to_thread=True,
    operation_id="listRunTasks",
    summary="A page of a run's tasks in creation order, by status or name prefix, with counts by status",
    description="Keyset paging: pass `next_cursor` back as `cursor` for the next page (null on the last). `counts` "
    "counts all the run's tasks by status, whatever the filters.",
    tags=["runs"],
    responses=errors(404),
)
def list_run_tasks(
    ctx: Ctx,
    run_id: RunId,
    status: Annotated[
        list[str] | None, QueryParameter(description="Task status; repeat for several (any of them)")
    ] = None,
    prefix: Annotated[str | None, QueryParameter(description="Only tasks whose name starts so", max_length=63)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=service.MAX_TASK_PAGE)] = 100,
    cursor: Annotated[
        str | None, QueryParameter(description="next_cursor of the previous page", max_length=100)
    ] = None,
) -> TaskPage:
    query = service.task_query(status or (), prefix)
    return service.run_tasks(ctx.db, run_id, query, limit=limit, cursor=cursor, mlflow_ui=ctx.mlflow_ui)


@post(
    "/v1/runs",
    guards=MEMBER,
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
    operation_id="startRun",
    summary="Start a pipeline at a branch, tag or commit, with parameters",
    description="The ref defaults to the followed branch (fetched first, so it means its newest commit). The run "
    "records trigger `api` and you as `triggered_by`. `no_cache` runs tasks with `cache: true` without looking up "
    "earlier runs (their cache keys are still recorded).",
    tags=["runs"],
    responses=errors(403, 404, 413, 422),
)
def start_run(data: JSONBody[StartRun], ctx: Ctx, request: Request[Any, Any, Any]) -> Response[RunSummary]:
    run = actions.start(
        ctx,
        by=principal_of(request).name,
        pipeline=data.pipeline,
        ref=data.ref,
        params=data.params,
        parallelism=data.parallelism,
        no_cache=data.no_cache,
        repository=data.repository,
    )
    return Response(run, status_code=HTTP_201_CREATED, headers={"Location": f"/v1/runs/{run.id}"})


@post(
    "/v1/runs/{run_id:str}/rerun",
    guards=MEMBER,
    status_code=HTTP_201_CREATED,
    sync_to_thread=True,
    operation_id="rerunRun",
    summary="Run a finished run again: at its commit with its parameters (default), or at the branch's tip",
    description="`failed_only` reuses the parent's succeeded tasks; `task` reruns one task and its descendants, "
    "reusing the rest; `no_cache` runs tasks with `cache: true` without looking up earlier runs. A run still going "
    "answers 409.",
    tags=["runs"],
    responses=errors(403, 404, 409, 413, 422),
)
def rerun_run(
    ctx: Ctx, request: Request[Any, Any, Any], run_id: RunId, data: JSONBody[Rerun | None] = None
) -> Response[RunSummary]:
    body = data or Rerun()
    run = actions.rerun(
        ctx,
        by=principal_of(request).name,
        run_id=run_id,
        latest=body.latest,
        failed_only=body.failed_only,
        task=body.task,
        params=body.params,
        no_cache=body.no_cache,
    )
    return Response(run, status_code=HTTP_201_CREATED, headers={"Location": f"/v1/runs/{run.id}"})


@post(
    "/v1/runs/{run_id:str}/cancel",
    guards=MEMBER,
    status_code=HTTP_202_ACCEPTED,
    sync_to_thread=True,
    operation_id="cancelRun",
    summary="Stop a run: running tasks are killed, pending ones skipped",
    tags=["runs"],
    responses=errors(403, 404, 409),
)
def cancel_run(ctx: Ctx, request: Request[Any, Any, Any], run_id: RunId) -> RunSummary:
    return actions.cancel(ctx, by=principal_of(request).name, run_id=run_id)


@get(
    "/v1/runs/{run_id:str}/events",
    sync_to_thread=True,
    operation_id="listRunEvents",
    summary="A run's events (state changes), oldest first",
    tags=["runs"],
    responses=errors(404),
)
def run_events(
    ctx: Ctx,
    run_id: RunId,
    task: Annotated[str | None, QueryParameter(description="Only this task's events", max_length=63)] = None,
    since: Annotated[int | None, QueryParameter(description="Only events after this event id", ge=0, le=2**62)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=5000)] = 1000,
) -> EventPage:
    return service.run_events(ctx.db, run_id, task=task, after=since, limit=limit)


@get(
    "/v1/runs/{run_id:str}/tasks/{task:str}/events",
    sync_to_thread=True,
    operation_id="listTaskEvents",
    summary="A task's events: Odin's state changes, and the platform's (Kubernetes events) where there are any",
    tags=["runs"],
    responses=errors(404),
)
def task_events(ctx: Ctx, run_id: RunId, task: TaskName) -> TaskEvents:
    service.task_row(ctx.db, run_id, task)
    page = service.run_events(ctx.db, run_id, task=task, after=None, limit=5000)
    platform = ctx.controller.executor.events(run_id, task) if ctx.controller else []
    return TaskEvents(run_id=run_id, task=task, events=page.items, platform=platform)


_NOT_STARTED = {TaskStatus.PENDING.value, TaskStatus.STARTING.value}


@get(
    "/v1/runs/{run_id:str}/tasks/{task:str}/logs",
    sync_to_thread=True,
    media_type=MediaType.TEXT,
    operation_id="getTaskLogs",
    summary="A task's log: the latest attempt unless `attempt` is given; `follow` streams until it ends",
    description="Plain text. A task reused by a rerun shows the log of the run that produced it.",
    tags=["runs"],
    responses={
        200: ResponseSpec(
            data_container=str, media_type=MediaType.TEXT, description="The log text", generate_examples=False
        ),
        **errors(404),
    },
)
def task_logs(
    ctx: Ctx,
    run_id: RunId,
    task: TaskName,
    follow: Annotated[bool, QueryParameter(description="Keep streaming until the attempt ends")] = False,
    tail: Annotated[int | None, QueryParameter(description="Only the last N lines", ge=0, le=1_000_000)] = None,
    attempt: Annotated[int | None, QueryParameter(ge=1, le=1000)] = None,
) -> Stream:
    source = service.log_source(ctx.db, run_id, task)
    if ctx.controller is None:
        raise NotFoundException("this server has no executor to read logs from")
    executor = ctx.controller.executor

    def lines() -> Iterator[str]:
        if follow and attempt is None:
            # Nothing to show before the first attempt starts: wait for it rather than end at once.
            while service.task_row(ctx.db, source, task).status in _NOT_STARTED:
                time.sleep(0.5)
        # The latest attempt as the store knows it: a replica that did not run the task (or restarted since) has no
        # log on its disk to tell it, and the Kubernetes executor fetches the saved log from the artifact store.
        row = service.task_row(ctx.db, source, task)
        chosen = attempt if attempt is not None else (row.attempt or None)
        empty = True
        for line in executor.logs(source, task, follow=follow, tail=tail, attempt=chosen):
            empty = False
            yield line
        if empty and row.logs_pruned_at is not None:
            yield service.logs_pruned_note(row.logs_pruned_at)

    return Stream(lines(), media_type=MediaType.TEXT)
