"""Runs: finding them (by commit above all), reading one with its tasks, its events, and where its logs are."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from odin.api.schemas import (
    ArtifactOut,
    EventOut,
    EventPage,
    GpuUsageOut,
    RunDetail,
    RunPage,
    RunSummary,
    RunTracking,
    TaskOut,
    TaskPage,
    TaskTracking,
)
from odin.api.services.errors import InvalidRequest, NotFound
from odin.api.services.pagination import decode_cursor, decode_key_cursor, encode_cursor, encode_key_cursor
from odin.controller.facade import mlflow_run_url
from odin.controller.store import run_queries as store
from odin.controller.store.db import DbEngine
from odin.controller.vocabulary import REUSED, RunStatus, TaskStatus, Trigger

log = logging.getLogger(__name__)

_HEX = re.compile(r"^[0-9a-f]{7,40}$")

RUN_STATUSES = tuple(s.value for s in RunStatus)
TRIGGERS = tuple(t.value for t in Trigger)
TASK_STATUSES = tuple(t.value for t in TaskStatus)

# A run's answer embeds at most this many tasks: a 100,000-task run's answer would be tens of megabytes, built in
# memory at once. Below it (nearly every run) the answer is whole, as clients have always read it; above it,
# `tasks_next_cursor` continues through GET /v1/runs/{id}/tasks.
EMBEDDED_TASKS = 1000
MAX_TASK_PAGE = 1000


def commit_prefix(commit: str) -> str:
    """A full SHA, or a prefix of at least 7 hex digits, lower-cased; `InvalidRequest` for anything else."""
    sha = commit.strip().lower()
    if not _HEX.match(sha):
        raise InvalidRequest("commit must be 7 to 40 hexadecimal characters (a SHA or a prefix of one)")
    return sha


@dataclass(frozen=True, slots=True)
class RunFilter:
    commit: str | None = None
    pipeline: str | None = None
    branch: str | None = None
    status: Sequence[str] = ()
    trigger: Sequence[str] = ()
    triggered_by: str | None = None
    parent_run: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def query(self) -> store.RunQuery:
        """The store's filter, once each value given is checked (`InvalidRequest` names the first one at fault)."""
        commit = commit_prefix(self.commit) if self.commit else None
        if self.status:
            _check_values("status", self.status, RUN_STATUSES)
        if self.trigger:
            _check_values("trigger", self.trigger, TRIGGERS)
        for bound in (self.created_after, self.created_before):
            if bound is not None and bound.tzinfo is None:
                raise InvalidRequest("time filters need a time zone, e.g. 2024-05-01T12:00:00Z")
        return store.RunQuery(
            commit=commit,
            pipeline=self.pipeline,
            branch=self.branch,
            status=self.status,
            trigger=self.trigger,
            triggered_by=self.triggered_by,
            parent_run=self.parent_run,
            created_after=self.created_after,
            created_before=self.created_before,
        )


