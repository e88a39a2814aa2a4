"""The run queue's cost (issue 13 item 5): creating runs through it, and starting the next run when one ends.

Creates `--runs` runs of a pipeline with `concurrency: {limit: 1}` (all but the first wait `queued`), the same number
with `ODIN_MAX_ACTIVE_RUNS` and priorities instead, and, for comparison, without any limit (no lock, no queue
query). Then ends the active run `--promotions` times and times `promote_queued` (what the engine calls after each
run ends) with that queue behind it. Figures are milliseconds of wall time per operation.

    .venv/bin/python benchmarks/bench_queue.py [--runs 1000] [--promotions 100]
                                               [--database-url postgresql+psycopg2://postgres@127.0.0.1/bench]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from odin.controller.store import queueing
from odin.controller.store.db import DbEngine, create_db_engine, migrate, transaction
from odin.controller.store.runs import NewRun, create_run
from odin.controller.store.tables import REPOSITORIES, RUNS
from odin.controller.vocabulary import RunStatus, Trigger
from odin.schema.model import Concurrency, PipelineSpec, TaskSpec


def spec(name: str, *, limit: int | None = None, priority: int = 0) -> PipelineSpec:
    task = TaskSpec(name="train", image="python:3.12-slim", command=("python3", "train.py"))
    return PipelineSpec(name=name, tasks=(task,), concurrency=Concurrency(limit) if limit else None, priority=priority)


def create_many(db: DbEngine, repo_id: int, specs: list[PipelineSpec]) -> float:
    """Milliseconds per run, each in its own transaction (as a push or an API request creates one)."""
    started = time.perf_counter()
    for s in specs:
        with transaction(db) as conn:
            create_run(conn, NewRun(pipeline=s.name, spec=s, trigger=Trigger.API, params={}, repo_id=repo_id))
    return (time.perf_counter() - started) * 1000 / len(specs)


def promotions(db: DbEngine, count: int) -> float:
    """Milliseconds per `promote_queued` after the active run ended."""
    total = 0.0
    for _ in range(count):
        with transaction(db) as conn:
            conn.execute(
                RUNS.update().where(RUNS.c.status == RunStatus.PENDING.value).values(status=RunStatus.SUCCEEDED.value)
            )
        started = time.perf_counter()
        promoted = queueing.promote_queued(db)
        total += time.perf_counter() - started
        assert len(promoted) == 1, promoted
    return total * 1000 / count


def clear(db: DbEngine) -> None:
    with transaction(db) as conn:
        conn.execute(sa.text("DELETE FROM events"))
        conn.execute(sa.text("DELETE FROM task_runs"))
        conn.execute(sa.delete(RUNS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--promotions", type=int, default=100)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="odin-bench-queue-"))
    try:
        db = create_db_engine(args.database_url or f"sqlite:///{work / 'odin.db'}")
        migrate(db)
        clear(db)
        with transaction(db) as conn:
            conn.execute(sa.delete(REPOSITORIES).where(REPOSITORIES.c.name == "bench-queue"))
            repo_id = conn.execute(
                REPOSITORIES.insert()
                .values(name="bench-queue", url="bench", branch="main", conditions=[])
                .returning(REPOSITORIES.c.id)
            ).scalar_one()
        n = args.runs
        print(f"{db.dialect.name}, {n} runs each")
        plain = create_many(db, repo_id, [spec("plain")] * n)
        print(f"create, no limit:                      {plain:.2f} ms/run")
        clear(db)
        limited = create_many(db, repo_id, [spec("serial", limit=1)] * n)
        print(f"create, concurrency limit 1 (queued):  {limited:.2f} ms/run")
        print(f"promote after a run ends, {n - 1} queued: {promotions(db, args.promotions):.2f} ms")
        clear(db)
        queueing.configure(db, max_active_runs=1)
        mixed = [spec(f"p{i % 50}", priority=i % 7) for i in range(n)]
        global_ = create_many(db, repo_id, mixed)
        print(f"create, ODIN_MAX_ACTIVE_RUNS=1:        {global_:.2f} ms/run")
        print(f"promote after a run ends, {n - 1} queued: {promotions(db, args.promotions):.2f} ms")
        clear(db)
        db.dispose()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
