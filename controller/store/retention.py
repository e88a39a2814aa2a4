"""What artifact retention reads and writes: each repository's policy, each run's artifact records, and the marks
left on the runs whose artifacts were let go.

The decision itself is `odin.controller.artifacts.retention.plan_retention` (pure); the sweep that deletes blobs is
`odin.controller.retention`. Here only the rows: read in one go per repository, and written back in one transaction
per sweep, so a run is either fully marked (its `artifacts_expired_at` and every artifact record `gone`) or not at all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from odin.controller.store.db import DbEngine, transaction
from odin.controller.store.tables import REPOSITORIES, RUNS, TASK_RUNS
from odin.controller.vocabulary import RunStatus


@dataclass(frozen=True, slots=True)
class RepoPolicy:
    """A repository's retention columns (None: that rule is off); `repo_id` None stands for runs of no repository."""

    repo_id: int | None
    keep_runs: int | None
    keep_days: float | None


@dataclass(frozen=True, slots=True)
class RunOutputs:
    """One run as retention reads it: its artifact records per task (as recorded, `gone` ones included)."""

    run_id: str
    pipeline: str
    created_at: datetime
    finished: bool
    expired: bool
    artifacts: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)


def policies(engine: DbEngine) -> list[RepoPolicy]:
    """Every followed repository's policy."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(REPOSITORIES.c.id, REPOSITORIES.c.retention_keep_runs, REPOSITORIES.c.retention_keep_days)
        ).all()
    return [RepoPolicy(int(r.id), r.retention_keep_runs, r.retention_keep_days) for r in rows]


def set_policy(engine: DbEngine, repo_id: int, *, keep_runs: int | None, keep_days: float | None) -> None:
    """Set a repository's policy (the server does so for the repository its settings name, at start)."""
    with transaction(engine) as conn:
        conn.execute(
            REPOSITORIES.update()
            .where(REPOSITORIES.c.id == repo_id)
            .values(retention_keep_runs=keep_runs, retention_keep_days=keep_days)
        )


def run_outputs(engine: DbEngine, repo_id: int | None) -> list[RunOutputs]:
    """Every run of the repository (of no repository when None) with the artifacts its tasks recorded."""
    repo_filter = RUNS.c.repo_id.is_(None) if repo_id is None else RUNS.c.repo_id == repo_id
    terminal = [str(s) for s in RunStatus if s.terminal]
    with engine.connect() as conn:
        runs = conn.execute(
            sa.select(RUNS.c.id, RUNS.c.pipeline, RUNS.c.created_at, RUNS.c.status, RUNS.c.artifacts_expired_at).where(
                repo_filter
            )
        ).all()
        tasks = conn.execute(
            sa.select(TASK_RUNS.c.run_id, TASK_RUNS.c.name, TASK_RUNS.c.artifacts)
            .join(RUNS, RUNS.c.id == TASK_RUNS.c.run_id)
            .where(repo_filter, TASK_RUNS.c.artifacts.is_not(None))
        ).all()
    by_run: dict[str, dict[str, dict[str, dict[str, Any]]]] = defaultdict(dict)
    for t in tasks:
        if t.artifacts:
            by_run[t.run_id][t.name] = dict(t.artifacts)
    return [
        RunOutputs(
            run_id=r.id,
            pipeline=r.pipeline,
            created_at=r.created_at,
            finished=r.status in terminal,
            expired=r.artifacts_expired_at is not None,
            artifacts=by_run.get(r.id, {}),
        )
        for r in runs
    ]


def mark_expired(engine: DbEngine, run_ids: Iterable[str], when: datetime) -> int:
    """Record that the runs' artifacts are gone: `artifacts_expired_at`, and `gone: true` on each artifact record of
    their task runs. Runs already marked are left alone. Returns how many runs were marked."""
    ids: Sequence[str] = sorted(set(run_ids))
    if not ids:
        return 0
    with transaction(engine) as conn:
        fresh = [
            r.id
            for r in conn.execute(
                sa.select(RUNS.c.id).where(RUNS.c.id.in_(ids), RUNS.c.artifacts_expired_at.is_(None))
            ).all()
        ]
        if not fresh:
            return 0
        rows = conn.execute(
            sa.select(TASK_RUNS.c.id, TASK_RUNS.c.artifacts).where(
                TASK_RUNS.c.run_id.in_(fresh), TASK_RUNS.c.artifacts.is_not(None)
            )
        ).all()
        for row in rows:
            marked = {name: {**record, "gone": True} for name, record in (row.artifacts or {}).items()}
            conn.execute(TASK_RUNS.update().where(TASK_RUNS.c.id == row.id).values(artifacts=marked))
        conn.execute(RUNS.update().where(RUNS.c.id.in_(fresh)).values(artifacts_expired_at=when))
    return len(fresh)
