"""Memory of one huge run (issue 15 item 3): a fan-out of N `/bin/true` tasks joined by one fan-in task, run by
`odin run` (the whole process: engine, local executor, SQLite store recording every transition), printing the
process's peak RSS and wall time at each size, and the slope between sizes (MB per 1,000 tasks).

Target: 100,000 tasks in <= 600 MB peak RSS. A pipeline holds at most 100,000 tasks after its sweeps are expanded
(`schema/limits.py`: `max_tasks`) and a file without sweeps about 28,000 (the 1 MiB file limit), so the pipeline here
is a sweep: `prep`, then `ceil(N / 256)` tasks `shard-K` with a 256-value `matrix` each, then `merge` depending on all
of them. Sizes above 100,000 are refused by validation.

`--tracemalloc` runs the largest size once more in-process under tracemalloc (slower), sampling the traced memory
every few seconds and printing the biggest allocation sites of the fullest sample: what holds per-task memory.

    .venv/bin/python benchmarks/bench_big_run.py [--sizes 10000,30000] [--parallelism 2] [--tracemalloc]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = 256  # the most members one task's matrix may have (schema/limits.py: max_matrix)
TARGET_MB = 600
TARGET_TASKS = 100_000


def write_pipeline(directory: Path, n: int) -> int:
    """`prep` -> n members of sweeps `shard-K` -> `merge`; returns the task count (n + 2)."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["name: big", "tasks:", "  - {name: prep, image: busybox, command: /bin/true}"]
    sweeps, left = [], n
    while left > 0:
        size = min(SWEEP, left)
        name = f"shard-{len(sweeps)}"
        # A full sweep is two axes of 16 (256 members from 32 values: a file of 100,000 written-out values would
        # pass the YAML node limit before the task limit); the last, partial one is one axis.
        if size == SWEEP:
            axes = "{i: [" + ", ".join(map(str, range(16))) + "], j: [" + ", ".join(map(str, range(16))) + "]}"
        else:
            axes = "{i: [" + ", ".join(str(i) for i in range(size)) + "]}"
        lines.append(f"  - {{name: {name}, image: busybox, command: /bin/true, depends: prep, matrix: {axes}}}")
        sweeps.append(name)
        left -= size
    lines += ["  - name: merge", "    image: busybox", "    command: /bin/true", "    depends:"]
    lines += [f"      - {s}" for s in sweeps]
    (directory / "main.yml").write_text("\n".join(lines) + "\n")
    return n + 2


def odin_bin() -> str:
    return str(Path(sys.executable).with_name("odin"))


def measure(n: int, parallelism: int, tmp: Path) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of `odin run` on an n-task fan-out + fan-in, as a fresh process."""
    pipeline = tmp / f"big-{n}"
    write_pipeline(pipeline, n)
    data = tmp / f"data-{n}"
    start = time.perf_counter()
    proc = subprocess.Popen(
        [odin_bin(), "run", str(pipeline), "--parallelism", str(parallelism), "--data-dir", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"odin run of {n} tasks failed ({proc.returncode}): {err[-2000:]}")
    return usage.ru_maxrss * 1024 / 1e6, elapsed  # ru_maxrss is in KiB on Linux


TRACE = """
import sys, tempfile, threading, time, tracemalloc
from odin.controller.embedded import run_pipeline
tracemalloc.start(1)
best = [0, None]
done = threading.Event()
def sample():
    while not done.wait(10):
        current, _ = tracemalloc.get_traced_memory()
        if current > best[0]:
            best[0], best[1] = current, tracemalloc.take_snapshot()
threading.Thread(target=sample, daemon=True).start()
with tempfile.TemporaryDirectory() as d:
    r = run_pipeline(sys.argv[1], parallelism=int(sys.argv[2]), data_dir=d)
done.set()
_, peak = tracemalloc.get_traced_memory()
print(f"traced: fullest sample {best[0] / 1e6:.1f} MB, peak {peak / 1e6:.1f} MB; run {r.status}")
if best[1] is not None:
    for stat in best[1].statistics("lineno")[:25]:
        print(f"  {stat.size / 1e6:8.1f} MB {stat.count:9d} blocks  {stat.traceback[0]}")
"""


def trace(n: int, parallelism: int, tmp: Path) -> None:
    pipeline = tmp / f"trace-{n}"
    write_pipeline(pipeline, n)
    subprocess.run([sys.executable, "-c", TRACE, str(pipeline), str(parallelism)], check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,30000", help="fan-out widths, comma-separated (at most 99,998)")
    ap.add_argument("--parallelism", type=int, default=2)
    ap.add_argument("--tracemalloc", action="store_true", help="also trace the largest size's allocations")
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    figures: list[tuple[int, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="odin-big-") as tmp:
        for n in sizes:
            rss, seconds = measure(n, args.parallelism, Path(tmp))
            figures.append((n, rss, seconds))
            print(
                f"{n:>7,} tasks + 2: peak RSS {rss:7.1f} MB, wall {seconds:7.1f} s ({seconds / n * 1000:.2f} ms/task)"
            )
            sys.stdout.flush()
        if len(figures) >= 2:
            (n0, r0, s0), (n1, r1, s1) = figures[0], figures[-1]
            slope = (r1 - r0) / (n1 - n0) * 1000
            at_target = r1 + (TARGET_TASKS - n1) * slope / 1000
            verdict = "ok" if at_target <= TARGET_MB else "OVER"
            print(f"slope: {slope:.2f} MB per 1,000 tasks; {(s1 - s0) / (n1 - n0) * 1000:.2f} ms per task")
            print(f"extrapolated to {TARGET_TASKS:,} tasks: {at_target:.0f} MB (target {TARGET_MB} MB: {verdict})")
        if args.tracemalloc:
            trace(sizes[-1], args.parallelism, Path(tmp))
    print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
