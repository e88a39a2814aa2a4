"""Runs: finding them (by commit above all), reading one with its tasks, its events, and where its logs are."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from litestar.exceptions import NotFoundException, ValidationException
from sqlalchemy.engine import Engine as DbEngine

from odin.api.schemas import ArtifactOut, EventOut, EventPage, RunDetail, RunPage, RunSummary, TaskOut
from odin.api.services.pagination import decode_cursor, encode_cursor
from odin.controller.store.models import EVENTS, RUNS, TASK_RUNS
from odin.controller.vocabulary import REUSED, RunStatus, Trigger

_HEX = re.compile(r"^[0-9a-f]{7,40}$")

RUN_STATUSES = tuple(s.value for s in RunStatus)
TRIGGERS = tuple(t.value for t in Trigger)

_SUMMARY = (
    RUNS.c.id,
    RUNS.c.pipeline,
    RUNS.c.commit_sha,
    RUNS.c.branch,
    RUNS.c.trigger,
    RUNS.c.triggered_by,
    RUNS.c.status,
    RUNS.c.message,
    RUNS.c.parent_run,
    RUNS.c.created_at,
    RUNS.c.started_at,
    RUNS.c.finished_at,
)


def commit_filter(column: sa.ColumnElement[str | None], commit: str) -> sa.ColumnElement[bool]:
    """A full SHA, or a prefix of at least 7 hex digits, as an index-friendly range on `column`."""
    sha = commit.strip().lower()
    if not _HEX.match(sha):
        raise ValidationException("commit must be 7 to 40 hexadecimal characters (a SHA or a prefix of one)")
    if len(sha) == 40:
        return column == sha
    return sa.and_(column >= sha, column < sha + "g")


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

    def clauses(self) -> list[sa.ColumnElement[bool]]:
        out: list[sa.ColumnElement[bool]] = []
        if self.commit:
            out.append(commit_filter(RUNS.c.commit_sha, self.commit))
        if self.pipeline:
            out.append(RUNS.c.pipeline == self.pipeline)
        if self.branch:
            out.append(RUNS.c.branch == self.branch)
        if self.status:
            _check_values("status", self.status, RUN_STATUSES)
            out.append(RUNS.c.status.in_(list(self.status)))
        if self.trigger:
            _check_values("trigger", self.trigger, TRIGGERS)
            out.append(RUNS.c.trigger.in_(list(self.trigger)))
        if self.triggered_by:
            out.append(RUNS.c.triggered_by == self.triggered_by)
        if self.parent_run:
            out.append(RUNS.c.parent_run == self.parent_run)
        for bound in (self.created_after, self.created_before):
            if bound is not None and bound.tzinfo is None:
                raise ValidationException("time filters need a time zone, e.g. 2024-05-01T12:00:00Z")
        if self.created_after is not None:
            out.append(RUNS.c.created_at >= self.created_after)
        if self.created_before is not None:
            out.append(RUNS.c.created_at < self.created_before)
        return out


def timestamp(name: str, value: str | None) -> datetime | None:
    """A query parameter holding an RFC 3339 time; 400 for anything else, or a time without a zone."""
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    except ValueError as e:
        raise ValidationException(f"{name} must be a time like 2024-05-01T12:00:00Z, not {value[:40]!r}") from e
    if parsed.tzinfo is None:
        raise ValidationException(f"{name} needs a time zone, e.g. 2024-05-01T12:00:00Z")
    return parsed


def _check_values(name: str, given: Sequence[str], allowed: Sequence[str]) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ValidationException(f"unknown {name} {', '.join(map(repr, unknown))}; one of: {', '.join(allowed)}")


def summary(r: Any) -> RunSummary:
    return RunSummary(
        id=r.id,
        pipeline=r.pipeline,
        commit_sha=r.commit_sha,
        branch=r.branch,
        trigger=r.trigger,
        triggered_by=r.triggered_by,
        status=r.status,
        message=r.message,
        parent_run=r.parent_run,
        created_at=r.created_at,
        started_at=r.started_at,
        finished_at=r.finished_at,
    )


def list_runs(db: DbEngine, f: RunFilter, *, limit: int, cursor: str | None) -> RunPage:
    """Newest first, `limit` per page; `next_cursor` continues after the last item."""
    q = sa.select(*_SUMMARY).where(*f.clauses())
    if cursor:
        at, run_id = decode_cursor(cursor)
        q = q.where(sa.or_(RUNS.c.created_at < at, sa.and_(RUNS.c.created_at == at, RUNS.c.id < run_id)))
    q = q.order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc()).limit(limit + 1)
    with db.connect() as conn:
        rows = conn.execute(q).all()
    items = [summary(r) for r in rows[:limit]]
    more = len(rows) > limit
    return RunPage(
        items=items, next_cursor=encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if more else None
    )


def runs_of_commit(db: DbEngine, sha: str) -> list[RunSummary]:
    q = sa.select(*_SUMMARY).where(RUNS.c.commit_sha == sha).order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc())
    with db.connect() as conn:
        return [summary(r) for r in conn.execute(q.limit(500))]


def get_run(db: DbEngine, run_id: str) -> RunDetail:
    with db.connect() as conn:
        r = conn.execute(sa.select(RUNS).where(RUNS.c.id == run_id)).first()
        if r is None:
            raise NotFoundException(f"no run {run_id!r}")
        tasks = conn.execute(sa.select(TASK_RUNS).where(TASK_RUNS.c.run_id == run_id).order_by(TASK_RUNS.c.id)).all()
    s = summary(r)
    return RunDetail(
        **{f: getattr(s, f) for f in s.__struct_fields__},
        params=r.params or {},
        spec=r.spec or {},
        work_tree=r.work_tree,
        run_path_id=r.run_path_id,
        absorbed_commits=r.absorbed_commits or [],
        conditions=r.conditions or [],
        tasks=[
            TaskOut(
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
                results=t.results or {},
                artifacts={name: msgspec.convert(a, ArtifactOut) for name, a in (t.artifacts or {}).items()},
            )
            for t in tasks
        ],
    )


def run_summary(db: DbEngine, run_id: str) -> RunSummary:
    with db.connect() as conn:
        r = conn.execute(sa.select(*_SUMMARY).where(RUNS.c.id == run_id)).first()
    if r is None:
        raise NotFoundException(f"no run {run_id!r}")
    return summary(r)


def event_out(r: Any) -> EventOut:
    return EventOut(
        id=r.id, time=r.time, kind=r.kind, run_id=r.run_id, task=r.task, commit_sha=r.commit_sha, data=r.data or {}
    )


def run_events(db: DbEngine, run_id: str, *, task: str | None, after: int | None, limit: int) -> EventPage:
    """The run's events oldest first; `next_since` is the id to pass as `since` for the next page."""
    q = sa.select(EVENTS).where(EVENTS.c.run_id == run_id)
    if task is not None:
        q = q.where(EVENTS.c.task == task)
    if after is not None:
        q = q.where(EVENTS.c.id > after)
    with db.connect() as conn:
        if conn.execute(sa.select(RUNS.c.id).where(RUNS.c.id == run_id)).first() is None:
            raise NotFoundException(f"no run {run_id!r}")
        rows = conn.execute(q.order_by(EVENTS.c.id).limit(limit + 1)).all()
    items = [event_out(r) for r in rows[:limit]]
    return EventPage(items=items, next_since=items[-1].id if len(rows) > limit else None)


def task_row(db: DbEngine, run_id: str, task: str) -> Any:
    with db.connect() as conn:
        row = conn.execute(
            sa.select(TASK_RUNS, RUNS.c.parent_run)
            .join(RUNS, RUNS.c.id == TASK_RUNS.c.run_id)
            .where(TASK_RUNS.c.run_id == run_id, TASK_RUNS.c.name == task)
        ).first()
        if row is None:
            exists = conn.execute(sa.select(RUNS.c.id).where(RUNS.c.id == run_id)).first()
            raise NotFoundException(f"run {run_id!r} has no task {task!r}" if exists else f"no run {run_id!r}")
    return row


def log_source(db: DbEngine, run_id: str, task: str) -> str:
    """The run whose attempt of `task` produced the log: a task reused by a rerun logged in its original run."""
    row = task_row(db, run_id, task)
    for _ in range(100):  # reruns of reruns; bounded against a corrupt cycle
        if row.reason != REUSED or not row.parent_run:
            return str(row.run_id)
        row = task_row(db, row.parent_run, task)
    return str(row.run_id)
