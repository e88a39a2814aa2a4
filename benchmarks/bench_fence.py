"""What fencing costs the engine: one `write_batch` (a task's state and its event) with and without the leadership
fence, through the engine's own kept connection (`store.db.Writer`).

The fence is one statement sent with the transaction's first (`SET LOCAL ...; SELECT ... FOR SHARE`, one round trip
on Postgres; a primary-key read on SQLite), so the difference per commit should be about one round trip to the
database at most. Prints the median and p95 of each, and the difference of the medians.

    .venv/bin/python benchmarks/bench_fence.py [--batches 2000]
                                               [--database-url postgresql+psycopg2://postgres@127.0.0.1/bench]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from odin.controller.store.db import Writer, create_db_engine, migrate, transaction
from odin.controller.store.leadership import SCHEDULER, Fence, advance_epoch
from odin.controller.store.runs import NewRun, WriteBatch, create_run, write_batch
from odin.controller.vocabulary import Trigger
from odin.schema.model import PipelineSpec, TaskSpec


def measure(url: str, batches: int) -> None:
    db = create_db_engine(url)
    migrate(db)
    spec = PipelineSpec(name="bench", tasks=(TaskSpec(name="t", image="x", command=("true",)),))
    with transaction(db) as conn:
        run_id = create_run(conn, NewRun(pipeline="bench", spec=spec, trigger=Trigger.MANUAL, params={})).run_id
    fence = Fence(SCHEDULER, advance_epoch(db, SCHEDULER, holder="bench"))
    writer = Writer(db)
    results: dict[str, list[float]] = {"unfenced": [], "fenced": []}
    for i in range(batches * 2):
        kind = "fenced" if i % 2 else "unfenced"  # interleaved: both see the same cache and load
        batch = WriteBatch()
        batch.task(run_id, "t", status="running", attempt=i)
        batch.event("task.status", run_id=run_id, task="t", status="running", attempt=i)
        started = time.perf_counter()
        write_batch(db, batch, writer=writer, fence=fence if kind == "fenced" else None)
        results[kind].append(time.perf_counter() - started)
    writer.close()
    db.dispose()
    medians = {}
    for kind, times in results.items():
        times.sort()
        medians[kind] = statistics.median(times)
        p95 = times[int(len(times) * 0.95)]
        print(f"{db.dialect.name:10s} {kind:9s} median {medians[kind] * 1e3:7.3f} ms   p95 {p95 * 1e3:7.3f} ms")
    cost = medians["fenced"] - medians["unfenced"]
    print(f"{db.dialect.name:10s} fence cost (median difference): {cost * 1e3:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--database-url", help="a Postgres database to use (its tables are created if missing)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure(f"sqlite:///{Path(tmp) / 'bench.db'}", args.batches)
    if args.database_url:
        measure(args.database_url, args.batches)


if __name__ == "__main__":
    main()
