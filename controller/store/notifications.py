"""What the run notifier reads when a run ends, and the events it records (docs/notifications.md).

"First failure after success" and "recovery" compare a run with the previous finished run of the same pipeline on
the same branch of the same repository: that is one indexed query here (`ix_runs_pipeline_created`), so no table of
its own is needed. Each attempt to notify is a run event (`notify.sent`, `notify.failed`), written with
`record_run_event` like the MLflow worker's warnings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from odin.controller.store.db import DbEngine, StoreUnavailable, reading
from odin.controller.store.tables import COMMITS, REPOSITORIES, RUNS, TASK_RUNS
from odin.controller.store.tracking import record_run_event
from odin.controller.vocabulary import RunStatus, TaskStatus

__all__ = ["FailedTaskRow", "NotifiedRunRow", "notified_run", "record_run_event"]

_COMPARED = [RunStatus.SUCCEEDED.value, RunStatus.FAILED.value, RunStatus.ERROR.value]
"""Outcomes a later run is compared with: a cancelled run says nothing about whether the pipeline works."""


@dataclass(frozen=True, slots=True)
class FailedTaskRow:
    name: str
    reason: str | None
    message: str | None
    log_path: str | None


@dataclass(frozen=True, slots=True)
class NotifiedRunRow:
    """A finished run with what a notification tells about it."""

    id: str
    pipeline: str
    repo_id: int | None
    repository: str
    branch: str | None
    trigger: str
    triggered_by: str | None
    status: str
    reason: str | None
    message: str | None
    spec: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None
    commit_sha: str | None
    commit_message: str
    author_name: str
    author_email: str
    previous_status: str | None
    """The previous finished (succeeded, failed, error) run's status of this pipeline on this branch; None if none."""
    failed_task: FailedTaskRow | None
    secrets_withheld: bool = False  # a fork's pull request: its `notify:` entries are never sent (they name secrets)


def notified_run(db: DbEngine, run_id: str) -> NotifiedRunRow | None:
    """The run, its commit, its first failed task and its predecessor's outcome; None when there is no such run.
    Raises `StoreUnavailable` for any database error."""
    try:
        with reading(db) as conn:
            q = (
                sa.select(RUNS, REPOSITORIES.c.name.label("repository"))
                .select_from(RUNS.outerjoin(REPOSITORIES, RUNS.c.repo_id == REPOSITORIES.c.id))
                .where(RUNS.c.id == run_id)
            )
            run = conn.execute(q).first()
            if run is None:
                return None
            r = run._mapping
            commit = None
            if r["commit_sha"] and r["repo_id"] is not None:
                commit = conn.execute(
                    sa.select(COMMITS.c.message, COMMITS.c.author_name, COMMITS.c.author_email).where(
                        COMMITS.c.repo_id == r["repo_id"], COMMITS.c.sha == r["commit_sha"]
                    )
                ).first()
            previous = conn.execute(
                sa.select(RUNS.c.status)
                .where(
                    RUNS.c.pipeline == r["pipeline"],
                    RUNS.c.repo_id.is_(None) if r["repo_id"] is None else RUNS.c.repo_id == r["repo_id"],
                    RUNS.c.branch.is_(None) if r["branch"] is None else RUNS.c.branch == r["branch"],
                    RUNS.c.status.in_(_COMPARED),
                    RUNS.c.created_at < r["created_at"],
                    RUNS.c.id != run_id,
                )
                .order_by(RUNS.c.created_at.desc())
                .limit(1)
            ).scalar()
            failed = conn.execute(
                sa.select(TASK_RUNS.c.name, TASK_RUNS.c.reason, TASK_RUNS.c.message, TASK_RUNS.c.log_path)
                .where(TASK_RUNS.c.run_id == run_id, TASK_RUNS.c.status == TaskStatus.FAILED.value)
                .order_by(TASK_RUNS.c.finished_at, TASK_RUNS.c.id)
                .limit(1)
            ).first()
    except sa.exc.SQLAlchemyError as e:
        raise StoreUnavailable(f"cannot read the run: {e}") from e
    return NotifiedRunRow(
        id=r["id"],
        pipeline=r["pipeline"],
        repo_id=r["repo_id"],
        repository=r["repository"] or "local",
        branch=r["branch"],
        trigger=r["trigger"],
        triggered_by=r["triggered_by"],
        status=r["status"],
        reason=r["reason"],
        message=r["message"],
        spec=dict(r["spec"] or {}),
        created_at=r["created_at"],
        finished_at=r["finished_at"],
        commit_sha=r["commit_sha"],
        commit_message=commit.message if commit else "",
        author_name=commit.author_name if commit else "",
        author_email=commit.author_email if commit else "",
        previous_status=previous,
        failed_task=FailedTaskRow(failed.name, failed.reason, failed.message, failed.log_path) if failed else None,
        secrets_withheld=bool(r["secrets_withheld"]),
    )
