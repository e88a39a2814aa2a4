"""What each console page shows, read from the store and the API's services: plain values for the templates.

The pages read through the same services as the JSON API (so a run looks the same in both), plus two batched reads
of their own: a page of the commit timeline fetches its commits' runs in one query, and carries each commit's
problems, which the API's list leaves to the commit's own endpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from odin.api.console.dag import DRAWN_NODES, DRAWN_TASKS, Group, Layout, collapse, dependencies, layout
from odin.api.schemas import PipelineList, RunDetail, RunSummary
from odin.api.schemas.runs import GpuUsageOut, TaskOut
from odin.api.services import runs as run_service
from odin.api.services.artifacts import artifact_url
from odin.api.services.commits import VALIDATIONS
from odin.api.services.errors import InvalidRequest
from odin.api.services.pagination import decode_cursor, encode_cursor
from odin.controller.store import commit_queries, run_queries
from odin.controller.store.db import DbEngine

PAGE_SIZE = 50


@dataclass(frozen=True, slots=True)
class CommitFilter:
    pipeline: str | None = None
    status: str | None = None  # the validation outcome: valid, invalid, skipped, absorbed, baseline
    author: str | None = None
    sha: str | None = None


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    sha: str
    subject: str
    author: str
    author_email: str
    committed_at: datetime | None
    validation: str
    problems: list[dict[str, Any]]
    pipelines_changed: list[str]
    absorbed_by: str | None
    runs: list[RunSummary]


@dataclass(frozen=True, slots=True)
class Timeline:
    items: list[TimelineEntry]
    next_cursor: str | None
    filters: CommitFilter
    pipelines: list[str] = field(default_factory=list)


def timeline(db: DbEngine, f: CommitFilter, *, cursor: str | None, limit: int = PAGE_SIZE) -> Timeline:
    """A page of the commit timeline, most recently seen first; `InvalidRequest` for a filter that cannot match."""
    if f.status and f.status not in VALIDATIONS:
        raise InvalidRequest(f"unknown status {f.status!r}; one of: {', '.join(VALIDATIONS)}")
    sha = run_service.commit_prefix(f.sha) if f.sha else None
    after: tuple[datetime, int] | None = None
    if cursor:
        at, key = decode_cursor(cursor)
        if not key.isdigit():
            raise InvalidRequest("invalid page link: go back to the first page")
        after = (at, int(key))
    scan = commit_queries.list_commits(
        db,
        branch=None,
        validation=f.status,
        pipeline=f.pipeline,
        limit=limit,
        after=after,
        author=f.author,
        sha_prefix=sha,
    )
    runs = run_queries.runs_of_commits(db, [c.sha for c in scan.items])
    items = [
        TimelineEntry(
            sha=c.sha,
            subject=(c.message.strip().split("\n", 1)[0] if c.message else "")[:500],
            author=c.author_name,
            author_email=c.author_email,
            committed_at=c.committed_at,
            validation=c.validation,
            problems=list(c.problems),
            pipelines_changed=list(c.pipelines_changed),
            absorbed_by=c.absorbed_by,
            runs=[run_service.summary(r) for r in runs.get(c.sha, [])],
        )
        for c in scan.items
    ]
    resume = scan.resume
    return Timeline(items, encode_cursor(resume.seen_at, str(resume.id)) if resume is not None else None, f)


@dataclass(frozen=True, slots=True)
class TaskLine:
    """A task's row, already formatted: a 1,000-task page spends its time in the template's lookups otherwise."""

    name: str
    status: str
    attempt: int
    started: str  # HH:MM:SS (UTC) or ''
    start_iso: str  # for the ticking duration, or ''
    end_iso: str
    duration: str
    exit_code: str
    message: str
    results: list[tuple[str, str]]
    artifacts: list[Download]


@dataclass(frozen=True, slots=True)
class Download:
    """An artifact with its download link (the artifacts API, path without the prefix: the template adds it)."""

    name: str
    label: str  # "path (type, size)"
    url: str
    digest: str


@dataclass(frozen=True, slots=True)
class GpuLine:
    """A task's GPU usage, formatted (task_runs.gpu_usage as the API gives it)."""

    task: str
    attempt: int
    running: bool
    node: str
    gpus: str  # "2 x NVIDIA H100 80GB HBM3" or the distinct models
    gpu_seconds: str
    mean: str
    peak: str
    memory_peak: str
    idle: str  # "" or what the flag says


@dataclass(frozen=True, slots=True)
class NodeLine:
    name: str  # the task, or the group (`shard-[00000..00999]`)
    label: str  # the name, shortened to fit the box
    status: str  # the task's, or the most urgent of the group's
    x: int
    y: int
    group: Group | None = None  # a collapsed fan-out: its members' counts


TASK_PAGE = 100  # rows of the task table per page
TASK_STATUSES = run_service.TASK_STATUSES


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """The task table's filters and page, as the page's query string gives them."""

    status: str | None = None
    prefix: str | None = None
    cursor: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.status or self.prefix or self.cursor)


