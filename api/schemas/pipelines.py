"""Pipelines at any ref, validation of a `main.yml`, and the files of a pipeline directory."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from odin.api.schemas.common import ProblemOut

Encoding = Literal["utf-8", "base64"]


class ScheduleOut(msgspec.Struct, kw_only=True):
    """One schedule (a `main.yml` `schedule:` or an `.odin.yml` `schedules:` entry), its next slot, and the last slot
    the followed branch started (by any leader)."""

    cron: str
    timezone: str
    catchup: str
    params: dict[str, str] = msgspec.field(default_factory=dict)  # the runs' own parameters; the rest are defaults
    source: str = "main.yml"  # main.yml | .odin.yml
    next_slot: datetime
    last_slot: datetime | None = None
    last_run: str | None = None


class ConcurrencyOut(msgspec.Struct, kw_only=True):
    """A pipeline's `concurrency:` (docs/pipeline-format.md#concurrency-and-priority)."""

    limit: int
    policy: str  # queue | replace | skip


class PipelineSummary(msgspec.Struct, kw_only=True):
    name: str
    valid: bool
    problem_count: int
    task_count: int
    tree: str | None
    schedules: list[ScheduleOut] = msgspec.field(default_factory=list)
    timeout: float | None = None  # the whole run's limit, seconds
    concurrency: ConcurrencyOut | None = None  # runs of it active at once, and what a run beyond that does
    priority: int = 0  # order in the controller's queue (ODIN_MAX_ACTIVE_RUNS)


class PipelineList(msgspec.Struct, kw_only=True):
    ref: str
    sha: str
    items: list[PipelineSummary]


class ParamOut(msgspec.Struct, kw_only=True):
    name: str
    type: str
    default: str | None
    required: bool
    choices: list[str]
    description: str | None


class TaskNode(msgspec.Struct, kw_only=True):
    name: str
    depends: list[str]
    image: str | None
    resource_type: str
    num_gpus: int
    num_workers: int
    retries: int
    timeout: float | None


class PipelineDetail(msgspec.Struct, kw_only=True):
    name: str
    title: str | None
    ref: str
    sha: str
    tree: str | None
    valid: bool
    problems: list[ProblemOut]
    params: list[ParamOut]
    tasks: list[TaskNode]
    spec: dict[str, Any] | None


class ValidateRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    content: Annotated[
        str,
        msgspec.Meta(
            max_length=1_000_000,
            description="The main.yml text, or a main.yml.jinja2 when `file` names one (rendered with its defaults)",
        ),
    ]
    file: Annotated[str, msgspec.Meta(min_length=1, max_length=500)] = "main.yml"


class ValidateResponse(msgspec.Struct, kw_only=True):
    valid: bool
    problems: list[ProblemOut]
    spec: dict[str, Any] | None


class FileOut(msgspec.Struct, kw_only=True):
    pipeline: str
    path: str
    ref: str
    sha: str
    size: int
    encoding: Encoding
    content: str


class FileWrite(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    content: str
    encoding: Encoding = "utf-8"
    message: Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)] | None = None
    base_sha: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{40}$")] | None = msgspec.field(default=None)


class FileWritten(msgspec.Struct, kw_only=True):
    pipeline: str
    path: str
    branch: str
    commit_sha: str
    base_sha: str
