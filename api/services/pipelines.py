"""Pipelines read from git at any ref the mirror knows, validation of a `main.yml`, and editing files as commits.

Reads use the mirror's cache (the poller keeps it fresh) and fetch only when a ref is not there yet, so browsing
pipelines never waits on the remote. Writes always start from the remote's newest tip (see `odin.controller.git.edit`).
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from collections.abc import Mapping
from datetime import UTC, datetime

from odin.api.schemas import (
    ConcurrencyOut,
    FileOut,
    FileWrite,
    FileWritten,
    ParamOut,
    PipelineDetail,
    PipelineList,
    PipelineSummary,
    ProblemOut,
    ScheduleOut,
    TaskNode,
    ValidateRequest,
    ValidateResponse,
)
from odin.api.services.errors import InvalidRequest
from odin.controller import facade
from odin.controller.facade import (
    MAIN_FILE,
    TEMPLATE_FILE,
    Author,
    Controller,
    FollowedRepo,
    PipelineAt,
    Validator,
    pipeline_file_path,
)
from odin.controller.store.db import DbEngine
from odin.controller.store.schedules import LastSlot, last_slots
from odin.controller.vocabulary import Trigger
from odin.schema.model import Concurrency, Schedule
from odin.schema.problems import Problem
from odin.schema.schedules import next_slot

MAX_FILE_BYTES = 10 * 1024 * 1024


class PipelineMissing(Exception):
    """No such pipeline at the ref (mapped to 404)."""


def pipeline_from_url(name: str) -> str:
    """URL segments cannot hold '/', so nested pipeline directories are written with ':' (`vision:detector`)."""
    return name.replace(":", "/").strip("/")


def _problems(problems: list[Problem]) -> list[ProblemOut]:
    return [
        ProblemOut(file=p.file, line=p.line, column=p.column, message=p.message, severity=p.severity) for p in problems
    ]


def list_pipelines(repo: FollowedRepo, ref: str | None, db: DbEngine | None = None) -> PipelineList:
    """The pipelines at `ref`; with `db`, each schedule's last started slot on the followed branch (one query)."""
    wanted, sha = facade.resolve_ref(repo, ref)
    found = [facade.read_pipeline(repo, sha, name) for name in facade.list_pipelines(repo, sha)]
    schedules: dict[str, list[Schedule]] = {}
    for scheduled in facade.pipeline_schedules(repo, sha, found):
        schedules.setdefault(scheduled.pipeline, []).append(scheduled.schedule)
    last: dict[tuple[str, str], LastSlot] = {}
    if db is not None and schedules:
        last = {(s.pipeline, s.schedule): s for s in last_slots(db, repo.id, repo.branch, list(schedules))}
    now = datetime.now(UTC)
    items = [
        PipelineSummary(
            name=at.pipeline,
            valid=at.ok,
            problem_count=len(at.problems),
            task_count=len(at.spec.tasks) if at.spec else 0,
            tree=at.tree,
            schedules=[_schedule(s, at.pipeline, last, now) for s in schedules.get(at.pipeline, ())],
            timeout=at.spec.timeout if at.spec else None,
            concurrency=_concurrency(at.spec.concurrency) if at.spec and at.spec.concurrency else None,
            priority=at.spec.priority if at.spec else 0,
        )
        for at in found
    ]
    return PipelineList(ref=wanted, sha=sha, items=items)


def _concurrency(concurrency: Concurrency) -> ConcurrencyOut:
    return ConcurrencyOut(limit=concurrency.limit, policy=concurrency.policy)


def _schedule(
    schedule: Schedule, pipeline: str, last: Mapping[tuple[str, str], LastSlot], now: datetime
) -> ScheduleOut:
    started = last.get((pipeline, schedule.key))
    return ScheduleOut(
        cron=schedule.cron,
        timezone=schedule.timezone,
        catchup=schedule.catchup,
        params=dict(schedule.params),
        source=schedule.source,
        next_slot=next_slot(schedule, now),
        last_slot=started.slot if started else None,
        last_run=started.run_id if started else None,
    )


def _at(repo: FollowedRepo, name: str, ref: str | None) -> tuple[str, PipelineAt]:
    wanted, sha = facade.resolve_ref(repo, ref)
    pipeline = pipeline_from_url(name)
    if pipeline not in facade.list_pipelines(repo, sha):
        raise PipelineMissing(f"no pipeline {pipeline!r} at {wanted} ({sha[:12]}): no directory with a {MAIN_FILE}")
    return wanted, facade.read_pipeline(repo, sha, pipeline)


