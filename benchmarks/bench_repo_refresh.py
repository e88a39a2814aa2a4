"""What following one registration's change costs the controller, against re-reading them all (issue 13, Speed).

`POST`, `PATCH` and `DELETE /v1/repos` follow their change at once on the replica that served them. They used to
call `Controller.refresh_repositories`, which reads every registration and compares each with what is followed: a
cost that grows with the number registered, paid by every request. They now call `refresh_repository(name)`, which
reads that one row and touches that one repository; the full refresh stays for what other replicas changed.

Every replica looks every `REPOS_REFRESH` (5) seconds for what other replicas changed. That look used to be the full
refresh; it is now `Controller.refresh_if_changed`, which reads the registrations' version (one row of
`store_versions`, moved by every write that changes a registration) and reads every registration only when it
moved, or once every `REPOS_FULL_REFRESH` (60) seconds as a safety net. The third line times that look with nothing
changed, and the last the cost per minute of each way of looking (12 looks a minute: 12 full refreshes before, 11
version reads and one full refresh now). `--loop SECONDS` instead runs the server's own loop (`_refresh_loop`, the
`odin-repos` thread of `odin serve`) for that long with nothing changing, and prints the CPU time of that thread:
what a replica spends looking, measured the way docs/repositories.md measured the server's threads.

This times both in process, on a `Controller` (not started: no poller runs, so the figure is the refresh's own
work) with `--repos` registrations in SQLite or `--database-url`: the median and minimum of `--repeat` calls of each,
with nothing changed (the case of every other repository when one is registered, and of almost every periodic
look). It prints the load average before and after: on a shared machine the figures move with it.

    .venv/bin/python benchmarks/bench_repo_refresh.py [--repos 500] [--repeat 50] [--loop 60]
        [--database-url postgresql+psycopg2://postgres@127.0.0.1/bench]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pygit2

from odin.controller.service import REPOS_REFRESH, Controller
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


def loop_cpu(controller: Controller, seconds: float) -> tuple[float, int]:
    """CPU seconds the periodic refresh's thread spends in `seconds` of wall time, started as `odin serve` does
    (without the leader's side: no poller runs), and how many of its looks read every registration."""
    full_reads = 0
    refresh = controller.refresh_repositories

    def counted() -> None:
        nonlocal full_reads
        full_reads += 1
        refresh()

    controller.refresh_repositories = counted  # type: ignore[method-assign]
    thread = threading.Thread(target=controller._refresh_loop, name="odin-repos", daemon=True)
    controller._refresher = thread  # stop() joins it
    thread.start()
    assert thread.ident is not None
    clock = time.pthread_getcpuclockid(thread.ident)
    time.sleep(seconds)
    return time.clock_gettime(clock), full_reads


def _look_unchanged(controller: Controller) -> None:
    if controller.refresh_if_changed():
        raise SystemExit("refresh_if_changed read every registration although nothing changed")


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " Prints the load average before and after.",
        epilog="Times Controller.refresh_repositories (every registration), refresh_if_changed (the periodic look) and "
        "refresh_repository (one), in process.",
    )
    parser.add_argument("--repos", type=int, default=500, help="repositories registered")
    parser.add_argument("--repeat", type=int, default=50, help="calls of each refresh timed")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary directory")
    parser.add_argument("--loop", type=float, default=0.0, help="seconds of the periodic loop's thread CPU, instead")
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
        if args.loop:
            cpu, full_reads = loop_cpu(controller, args.loop)
            print(f"{args.repos} registrations, the odin-repos loop (every {REPOS_REFRESH:g} s) for {args.loop:g} s:")
            print(f"   {'CPU time of its thread':<48}: {cpu:7.3f} s ({cpu * 60 / args.loop:.3f} s a minute)")
            print(f"   {'looks that read every registration':<48}: {full_reads}")
            return
        middle = f"r{args.repos // 2:04d}"
        full = timed(controller.refresh_repositories, args.repeat)
        one = timed(lambda: controller.refresh_repository(middle), args.repeat)
        look = timed(lambda: _look_unchanged(controller), args.repeat)
        print(f"{args.repos} registrations, {args.repeat} calls each (median / min):")
        print(f"   {'refresh_repositories (every registration)':<48}: {full[0]:7.2f} / {full[1]:7.2f} ms")
        print(f"   {'refresh_repository (one, what /v1/repos calls)':<48}: {one[0]:7.2f} / {one[1]:7.2f} ms")
        print(f"   {'refresh_if_changed (periodic look, unchanged)':<48}: {look[0]:7.2f} / {look[1]:7.2f} ms")
        looks = round(60 / REPOS_REFRESH)
        print(f"per minute of periodic looks ({looks}, median figures), nothing changed:")
        print(f"   {'before: a full refresh at every look':<48}: {looks * full[0]:7.1f} ms")
        after = (looks - 1) * look[0] + full[0]  # one full read a REPOS_FULL_REFRESH (60 s)
        print(f"   {'now: version reads, one full refresh a minute':<48}: {after:7.1f} ms")
    finally:
        controller.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average {load()} after")


if __name__ == "__main__":
    main()
