"""Runs, their tasks and events; starting, rerunning and stopping them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

ParamValue = str | int | float | bool
ParamMap = Annotated[dict[str, ParamValue], msgspec.Meta(max_length=200)]


class ArtifactOut(msgspec.Struct, kw_only=True):
    """A declared artifact as the succeeded attempt left it."""

    path: str  # relative to the attempt's ${OUTPUT_PATH}
    location: str  # where it is: a path on the controller's machine (local executor)
    type: str  # file | directory | link
    size: int  # bytes (a directory: its files' total)
    digest: str  # sha256:<hex> (a directory: of its sorted manifest of paths, sizes and digests)


class TaskTracking(msgspec.Struct, kw_only=True):
    """A task's nested MLflow run."""

    run_id: str
    url: str | None = None  # the MLflow UI's page of the run (ODIN_MLFLOW_UI_URL, else the tracking URI)


class RunTracking(msgspec.Struct, kw_only=True):
    """Where the run is tracked in MLflow (issue 11, item 7); absent when it is not."""

    run_id: str
    experiment_id: str | None
    url: str | None = None
    status: str | None = None  # the status mirrored to MLflow once the run ended (FINISHED, FAILED, KILLED)


class TaskGpuOut(msgspec.Struct, kw_only=True):
    """A GPU the attempt ran on."""

    uuid: str
    index: int  # NVML index on its node
    model: str  # product name, e.g. "NVIDIA H100 80GB HBM3"


class GpuIdleOut(msgspec.Struct, kw_only=True):
    """The attempt held its GPUs at or under `threshold_percent` utilisation for `after_seconds` (never killed)."""

    since: datetime  # when the idle stretch that raised the flag began
    flagged_at: datetime
    active: bool  # still idle at the latest sample
    threshold_percent: float
    after_seconds: float


class GpuUsageOut(msgspec.Struct, kw_only=True):
    """What the attempt used of its GPUs, sampled every ODIN_GPU_SAMPLE_INTERVAL seconds (docs/midgard.md)."""

    attempt: int
    running: bool  # still sampled (the figures grow); false once the attempt ended
    node: str | None
    gpus: list[TaskGpuOut]
    samples: int
    gpu_seconds: float
    utilization_mean_percent: float | None
    utilization_peak_percent: int | None
    memory_peak_bytes: int | None  # peak memory in use on any one of its GPUs
    first_sample_at: datetime | None
    last_sample_at: datetime | None
    idle: GpuIdleOut | None = None


class TaskOut(msgspec.Struct, kw_only=True):
    name: str
    status: str
    attempt: int
    reason: str | None
    message: str | None
    exit_code: int | None
    resource_kind: str | None
    resource_name: str | None
    namespace: str | None
    node: str | None
    started_at: datetime | None
    finished_at: datetime | None
    results: dict[str, Any] = msgspec.field(default_factory=dict)  # declared results of the succeeded attempt
    artifacts: dict[str, ArtifactOut] = msgspec.field(default_factory=dict)
    cache_key: str | None = None  # a task with `cache: true`: what a later run's lookup matches (docs/artifacts.md)
    tracking: TaskTracking | None = None
    gpu_usage: GpuUsageOut | None = None  # what the latest sampled attempt used of its GPUs; null if none sampled
    gpu_idle: bool = False  # that attempt held its GPUs idle for ODIN_GPU_IDLE_AFTER seconds (the flag stays)


class RunSummary(msgspec.Struct, kw_only=True):
    id: str
    pipeline: str
    commit_sha: str | None
    branch: str | None
    tag: str | None = None  # the tag a `tag`-triggered run ran for (its ref; docs/repositories.md)
    pull_request: int | None = None  # the pull request a `pull_request` run ran for (docs/webhooks.md#pull-requests)
    pr_provider: str | None = None  # where that number is: github, gitlab, gitea or bitbucket
    trigger: str
    triggered_by: str | None
    status: str
    message: str | None
    reason: str | None = None  # why it is `queued` (ConcurrencyLimit, MaxActiveRuns), or why it ended so (Replaced...)
    parent_run: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunDetail(RunSummary, kw_only=True):
    params: dict[str, str]
    spec: dict[str, Any]
    work_tree: str | None
    run_path_id: str | None
    no_cache: bool = False  # started with --no-cache: cached tasks ran without a lookup
    absorbed_commits: list[str]
    conditions: list[dict[str, Any]]
    tasks: list[TaskOut]  # every task, or the first 1,000 of a bigger run: then tasks_next_cursor continues
    tracking: RunTracking | None = None
    task_counts: dict[str, int] = msgspec.field(default_factory=dict)  # every task of the run, by status
    task_total: int = 0
    # Set when `tasks` is only the first page: pass it as `cursor` to GET /v1/runs/{id}/tasks for the rest.
    tasks_next_cursor: str | None = None
    # Retention (ODIN_EVENTS_KEEP_DAYS / ODIN_LOGS_KEEP_DAYS): when events of the run, or its task logs, were
    # deleted; null while everything is kept. The run, its tasks and what it ran are never deleted.
    events_pruned_at: datetime | None = None
    logs_pruned_at: datetime | None = None


class TaskPage(msgspec.Struct, kw_only=True):
    items: list[TaskOut]
    next_cursor: str | None
    counts: dict[str, int]  # every task of the run by status, whatever the filters


class RunPage(msgspec.Struct, kw_only=True):
    items: list[RunSummary]
    next_cursor: str | None


class StartRun(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pipeline: Annotated[str, msgspec.Meta(min_length=1, max_length=500, description="Pipeline directory")]
    ref: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = msgspec.field(default=None)
    params: ParamMap = msgspec.field(default_factory=dict)
    parallelism: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None
    no_cache: bool = msgspec.field(default=False)  # run tasks with `cache: true` without looking up earlier runs
    # The followed repository (by name, `odinctl repos list`); default: the one ODIN_REPO names (or the first).
    repository: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] | None = None


class Rerun(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    latest: bool = False
    failed_only: bool = False
    task: Annotated[str, msgspec.Meta(min_length=1, max_length=63)] | None = None
    params: ParamMap | None = None
    no_cache: bool = False  # run tasks with `cache: true` without looking up earlier runs


class EventOut(msgspec.Struct, kw_only=True):
    id: int
    time: datetime
    kind: str
    run_id: str | None
    task: str | None
    commit_sha: str | None
    data: dict[str, Any]


class EventPage(msgspec.Struct, kw_only=True):
    items: list[EventOut]
    next_since: int | None


class TaskEvents(msgspec.Struct, kw_only=True):
    run_id: str
    task: str
    events: list[EventOut]
    platform: list[dict[str, Any]]