@dataclass(frozen=True, slots=True)
class RunView:
    run: RunDetail
    dag: Layout
    nodes: list[NodeLine]
    tasks: list[TaskLine]
    gpus: list[GpuLine] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # every task by status
    total: int = 0
    filters: TaskFilter = TaskFilter()
    next_cursor: str | None = None  # the task table's next page
    grouped: bool = False  # the DAG shows fan-outs as group nodes
    undrawn: str = ""  # why there is no DAG drawing, when there is none

    @property
    def query(self) -> str:
        """This page's task filters and cursor as a query string (what the live refresh asks the API for)."""
        return _query(self.filters.status, self.filters.prefix, self.filters.cursor)

    @property
    def first_query(self) -> str:
        return _query(self.filters.status, self.filters.prefix, None)

    @property
    def next_query(self) -> str:
        return _query(self.filters.status, self.filters.prefix, self.next_cursor)


def _query(status: str | None, prefix: str | None, cursor: str | None) -> str:
    return urlencode([(k, v) for k, v in (("status", status), ("prefix", prefix), ("cursor", cursor)) if v])


def run_view(db: DbEngine, run_id: str, now: datetime, tasks: TaskFilter | None = None) -> RunView:
    """A run with one page of its tasks (`TASK_PAGE` rows, filtered), their counts by status, and its DAG's layout
    (fan-outs collapsed into group nodes past `DRAWN_TASKS` tasks); `NotFound` when there is no such run.

    What it reads is bounded by the page, not the run: the run without its tasks, a page of tasks, one aggregate
    query for the counts, and for the drawing only the tasks' names and statuses."""
    f = tasks or TaskFilter()
    run = run_service.get_run(db, run_id, task_limit=0)
    page = run_service.run_tasks(
        db,
        run_id,
        run_service.task_query((f.status,) if f.status else (), f.prefix),
        limit=TASK_PAGE,
        cursor=f.cursor,
    )
    states = run_queries.task_states(db, run_id)
    depends = dependencies(run.spec)
    statuses = {t.name: t.status for t in states}
    order = [t.name for t in states]
    grouped, undrawn = len(order) > DRAWN_TASKS, ""
    if grouped:
        c = collapse(order, depends, statuses)
        if len(c.order) > DRAWN_NODES:
            dag, nodes = Layout([], [], 0, 0), []
            undrawn = f"{len(order):,} tasks in {len(c.order):,} groups: too many to draw; the table lists them."
        else:
            dag = layout(c.order, c.depends)
            nodes = [
                NodeLine(n.name, _group_label(c.groups[n.name]), c.groups[n.name].status, n.x, n.y, c.groups[n.name])
                for n in dag.nodes
            ]
    else:
        dag = layout(order, depends)
        nodes = [NodeLine(n.name, _short(n.name), statuses[n.name], n.x, n.y) for n in dag.nodes]
    lines = [task_line(run.id, t, now) for t in page.items]
    gpus = [gpu_line(t.name, t.gpu_usage) for t in page.items if t.gpu_usage is not None]
    return RunView(
        run, dag, nodes, lines, gpus, page.counts, sum(page.counts.values()), f, page.next_cursor, grouped, undrawn
    )


def _group_label(g: Group) -> str:
    """`shard-* (1,000)` (the box is 15 characters wide); a group of one is its task's name."""
    return _short(f"{g.prefix}* ({g.members:,})" if g.members > 1 else g.name)


def _short(name: str) -> str:
    return name if len(name) <= 15 else name[:14] + "…"


def task_line(run_id: str, t: TaskOut, now: datetime) -> TaskLine:
    return TaskLine(
        name=t.name,
        status=t.status,
        attempt=t.attempt,
        started=t.started_at.strftime("%H:%M:%S") if t.started_at else "",
        start_iso=t.started_at.isoformat(timespec="seconds") if t.started_at else "",
        end_iso=t.finished_at.isoformat(timespec="seconds") if t.finished_at else "",
        duration=duration(t.started_at, t.finished_at, now),
        exit_code="" if t.exit_code is None else str(t.exit_code),
        message=t.message or t.reason or "",
        results=[(k, v if isinstance(v, str) else json.dumps(v)) for k, v in t.results.items()],
        artifacts=[
            Download(k, f"{a.path} ({a.type}, {size(a.size)})", artifact_url(run_id, t.name, k), a.digest)
            for k, a in t.artifacts.items()
        ],
    )