def timestamp(name: str, value: str | None) -> datetime | None:
    """A query parameter holding an RFC 3339 time; `InvalidRequest` for anything else, or a time without a zone."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError as e:
        raise InvalidRequest(f"{name} must be a time like 2024-05-01T12:00:00Z, not {value[:40]!r}") from e
    if parsed.tzinfo is None:
        raise InvalidRequest(f"{name} needs a time zone, e.g. 2024-05-01T12:00:00Z")
    return parsed


def _check_values(name: str, given: Sequence[str], allowed: Sequence[str]) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise InvalidRequest(f"unknown {name} {', '.join(map(repr, unknown))}; one of: {', '.join(allowed)}")


def summary(r: store.RunSummaryRow) -> RunSummary:
    return RunSummary(
        id=r.id,
        pipeline=r.pipeline,
        commit_sha=r.commit_sha,
        branch=r.branch,
        tag=r.tag,
        pull_request=r.pull_request,
        pr_provider=r.pr_provider,
        trigger=r.trigger,
        triggered_by=r.triggered_by,
        status=r.status,
        message=r.message,
        reason=r.reason,
        parent_run=r.parent_run,
        created_at=r.created_at,
        started_at=r.started_at,
        finished_at=r.finished_at,
    )


def list_runs(db: DbEngine, f: RunFilter, *, limit: int, cursor: str | None) -> RunPage:
    """Newest first, `limit` per page; `next_cursor` continues after the last item."""
    query = f.query()
    after = decode_cursor(cursor) if cursor else None
    return _page(store.list_runs(db, query, limit=limit + 1, after=after), limit)


async def list_runs_on_loop(db: DbEngine, f: RunFilter, *, limit: int, cursor: str | None) -> RunPage | None:
    """`list_runs` without a thread, where the store can read it on the event loop (Postgres, single-valued
    filters); None otherwise: call `list_runs` in a thread then. Invalid filters or cursors raise as there."""
    query = f.query()
    after = decode_cursor(cursor) if cursor else None
    rows = await store.list_runs_on_loop(db, query, limit=limit + 1, after=after)
    return None if rows is None else _page(rows, limit)


def _page(rows: list[store.RunSummaryRow], limit: int) -> RunPage:
    items = [summary(r) for r in rows[:limit]]
    more = len(rows) > limit
    return RunPage(
        items=items, next_cursor=encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if more else None
    )


def runs_of_commit(db: DbEngine, sha: str) -> list[RunSummary]:
    return [summary(r) for r in store.runs_of_commit(db, sha, limit=500)]


def get_run(
    db: DbEngine, run_id: str, *, mlflow_ui: str | None = None, task_limit: int | None = EMBEDDED_TASKS
) -> RunDetail:
    """The run with its tasks (the first `task_limit`; None: all) and their counts by status; `mlflow_ui` is where
    links to its MLflow runs point (None: ids without links)."""
    r = store.get_run(db, run_id, task_limit=task_limit)
    if r is None:
        raise NotFound(f"no run {run_id!r}")
    s = summary(r.summary)
    experiment = r.mlflow_experiment_id
    return RunDetail(
        **{f: getattr(s, f) for f in s.__struct_fields__},
        params=r.params,
        spec=r.spec,
        work_tree=r.work_tree,
        run_path_id=r.run_path_id,
        no_cache=r.no_cache,
        absorbed_commits=r.absorbed_commits,
        conditions=r.conditions,
        tasks=[task_out(t, mlflow_ui, experiment) for t in r.tasks],
        tracking=RunTracking(
            run_id=r.mlflow_run_id,
            experiment_id=experiment,
            url=mlflow_run_url(mlflow_ui, experiment, r.mlflow_run_id),
            status=r.mlflow_status,
        )
        if r.mlflow_run_id
        else None,
        task_counts=r.task_counts,
        task_total=sum(r.task_counts.values()),
        tasks_next_cursor=encode_key_cursor(r.tasks[-1].key) if r.more_tasks and r.tasks else None,
        events_pruned_at=r.events_pruned_at,
        logs_pruned_at=r.logs_pruned_at,
    )


def task_out(t: store.TaskRow, mlflow_ui: str | None, experiment: str | None) -> TaskOut:
    return TaskOut(
        name=t.name,
        status=t.status,
        attempt=t.attempt,
        reason=t.reason,
        message=t.message,
        exit_code=t.exit_code,
        resource_kind=t.resource_kind,
        resource_name=t.resource_name,
        namespace=t.namespace,
        node=t.node,
        started_at=t.started_at,
        finished_at=t.finished_at,
        results=t.results,
        artifacts={name: msgspec.convert(a, ArtifactOut) for name, a in t.artifacts.items()},
        cache_key=t.cache_key,
        tracking=TaskTracking(run_id=t.mlflow_run_id, url=mlflow_run_url(mlflow_ui, experiment, t.mlflow_run_id))
        if t.mlflow_run_id
        else None,
        gpu_usage=gpu_usage(t.gpu_usage),
        gpu_idle=bool(t.gpu_usage and t.gpu_usage.get("idle")),
    )


def task_query(status: Sequence[str] = (), prefix: str | None = None) -> store.TaskQuery:
    """The store's filter on a run's tasks; `InvalidRequest` names an unknown status."""
    if status:
        _check_values("status", status, TASK_STATUSES)
    return store.TaskQuery(status=tuple(status), prefix=prefix or None)


def run_tasks(
    db: DbEngine,
    run_id: str,
    query: store.TaskQuery,
    *,
    limit: int,
    cursor: str | None,
    mlflow_ui: str | None = None,
) -> TaskPage:
    """A page of the run's tasks in creation order (keyset: `next_cursor` continues after its last task), with the
    counts of all its tasks by status from one aggregate query."""
    after = decode_key_cursor(cursor) if cursor else None
    rows = store.run_tasks(db, run_id, query, after=after, limit=limit + 1)
    counts = store.task_counts(db, run_id)
    if rows is None or counts is None:
        raise NotFound(f"no run {run_id!r}")
    experiment = store.mlflow_experiment(db, run_id) if any(t.mlflow_run_id for t in rows) else None
    items = [task_out(t, mlflow_ui, experiment) for t in rows[:limit]]
    more = len(rows) > limit
    return TaskPage(items=items, next_cursor=encode_key_cursor(rows[limit - 1].key) if more else None, counts=counts)


def gpu_usage(stored: dict[str, Any] | None) -> GpuUsageOut | None:
    """The stored summary as served; one this version cannot read (a newer writer, a damaged row) is left out rather
    than failing the whole run's answer."""
    if not stored:
        return None
    try:
        return msgspec.convert(stored, GpuUsageOut, strict=False)
    except msgspec.ValidationError:
        log.warning("unreadable gpu_usage left out: %s", stored)
        return None


