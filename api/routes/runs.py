"""Runs: find them by commit, pipeline or status; read one with its tasks."""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from litestar import get
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Parameter

from odin.api.context import AppContext
from odin.api.schemas import RunDetail, RunPage, RunSummary, TaskOut
from odin.controller.store.models import RUNS, TASK_RUNS

TASKS = TASK_RUNS
_HEX = re.compile(r"^[0-9a-f]{7,40}$")


def commit_filter(commit: str) -> sa.ColumnElement[bool]:
    """A full SHA, or a unique-enough prefix (>= 7 hex digits), as an index-friendly range."""
    sha = commit.strip().lower()
    if not _HEX.match(sha):
        raise ValidationException("commit must be 7 to 40 hexadecimal characters")
    if len(sha) == 40:
        return RUNS.c.commit_sha == sha
    return sa.and_(RUNS.c.commit_sha >= sha, RUNS.c.commit_sha < sha + "g")


def _summary(r: Any) -> RunSummary:
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


def _encode_cursor(created_at: datetime, run_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{run_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, run_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(created), run_id
    except (ValueError, UnicodeDecodeError) as e:
        raise ValidationException("invalid cursor") from e


@get("/v1/runs", sync_to_thread=True, operation_id="listRuns", summary="List runs, newest first", tags=["runs"])
def list_runs(
    ctx: AppContext,
    commit: Annotated[str | None, Parameter(description="Full commit SHA or a prefix of at least 7 characters")] = None,
    pipeline: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> RunPage:
    q = sa.select(RUNS)
    if commit:
        q = q.where(commit_filter(commit))
    if pipeline:
        q = q.where(RUNS.c.pipeline == pipeline)
    if status:
        q = q.where(RUNS.c.status == status)
    if cursor:
        created, run_id = _decode_cursor(cursor)
        q = q.where(sa.or_(RUNS.c.created_at < created, sa.and_(RUNS.c.created_at == created, RUNS.c.id < run_id)))
    q = q.order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc()).limit(limit + 1)
    with ctx.db.connect() as conn:
        rows = conn.execute(q).all()
    items = [_summary(r) for r in rows[:limit]]
    next_cursor = _encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return RunPage(items=items, next_cursor=next_cursor)


@get("/v1/runs/{run_id:str}", sync_to_thread=True, operation_id="getRun", summary="A run with its tasks", tags=["runs"])
def get_run(ctx: AppContext, run_id: str) -> RunDetail:
    with ctx.db.connect() as conn:
        r = conn.execute(sa.select(RUNS).where(RUNS.c.id == run_id)).first()
        if r is None:
            raise NotFoundException(f"no run {run_id!r}")
        tasks = conn.execute(sa.select(TASKS).where(TASKS.c.run_id == run_id).order_by(TASKS.c.id)).all()
    s = _summary(r)
    return RunDetail(
        **{f: getattr(s, f) for f in s.__struct_fields__},
        params=r.params or {},
        spec=r.spec or {},
        work_tree=r.work_tree,
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
            )
            for t in tasks
        ],
    )