def size(n: int) -> str:
    """Bytes for a person: `512 B`, `12.3 kB`, `4.1 MB`, `2.0 GB` (decimal, as download tools show)."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def gpu_line(task: str, u: GpuUsageOut) -> GpuLine:
    models = sorted({g.model for g in u.gpus})
    gpus = f"{len(u.gpus)} x {models[0]}" if len(models) == 1 else ", ".join(models) or "none seen"
    idle = ""
    if u.idle is not None:
        state = "idle now" if u.idle.active else "was idle"
        idle = f"{state}: ≤ {u.idle.threshold_percent:g}% for {u.idle.after_seconds:g} s since {u.idle.since:%H:%M:%S}"
    return GpuLine(
        task=task,
        attempt=u.attempt,
        running=u.running,
        node=u.node or "",
        gpus=gpus,
        gpu_seconds=f"{u.gpu_seconds:,.0f}",
        mean="" if u.utilization_mean_percent is None else f"{u.utilization_mean_percent:.0f}%",
        peak="" if u.utilization_peak_percent is None else f"{u.utilization_peak_percent}%",
        memory_peak=gib(u.memory_peak_bytes),
        idle=idle,
    )


# -- comparing two runs -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Difference:
    """One line of a comparison: a parameter, a task's result, or a task's state; `differs` highlights it."""

    name: str
    left: str
    right: str

    @property
    def differs(self) -> bool:
        return self.left != self.right


@dataclass(frozen=True, slots=True)
class TaskPair:
    name: str
    left_status: str
    right_status: str
    left_duration: str
    right_duration: str

    @property
    def differs(self) -> bool:
        return self.left_status != self.right_status


@dataclass(frozen=True, slots=True)
class Comparison:
    left: RunDetail
    right: RunDetail
    params: list[Difference]
    results: list[Difference]
    tasks: list[TaskPair]


def _value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _side_by_side(left: dict[str, str], right: dict[str, str]) -> list[Difference]:
    """Every name of either side in order (left's first), `—` where a side lacks it."""
    names = list(left) + [n for n in right if n not in left]
    return [Difference(n, left.get(n, "—"), right.get(n, "—")) for n in names]


def _results(tasks: list[TaskOut]) -> dict[str, str]:
    return {f"{t.name}.{k}": _value(v) for t in tasks for k, v in t.results.items()}


def compare(db: DbEngine, a: str, b: str, now: datetime) -> Comparison:
    """Runs `a` and `b` side by side; `NotFound` for a missing run. Runs of different pipelines compare too (the
    page says so): a person comparing a fork of a pipeline with the original wants exactly that."""
    if a == b:
        raise InvalidRequest("pick two different runs to compare")
    left, right = run_service.get_run(db, a), run_service.get_run(db, b)
    params = _side_by_side(
        {k: _value(v) for k, v in left.params.items()}, {k: _value(v) for k, v in right.params.items()}
    )
    results = _side_by_side(_results(left.tasks), _results(right.tasks))
    lt, rt = {t.name: t for t in left.tasks}, {t.name: t for t in right.tasks}
    tasks = []
    for name in list(lt) + [n for n in rt if n not in lt]:
        x, y = lt.get(name), rt.get(name)
        tasks.append(
            TaskPair(
                name,
                x.status if x else "—",
                y.status if y else "—",
                duration(x.started_at, x.finished_at, now) if x else "",
                duration(y.started_at, y.finished_at, now) if y else "",
            )
        )
    return Comparison(left, right, params, results, tasks)


def duration(start: datetime | None, end: datetime | None, now: datetime) -> str:
    """`1h02m`, `3m05s`, `12s`, or an empty string before the start."""
    if start is None:
        return ""
    seconds = max(0, int(((end or now) - start).total_seconds()))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


# -- pipelines ----------------------------------------------------------------------------------------------------

RECENT = 20  # runs per pipeline the success rate is computed over
FINISHED = frozenset({"succeeded", "failed", "cancelled", "error", "skipped"})


@dataclass(frozen=True, slots=True)
class PipelineRow:
    name: str
    valid: bool
    problem_count: int
    task_count: int
    runs: list[RunSummary]  # newest first, at most RECENT
    success_rate: float | None  # of the finished ones among them; None when none finished


def recent_runs(db: DbEngine, pipeline: str, limit: int = RECENT) -> list[RunSummary]:
    rows = run_queries.list_runs(db, run_queries.RunQuery(pipeline=pipeline), limit=limit)
    return [run_service.summary(r) for r in rows]


def success_rate(runs: list[RunSummary]) -> float | None:
    done = [r for r in runs if r.status in FINISHED]
    return sum(r.status == "succeeded" for r in done) / len(done) if done else None


def pipelines(db: DbEngine, listed: PipelineList) -> list[PipelineRow]:
    """Every pipeline at the listed commit with its recent runs (one small query each: pipelines are few)."""
    rows = []
    for p in listed.items:
        runs = recent_runs(db, p.name)
        rows.append(PipelineRow(p.name, p.valid, p.problem_count, p.task_count, runs, success_rate(runs)))
    return rows


def url_name(pipeline: str) -> str:
    """A nested pipeline directory in one URL segment, as the API writes it (`vision:detector`)."""
    return pipeline.replace("/", ":")


def gib(n: int | None) -> str:
    return "" if n is None else f"{n / 2**30:.1f} GiB"