def run_summary(db: DbEngine, run_id: str) -> RunSummary:
    r = store.run_summary(db, run_id)
    if r is None:
        raise NotFound(f"no run {run_id!r}")
    return summary(r)


def event_out(r: Mapping[str, Any]) -> EventOut:
    return EventOut(
        id=r["id"],
        time=r["time"],
        kind=r["kind"],
        run_id=r["run_id"],
        task=r["task"],
        commit_sha=r["commit_sha"],
        data=r["data"] or {},
    )


def run_events(db: DbEngine, run_id: str, *, task: str | None, after: int | None, limit: int) -> EventPage:
    """The run's events oldest first; `next_since` is the id to pass as `since` for the next page."""
    rows = store.run_events(db, run_id, task=task, after=after, limit=limit + 1)
    if rows is None:
        raise NotFound(f"no run {run_id!r}")
    items = [event_out(r) for r in rows[:limit]]
    return EventPage(items=items, next_since=items[-1].id if len(rows) > limit else None)


def task_row(db: DbEngine, run_id: str, task: str) -> store.TaskRef:
    row = store.find_task(db, run_id, task)
    if row is None:
        exists = store.run_exists(db, run_id)
        raise NotFound(f"run {run_id!r} has no task {task!r}" if exists else f"no run {run_id!r}")
    return row


def logs_pruned_note(when: datetime) -> str:
    """What a log request answers for a run whose logs retention deleted: said, not an error."""
    return f"(this run's logs were deleted by retention on {when:%Y-%m-%d %H:%M} UTC: ODIN_LOGS_KEEP_DAYS)\n"


def log_source(db: DbEngine, run_id: str, task: str) -> str:
    """The run whose attempt of `task` produced the log: a task reused by a rerun logged in its original run."""
    row = task_row(db, run_id, task)
    for _ in range(100):  # reruns of reruns; bounded against a corrupt cycle
        if row.reason != REUSED or not row.parent_run:
            return str(row.run_id)
        row = task_row(db, row.parent_run, task)
    return str(row.run_id)
