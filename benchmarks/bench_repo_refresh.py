"""What following one registration's change costs the controller, against re-reading them all (issue 13, Speed).

`POST`, `PATCH` and `DELETE /v1/repos` follow their change at once on the replica that served them. They used to
call `Controller.refresh_repositories`, which reads every registration and compares each with what is followed: a
cost that grows with the number registered, paid by every request. They now call `refresh_repository(name)`, which
reads that one row and touches that one repository; the full refresh stays, every `REPOS_REFRESH` seconds, for what
other replicas changed.

This times both in process, on a `Controller` (not started: no poller runs, so the figure is the refresh's own
work) with `--repos` registrations in SQLite or `--database-url`: the median and minimum of `--repeat` calls of each,
with nothing changed (the case of every other repository when one is registered). It prints the load average before
and after: on a shared machine the figures move with it.

    .venv/bin/python benchmarks/bench_repo_refresh.py [--repos 500] [--repeat 50]
        [--database-url postgresql+psycopg2://postgres@127.0.0.1/bench]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pygit2

from odin.controller.service import Controller
from odin.controller.settings import Settings
from odin.controller.store.repo_records import insert_record


def timed(call: Callable[[], None], repeat: int) -> tuple[float, float]:
    """(median, minimum) of `repeat` calls, in milliseconds."""
    took: list[float] = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        took.append((time.perf_counter() - started) * 1000)
    return statistics.median(took), min(took)


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " Prints the load average before and after.",
        epilog="Times Controller.refresh_repositories (every registration) and refresh_repository (one), in process.",
    )
    parser.add_argument("--repos", type=int, default=500, help="repositories registered")
    parser.add_argument("--repeat", type=int, default=50, help="calls of each refresh timed")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary directory")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="odin-bench-refresh-"))
    remote = tmp / "remote.git"
    pygit2.init_repository(str(remote), bare=True, initial_head="main")  # never fetched: no poller runs
    url = args.database_url or f"sqlite:///{tmp / 'odin.db'}"
    print(f"machine: {os.cpu_count()} CPUs, load average {load()} before; store {url.split(':')[0]}")
    controller = Controller(Settings(data_dir=tmp / "data", database_url=url))
    try:
        values = {"url": str(remote), "branch": "main", "branches": ["main", "release/*"], "poll_interval": 3600.0}
        for n in range(args.repos):
            insert_record(controller.db, f"r{n:04d}", values, by="bench")
        controller.refresh_repositories()  # follows them all once; the timed calls below change nothing
        middle = f"r{args.repos // 2:04d}"
        full = timed(controller.refresh_repositories, args.repeat)
        one = timed(lambda: controller.refresh_repository(middle), args.repeat)
        print(f"{args.repos} registrations, {args.repeat} calls each (median / min):")
        print(f"   {'refresh_repositories (every registration)':<48}: {full[0]:7.2f} / {full[1]:7.2f} ms")
        print(f"   {'refresh_repository (one, what /v1/repos calls)':<48}: {one[0]:7.2f} / {one[1]:7.2f} ms")
    finally:
        controller.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average {load()} after")


if __name__ == "__main__":
    main()
