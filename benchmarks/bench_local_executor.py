"""Engine overhead of the local executor, and its memory on a very wide run.

1. A fan-out of N tasks running `/bin/true`, parallelism 2, through `odin.controller.embedded.run_pipeline` (the
   same engine `odin serve` uses, recording every transition to SQLite), against the same N processes started from
   a plain 2-thread pool, measured in the same run. The difference divided by N is what Odin adds per task (target:
   <= 3 ms); the ratio of the two wall times is issue 15's target (<= 1.5x). The machine's load average is printed
   before and after: on a shared machine the figures only compare within one run. CPU seconds are printed too, split
   into this process (the engine, or the pool's threads) and its children (the tasks, with the engine's `sh` wrapper):
   on a loaded machine they are steadier than wall time and say where the time goes. The same processes are also run
   from the pool under the executor's `sh` wrapper, which splits Odin's cost into the wrapper's and the engine's.
2. Peak RSS of a process running a 10,000-task fan-out joined by one fan-in task (target: <= 150 MB), measured in a
   fresh subprocess; its duration also shows that a wide fan-in is driven in linear time.

Usage: python benchmarks/bench_local_executor.py [--tasks 1000] [--wide 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path


def write_pipeline(directory: Path, n: int, *, join: bool = False) -> Path:
    """N independent `/bin/true` tasks; with `join`, one more task depending on all of them (a fan-in)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["name: fanout", "tasks:"]
    lines += [f"  - {{name: t{i}, image: busybox, command: /bin/true}}" for i in range(n)]
    if join:
        lines += ["  - name: join", "    image: busybox", "    command: /bin/true", "    depends:"]
        lines += [f"      - t{i}" for i in range(n)]
    (directory / "main.yml").write_text("\n".join(lines) + "\n")
    return directory