def pipeline_detail(repo: FollowedRepo, name: str, ref: str | None) -> PipelineDetail:
    wanted, at = _at(repo, name, ref)
    spec = at.spec
    return PipelineDetail(
        name=at.pipeline,
        title=spec.name if spec else None,
        ref=wanted,
        sha=at.sha,
        tree=at.tree,
        valid=at.ok,
        problems=_problems(at.shown),
        params=[
            ParamOut(
                name=p.name,
                type=p.type,
                default=p.default,
                required=p.required,
                choices=list(p.choices),
                description=p.description,
            )
            for p in (spec.params if spec else ())
        ],
        tasks=[
            TaskNode(
                name=t.name,
                depends=list(t.depends),
                image=t.image,
                resource_type=t.resource_type,
                num_gpus=t.num_gpus,
                num_workers=t.num_workers,
                retries=t.retries,
                timeout=t.timeout,
            )
            for t in (spec.tasks if spec else ())
        ],
        spec=spec.to_dict() if spec else None,
    )


def read_file(repo: FollowedRepo, name: str, path: str, ref: str | None) -> FileOut:
    pipeline, full = pipeline_file_path(pipeline_from_url(name), path)
    wanted, sha = facade.resolve_ref(repo, ref)
    data = facade.read_file(repo, sha, full, max_size=MAX_FILE_BYTES)
    try:
        content, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        content, encoding = base64.b64encode(data).decode(), "base64"
    return FileOut(
        pipeline=pipeline,
        path=posixpath.relpath(full, pipeline),
        ref=wanted,
        sha=sha,
        size=len(data),
        encoding=encoding,  # type: ignore[arg-type]
        content=content,
    )


def write_file(
    controller: Controller,
    repo: FollowedRepo,
    name: str,
    path: str,
    body: FileWrite,
    *,
    author: Author,
    committer: Author,
    expected_base: str | None,
) -> FileWritten:
    """Commit the file on the followed branch and push it; a main.yml (or a main.yml.jinja2, rendered) must validate
    first. Then ask for a sync."""
    pipeline, full = pipeline_file_path(pipeline_from_url(name), path)
    if body.encoding == "base64":
        try:
            content = base64.b64decode(body.content, validate=True)
        except (binascii.Error, ValueError) as e:
            raise InvalidRequest("content is not valid base64") from e
    else:
        content = _utf8(body.content)
    _check_pipeline_file(repo.validator, pipeline, full, content)
    done = facade.commit_file(
        repo,
        pipeline=pipeline,
        path=path,
        content=content,
        author=author,
        committer=committer,
        message=body.message,
        expected_base=expected_base or body.base_sha,
    )
    if done.changed:
        facade.request_sync(controller, repo, Trigger.POLL, branch=done.branch, by=author.name)
    return FileWritten(
        pipeline=pipeline,
        path=posixpath.relpath(full, pipeline),
        branch=done.branch,
        commit_sha=done.sha,
        base_sha=done.base,
    )


def _check_pipeline_file(validator: Validator, pipeline: str, full: str, content: bytes) -> None:
    """A pipeline's `main.yml`, or its `main.yml.jinja2` rendered with its own defaults in the validator's bounded
    sandbox (as a sync will), must validate before it is committed: `InvalidContent` with the problems (located in
    the template) otherwise. Other files are the pipeline's business."""
    if posixpath.dirname(full) != pipeline:
        return
    name = posixpath.basename(pipeline)
    if posixpath.basename(full) == MAIN_FILE:
        result = validator.validate(content, file=full, default_name=name)
    elif posixpath.basename(full) == TEMPLATE_FILE:
        result = validator.validate_template(content, file=full, default_name=name).result
    else:
        return
    if result.problems:
        raise InvalidContent(f"{full} is not a valid pipeline; nothing was committed", result.problems)


class InvalidContent(Exception):
    """A main.yml, or a rendered main.yml.jinja2, that does not validate (mapped to 422 with its problems)."""

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidRequest("content is not valid Unicode text (send binary files as base64)") from e


def validate(validator: Validator, body: ValidateRequest) -> ValidateResponse:
    """Validate a main.yml's text as the controller would at a commit (file-level checks only: no git tree), in the
    validator's worker processes and within its time budget. A `file` named `main.yml.jinja2` is a template: it is
    rendered with its own defaults (in a worker too, whatever its size) and what it produced is validated."""
    parent = posixpath.basename(posixpath.dirname(body.file)) or "pipeline"
    content = _utf8(body.content)
    if posixpath.basename(body.file) == TEMPLATE_FILE:
        result = validator.validate_template(content, file=body.file, default_name=parent).result
    else:
        result = validator.validate(content, file=body.file, default_name=parent)
    return ValidateResponse(
        valid=result.ok,
        problems=_problems(result.shown),
        spec=result.spec.to_dict() if result.spec and result.ok else None,
    )
