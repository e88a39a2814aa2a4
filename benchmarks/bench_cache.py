"""What task caching costs the engine per cached task (issue 11 item 6): computing the key, and the lookup.

Measured where the engine pays it, on its own thread before a cached task would start:
1. the key: resolving the task's references by digest, substituting command/args/env with per-run values masked,
   canonical JSON and sha256 (`engine.cache.cache_key`), for a task with 3 references (one to a 16-member sweep);
2. the lookup: one indexed query for succeeded task runs with that key (`store.cache_queries.cached_tasks`) in a
   store already holding `--history` cached task runs, plus the check that a hit's artifacts are still on disk
   (`local_outputs_present`), for a hit and for a miss.

    .venv/bin/python benchmarks/bench_cache.py [--iterations 2000] [--history 10000]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

With `--postgres ADMIN_URL` the store is a scratch database created on that server and dropped afterwards (never the
admin database itself); the default is a new SQLite file.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from odin.controller.engine.adoption import active_run, run_context
from odin.controller.engine.cache import cache_key, choose, local_outputs_present
from odin.controller.executors.local import LocalExecutor
from odin.controller.store.cache_queries import cached_tasks
from odin.controller.store.db import DbEngine, create_db_engine, migrate, transaction
from odin.controller.store.runs import LoadedRun, NewRun, create_run
from odin.controller.vocabulary import CACHED, Trigger
from odin.schema import load_pipeline

PIPELINE = """
params: {lr: "0.1"}
tasks:
  - name: sweep
    image: busybox
    command: ["true"]
    matrix: {i: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]}
    outputs: {results: [score]}
  - name: prep
    image: busybox
    command: ["true"]
    outputs: {artifacts: [data], results: [n]}
  - name: train
    image: pytorch/pytorch:2.3
    cache: true
    command: [python, train.py, --lr, "${params.lr}", --out, "${OUTPUT_PATH}/model"]
    args: [--data, "${tasks.prep.artifacts.data}", --n, "${tasks.prep.results.n}",
           --scores, "${tasks.sweep.results.score}"]
    env: {SEED: "1", RUN: "${RUN_PATH}"}
    outputs: {artifacts: [model], results: [accuracy]}
    depends: [prep, sweep]
"""


def timed(samples: list[float], fn: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    value = fn()
    samples.append((time.perf_counter() - t0) * 1000)
    return value


def line(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[int(len(ordered) * 0.95)]
    return f"{name:<46} median {statistics.median(samples):.3f} ms   p95 {p95:.3f} ms"


HISTORY = """
tasks:
  - {name: train, image: busybox, command: ["true"], cache: true, outputs: {artifacts: [model], results: [accuracy]}}
"""


@contextmanager
def database(tmp: str, postgres: str | None) -> Iterator[DbEngine]:
    """A migrated store: SQLite in `tmp`, or a scratch database on the `postgres` server, dropped afterwards."""
    if postgres is None:
        db = create_db_engine(f"sqlite:///{tmp}/odin.db")
        migrate(db)
        yield db
        db.dispose()
        return
    import sqlalchemy as sa  # only to create and drop the scratch database

    name = f"odin_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        db = create_db_engine(sa.make_url(postgres).set(database=name).render_as_string(hide_password=False))
        migrate(db)
        yield db
        db.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--history", type=int, default=10_000, help="cached task runs already in the store")
    parser.add_argument("--postgres", metavar="ADMIN_URL", help="a Postgres server to create a scratch database on")
    args = parser.parse_args()
    result = load_pipeline(PIPELINE.encode(), file="main.yml", default_name="bench")
    assert result.spec is not None, result.problems
    spec = result.spec

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.pt"
        model.write_bytes(b"m" * 4096)
        artifact = {"path": "model", "location": str(model), "type": "file", "size": 4096, "digest": "sha256:x"}
        with database(tmp, args.postgres) as db:
            measure(args, spec, db, tmp, artifact)


def measure(args: argparse.Namespace, spec: Any, db: DbEngine, tmp: str, artifact: dict[str, Any]) -> None:
    """Fill the store with `--history` cached task runs, then time the key and the lookup."""
    history = load_pipeline(HISTORY.encode(), file="main.yml", default_name="bench").spec
    assert history is not None
    t0 = time.perf_counter()
    with transaction(db) as conn:
        for i in range(args.history):
            key = hashlib.sha256(str(i).encode()).hexdigest()
            done = {"status": "succeeded", "attempt": 1, "exit_code": 0, "reason": CACHED, "cache_key": key,
                    "results": {"accuracy": 0.9}, "artifacts": {"model": artifact}}  # fmt: skip
            new = NewRun(pipeline="bench", spec=history, trigger=Trigger.MANUAL, params={},
                         commit_sha=f"{i:040x}", initial_tasks={"train": done})  # fmt: skip
            create_run(conn, new)
    print(f"store: {args.history} runs with cached tasks recorded in {time.perf_counter() - t0:.1f} s")

    sweep_done = [{"name": m.name, "status": "succeeded", "attempt": 1, "results": {"score": 0.5}}
                  for m in spec.producers("sweep")]  # fmt: skip
    prep_done = {"name": "prep", "status": "succeeded", "attempt": 1, "results": {"n": 10},
                 "artifacts": {"data": {**artifact, "digest": "sha256:" + "a" * 64}}}  # fmt: skip
    row = {"id": "bench-1", "pipeline": "bench", "commit_sha": "c" * 40, "trigger": "manual",
           "work_tree": "1" * 40, "work_path": tmp, "spec": spec.to_dict(), "cancel_requested": False,
           "params": {"lr": "0.1"}, "parallelism": None, "status": "running", "run_path_id": None,
           "repo_url": None}  # fmt: skip
    loaded = LoadedRun(row, [*sweep_done, prep_done, {"name": "train", "status": "pending", "attempt": 0}])
    run = active_run(loaded, run_context(loaded), LocalExecutor(Path(tmp) / "data"), default_parallelism=8)
    train = run.tasks["train"]

    key_ms: list[float] = []
    hit_ms: list[float] = []
    miss_ms: list[float] = []
    stored = hashlib.sha256(b"7").hexdigest()
    for i in range(args.iterations):
        timed(key_ms, lambda: cache_key(run, train))
        hit = timed(hit_ms, lambda: choose(cached_tasks(db, stored), local_outputs_present))
        assert hit is not None
        missing = hashlib.sha256(f"miss-{i}".encode()).hexdigest()
        assert timed(miss_ms, lambda: choose(cached_tasks(db, missing), local_outputs_present)) is None  # noqa: B023

    print(f"{args.iterations} cached task starts, each: 3 references (one to a 16-member sweep), 1 artifact checked")
    print(line("key (resolve by digest, substitute, sha256)", key_ms))
    print(line("lookup, hit (indexed query + artifact lstat)", hit_ms))
    print(line("lookup, miss (indexed query)", miss_ms))
    total = [a + b for a, b in zip(key_ms, hit_ms, strict=True)]
    print(line("per cached task (key + lookup, hit)", total))


if __name__ == "__main__":
    main()
