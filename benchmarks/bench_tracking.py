"""What MLflow tracking costs the engine (issue 11, item 7), against a real `mlflow server` (SQLite backend).

1. The bus subscriber (`RunTracking.observe`): what every committed run or task change costs the engine's thread
   when tracking is on (a filter and a queue put; the MLflow calls happen on the worker thread).
2. A fan-out of N tasks starting in one engine turn: the time the engine waits in `task_env` for their nested runs,
   one by one (no prefetch) and as the engine sees it (each task's `starting` event published first, as a turn's
   commit does, so the nested runs are made in parallel on the start pool).

    .venv/bin/python benchmarks/bench_tracking.py [--tasks 32]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the same server the tests start

from odin.controller.bus import EventBus
from odin.controller.store.db import DbEngine, create_db_engine, migrate, transaction
from odin.controller.store.runs import NewRun, create_run
from odin.controller.tracking import TrackingSettings, open_run_tracking
from odin.controller.tracking.worker import RunTracking
from odin.controller.vocabulary import RunContext, TaskLaunch, TaskPaths, Trigger
from odin.schema.model import PipelineSpec, TaskSpec
from tests.support.mlflow_server import mlflow_server


def fan_out(tracking: RunTracking, db: DbEngine, n: int, *, prefetch: bool) -> tuple[float, float]:
    """(total seconds the engine waited for N starts, the slowest single wait)."""
    spec = PipelineSpec(name="fan", tasks=tuple(TaskSpec(f"t{i}", "x", ("true",)) for i in range(n)))
    with transaction(db) as conn:
        run_id = create_run(conn, NewRun("fan", spec, Trigger.MANUAL, {}, commit_sha="b" * 40)).run_id
    ctx = RunContext(run_id, "fan", "b" * 40, None, "manual", None, None)
    paths = TaskPaths("/w", "/r", "/")
    if prefetch:
        for t in spec.tasks:
            tracking.observe(
                {"kind": "task.status", "run_id": run_id, "task": t.name, "data": {"status": "starting", "attempt": 1}}
            )
    waits = []
    began = time.perf_counter()
    for t in spec.tasks:
        start = time.perf_counter()
        env = tracking.task_env(TaskLaunch(ctx, t, 1, ("true",), (), {}, paths))
        waits.append(time.perf_counter() - start)
        assert "MLFLOW_RUN_ID" in env, "MLflow did not answer: see the warnings"
    return time.perf_counter() - began, max(waits)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, mlflow_server(Path(tmp)) as server:
        db = create_db_engine(f"sqlite:///{tmp}/odin.db")
        migrate(db)
        tracking = open_run_tracking(db, EventBus(), TrackingSettings(tracking_uri=server.url, start_timeout=60))
        assert tracking is not None
        tracking.start()
        try:
            tracking.tracker  # noqa: B018 -- wait for MLflow's import, not part of what is measured

            event = {"kind": "task.status", "run_id": "r", "task": "t", "data": {"status": "running"}}
            rounds = 200_000
            began = time.perf_counter()
            for _ in range(rounds):
                tracking.observe(event)
            per_event = (time.perf_counter() - began) / rounds
            print(f"bus subscriber (observe), an event it ignores: {per_event * 1e6:.2f} us")

            fan_out(tracking, db, 2, prefetch=False)  # warm: the experiment exists, connections are open
            seq = [fan_out(tracking, db, args.tasks, prefetch=False) for _ in range(3)]
            pre = [fan_out(tracking, db, args.tasks, prefetch=True) for _ in range(3)]
            for name, runs in (("one by one", seq), ("prefetched (as the engine runs it)", pre)):
                total = statistics.median(r[0] for r in runs)
                slowest = max(r[1] for r in runs)
                print(
                    f"{args.tasks} task starts, {name}: engine waits {total * 1000:.0f} ms in all, "
                    f"{total / args.tasks * 1000:.1f} ms per task (median of 3), "
                    f"slowest single wait {slowest * 1000:.0f} ms"
                )
        finally:
            tracking.stop()
            db.dispose()


if __name__ == "__main__":
    main()