def cpu_seconds() -> tuple[float, float]:
    """(CPU seconds of this process, of its reaped children): user + system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def measured(action: Callable[[], object]) -> tuple[float, float]:
    """Run `action`; return the CPU seconds it cost (this process, its children)."""
    own, children = cpu_seconds()
    action()
    own_after, children_after = cpu_seconds()
    return own_after - own, children_after - children


def plain_pool(n: int, workers: int) -> float:
    def one(_: int) -> int:
        return subprocess.run(["/bin/true"], check=False).returncode

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - start


def wrapped_pool(n: int, workers: int) -> float:
    """The same processes from the same pool, each under the local executor's `sh` wrapper (its own session, its
    pid and exit files): the pool-to-wrapped difference is the wrapper's, the wrapped-to-odin difference the engine's.
    """
    from odin.controller.executors.local import _WRAPPER

    with tempfile.TemporaryDirectory(prefix="odin-bench-wrapped-") as state:

        def one(i: int) -> int:
            argv = ["/bin/sh", "-c", _WRAPPER, f"{state}/t{i}.1", "/bin/true"]
            return subprocess.run(argv, check=False, start_new_session=True).returncode

        start = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, range(n)))
        return time.perf_counter() - start


def odin_run(pipeline: Path, parallelism: int) -> tuple[float, float]:
    """(wall time of the whole `run_pipeline` call, time from the run's start to its end as recorded in the store).

    The difference is one-time set-up: a new SQLite store created and migrated, the pipeline file validated.
    """
    import sqlalchemy as sa

    from odin.controller.embedded import run_pipeline

    with tempfile.TemporaryDirectory(prefix="odin-bench-") as data:
        start = time.perf_counter()
        result = run_pipeline(pipeline, parallelism=parallelism, data_dir=data)
        elapsed = time.perf_counter() - start
        db = sa.create_engine(f"sqlite:///{data}/odin.db")
        with db.connect() as conn:
            row = conn.execute(sa.text("SELECT started_at, finished_at FROM runs")).one()
        db.dispose()
    assert result.ok, result.status
    started, finished = (datetime.fromisoformat(str(v)) for v in row)
    return elapsed, (finished - started).total_seconds()


def _append_run(pipeline: Path, parallelism: int, walls: list[float], steadies: list[float]) -> None:
    wall, steady = odin_run(pipeline, parallelism)
    walls.append(wall)
    steadies.append(steady)


def peak_rss_child(pipeline: Path, parallelism: int) -> tuple[float, float]:
    """Run the pipeline in a fresh interpreter; return (peak RSS MiB of that process, seconds)."""
    code = (
        "import resource, sys, tempfile, time\n"
        "from odin.controller.embedded import run_pipeline\n"
        "t = time.perf_counter()\n"
        "with tempfile.TemporaryDirectory() as d:\n"
        f"    r = run_pipeline({str(pipeline)!r}, parallelism={parallelism}, data_dir=d)\n"
        "assert r.ok, r.status\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.perf_counter() - t)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--wide", type=int, default=10_000)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="odin-bench-pipes-") as tmp:
        pipeline = write_pipeline(Path(tmp) / "fanout", args.tasks)
        odin_run(pipeline, args.parallelism)  # warm-up: imports, page cache
        wrapped_times: list[float] = []
        pool_times: list[float] = []
        odin_times: list[float] = []
        steady_times: list[float] = []
        pool_cpu: list[tuple[float, float]] = []
        odin_cpu: list[tuple[float, float]] = []
        for _ in range(args.repeat):
            pool_cpu.append(measured(lambda: pool_times.append(plain_pool(args.tasks, args.parallelism))))
            wrapped_times.append(wrapped_pool(args.tasks, args.parallelism))
            odin_cpu.append(measured(lambda: _append_run(pipeline, args.parallelism, odin_times, steady_times)))
        pool, odin = statistics.median(pool_times), statistics.median(odin_times)
        wrapped = statistics.median(wrapped_times)
        steady = statistics.median(steady_times)
        pool_own, pool_children = (statistics.median(c[i] for c in pool_cpu) for i in (0, 1))
        odin_own, odin_children = (statistics.median(c[i] for c in odin_cpu) for i in (0, 1))
        overhead_ms = (odin - pool) / args.tasks * 1000
        steady_ms = (steady - pool) / args.tasks * 1000
        wide = write_pipeline(Path(tmp) / "wide", args.wide, join=True)
        rss_mib, wide_seconds = peak_rss_child(wide, args.parallelism)
    load_after = os.getloadavg()

    figures = {
        "tasks": args.tasks,
        "parallelism": args.parallelism,
        "plain_pool_seconds": round(pool, 3),
        "wrapped_pool_seconds": round(wrapped, 3),
        "odin_seconds": round(odin, 3),
        "odin_overhead_ms_per_task": round(overhead_ms, 3),
        "odin_to_pool_ratio": round(odin / pool, 2),
        "odin_steady_seconds": round(steady, 3),
        "plain_pool_cpu_seconds": {"self": round(pool_own, 3), "children": round(pool_children, 3)},
        "odin_cpu_seconds": {"self": round(odin_own, 3), "children": round(odin_children, 3)},
        "odin_steady_overhead_ms_per_task": round(steady_ms, 3),
        "wide_tasks": args.wide,
        "wide_seconds": round(wide_seconds, 2),
        "wide_peak_rss_mib": round(rss_mib, 1),
        "self_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in load_after],
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{args.tasks}-task fan-out of /bin/true, parallelism {args.parallelism} (median of {args.repeat}):")
    print(f"  plain thread pool : {pool:7.3f} s  ({pool / args.tasks * 1000:.3f} ms/task)")
    print(
        f"  pool, sh wrapper  : {wrapped:7.3f} s  ({wrapped / args.tasks * 1000:.3f} ms/task;"
        f" {wrapped / pool:.2f}x the pool: the wrapper's share)"
    )
    print(f"  odin run          : {odin:7.3f} s  ({odin / args.tasks * 1000:.3f} ms/task)")
    print(f"  engine overhead   : {overhead_ms:7.3f} ms/task   (target <= 3 ms; whole call, set-up included)")
    print(f"  odin / pool       : {odin / pool:7.2f} x        (target <= 1.5x, issue 15)")
    print(f"  run start -> end  : {steady:7.3f} s  -> {steady_ms:.3f} ms/task over the pool (steady state)")
    per_task = 1000 / args.tasks
    print(
        f"  CPU ms/task       : pool {pool_own * per_task:.3f} + tasks {pool_children * per_task:.3f};"
        f" odin {odin_own * per_task:.3f} + tasks (sh wrapper included) {odin_children * per_task:.3f}"
    )
    print(
        f"{args.wide}-task fan-out + fan-in: {wide_seconds:.1f} s, peak RSS {rss_mib:.1f} MiB"
        f" = {rss_mib * 1.048576:.1f} MB   (target <= 150 MB)"
    )
    print("load average (1, 5, 15 min): before " + _load(load_before) + ", after " + _load(load_after))


def _load(averages: tuple[float, float, float]) -> str:
    return " ".join(f"{v:.2f}" for v in averages)


if __name__ == "__main__":
    main()
