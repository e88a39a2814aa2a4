"""Schedules firing together: N pipelines whose `schedule:` names the same slot, started by one scheduler tick.

Target (issue 13): 1,000 schedules fire within 1 s of their slot. The scheduler's thread sleeps until the nearest
slot, so a slot's lateness is what one tick takes at that instant: validating nothing and writing no files (the
schedules were read, and the pipelines' files written, when the tip was first seen: the first tick), claiming every
slot and creating every run in one transaction, and handing the runs to the engine (here a list). A tick's slots are
claimed in one multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING, their runs, tasks and `run.created` events
inserted as three executemany statements (`store.runs.create_runs`) and attached in one executemany, all in the one
transaction, under one fencing check. The clock is injected, so the benchmark does not wait for 03:00; the figures
are wall-clock times of the tick at the slot, with the CPU time this process spent in it (on a shared machine the wall
time is partly waiting for a CPU, and on Postgres for the server: the load average is printed). Postgres: give an
empty database (the benchmark's runs stay in it).

    .venv/bin/python benchmarks/bench_schedules.py [--pipelines 1000]
                                                   [--database-url postgresql+psycopg2://postgres@127.0.0.1/bench]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pygit2
import sqlalchemy as sa
from pygit2.enums import FileMode

from odin.controller.git import Mirror
from odin.controller.launcher import RunLauncher
from odin.controller.scheduler import Scheduler
from odin.controller.store.db import create_db_engine, migrate, transaction
from odin.controller.store.tables import REPOSITORIES, RUNS

MAIN = """\
name: {name}
schedule: {{cron: "0 3 * * *", timezone: Europe/Berlin}}
tasks:
  - {{name: train, image: python:3.12-slim, command: [python3, train.py]}}
  - {{name: evaluate, image: python:3.12-slim, command: [python3, evaluate.py], depends: train}}
"""


def build_remote(path: Path, pipelines: int) -> None:
    repo = pygit2.init_repository(str(path), bare=True, initial_head="main")
    root = repo.TreeBuilder()
    for i in range(pipelines):
        name = f"p{i:04d}"
        tb = repo.TreeBuilder()
        tb.insert("main.yml", repo.create_blob(MAIN.format(name=name).encode()), FileMode.BLOB)
        tb.insert("train.py", repo.create_blob(f"print('{name}')\n".encode()), FileMode.BLOB)
        root.insert(name, tb.write(), FileMode.TREE)
    sig = pygit2.Signature("bench", "bench@example.com")
    repo.create_commit("refs/heads/main", sig, sig, "pipelines", root.write(), [])


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipelines", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="odin-bench-schedules-"))
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    try:
        build_remote(work / "remote.git", args.pipelines)
        db = create_db_engine(args.database_url or f"sqlite:///{work / 'odin.db'}")
        migrate(db)
        with transaction(db) as conn:
            conn.execute(sa.delete(REPOSITORIES).where(REPOSITORIES.c.name == "bench-schedules"))
            repo_id = conn.execute(
                REPOSITORIES.insert()
                .values(name="bench-schedules", url="bench", branch="main", conditions=[])
                .returning(REPOSITORIES.c.id)
            ).scalar_one()
        mirror = Mirror(str(work / "remote.git"), work / "cache", branch="main")
        mirror.fetch()
        submitted: list[str] = []
        launcher = RunLauncher(db, repo_id, mirror, branch="main", trees_dir=work / "trees", submit=submitted.append)
        clock = Clock(datetime(2026, 1, 5, 1, 59, tzinfo=UTC))  # 02:59 in Berlin
        scheduler = Scheduler(db, repo_id, mirror, launcher, branch="main", clock=clock)

        started = time.perf_counter()
        scheduler.tick()
        print(f"first tick (reads and validates {args.pipelines} pipelines' schedules, writes their files): "
              f"{time.perf_counter() - started:.3f} s")  # fmt: skip
        for day, label in ((0, "first slot"), (1, "next day's slot")):
            clock.now = datetime(2026, 1, 5 + day, 2, 0, tzinfo=UTC) + timedelta(milliseconds=1)  # 03:00 in Berlin
            before = len(submitted)
            started, cpu = time.perf_counter(), time.process_time()
            due = scheduler.tick()
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            fired = len(submitted) - before
            assert fired == len(due.created) == args.pipelines, (fired, len(due.created))
            print(f"{label}: {fired} runs started {elapsed:.3f} s after the slot ({cpu:.3f} s of CPU in this process)")
        clock.now += timedelta(seconds=1)
        started = time.perf_counter()
        scheduler.tick()
        print(f"a tick with nothing due: {(time.perf_counter() - started) * 1000:.2f} ms")
        with db.connect() as conn:
            runs = conn.execute(sa.select(sa.func.count()).select_from(RUNS).where(RUNS.c.repo_id == repo_id))
            print(f"runs recorded: {runs.scalar_one()}")
        db.dispose()
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
