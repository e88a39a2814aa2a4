"""A big run written straight into a store (a 1,000-task run takes minutes to produce through the engine on a small
machine, seconds to write): for the paging tests of the API and the console, and the console's benchmark."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from odin.controller.store.db import create_db_engine
from odin.controller.store.models import REPOSITORIES, RUNS, TASK_RUNS


def every_tenth_failed(i: int) -> str:
    return "failed" if i % 10 == 7 else "succeeded"


def seed_fan_out(
    db_url: str,
    run_id: str,
    tasks: int,
    *,
    status: Callable[[int], str] = every_tenth_failed,
    run_status: str = "failed",
) -> list[str]:
    """A finished run `run_id`: `prep`, a fan-out of `tasks` tasks `shard-00000`... depending on it, and `merge`
    depending on all of them; each shard's status is `status(i)`. Its repository is the store's first (an `odin serve`
    following one has recorded it), or a new one. Returns the task names in creation order."""
    shards = [f"shard-{i:05d}" for i in range(tasks)]
    spec_tasks = [{"name": "prep", "depends": []}]
    spec_tasks += [{"name": n, "depends": ["prep"]} for n in shards]
    spec_tasks.append({"name": "merge", "depends": shards})
    at = datetime.now(UTC)
    engine = create_db_engine(db_url)
    try:
        with engine.begin() as conn:
            repo_id = conn.execute(sa.select(REPOSITORIES.c.id).order_by(REPOSITORIES.c.id).limit(1)).scalar()
            if repo_id is None:
                repo_id = conn.execute(
                    sa.insert(REPOSITORIES)
                    .values(name="default", url="file:///big", branch="main", poll_interval=30, run_policy="latest")
                    .returning(REPOSITORIES.c.id)
                ).scalar_one()
            conn.execute(
                sa.insert(RUNS).values(
                    id=run_id, repo_id=repo_id, pipeline="big", commit_sha="0" * 40, branch="main", trigger="api",
                    params={}, spec={"name": "big", "tasks": spec_tasks}, status=run_status, created_at=at,
                    started_at=at, finished_at=at,
                )
            )  # fmt: skip
            statuses = ["succeeded"] + [status(i) for i in range(tasks)] + ["skipped"]
            names = ["prep", *shards, "merge"]
            conn.execute(
                sa.insert(TASK_RUNS),
                [
                    dict(run_id=run_id, name=n, status=s, attempt=1, user_failures=int(s == "failed"),
                         infra_failures=0, gpus=[], started_at=at, finished_at=at,
                         exit_code=1 if s == "failed" else 0 if s == "succeeded" else None,
                         message="exit code 1" if s == "failed" else None)
                    for n, s in zip(names, statuses, strict=True)
                ],
            )  # fmt: skip
    finally:
        engine.dispose()
    return names
