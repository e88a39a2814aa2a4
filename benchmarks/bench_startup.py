"""Start-up time of the command lines, measured as whole processes (issue 15, item 2).

Each command is started as a user starts it (the installed `odin` / `odinctl` scripts beside this interpreter), once
to write the bytecode caches (the numbers assume them: a first run after an install compiles every module and is
several times slower), then `--repeat` times; the median and p90 wall times are printed against the target, with the
median CPU time (user + system, the process and its children: on a shared, loaded machine the wall time mostly
measures the neighbours, the CPU time much less so) and the number of modules the process imported (`-X importtime`,
one extra run). The load average is printed before and after, so a figure taken on a busy machine says so.

- `odinctl --help`                                target 150 ms
- `odin --help`                                   (no target of its own; the same rule as odinctl)
- `odinctl runs` against a running server         (a list command: typer, the HTTP client, the table)
- `odin run main.yml`, a one-task `echo` pipeline  target 300 ms (local executor, SQLite in a fresh data directory)
- `odin serve` until `/readyz` answers 200        target 1.5 s (SQLite, local executor, a fresh data directory)

Usage: python benchmarks/bench_startup.py [--repeat 10] [--only odinctl-help,odin-run,...] [--top 0]
`--top N` also prints the N slowest imports (cumulative) of each command, from `-X importtime`.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent
PASSWORD = "bench-startup-password-1"


@dataclass(frozen=True)
class Case:
    name: str
    target: float | None  # seconds
    run: Callable[[], tuple[float, float]]  # one whole-process run: (wall time, CPU time)
    argv: Sequence[str]  # for the import count (a process that exits by itself)
    env: dict[str, str]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update({"NO_COLOR": "1", "COLUMNS": "120"}, **extra)
    return env


def children_cpu() -> float:
    """User + system seconds of every child process waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def timed(argv: Sequence[str], env: dict[str, str], stdin: str | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of `argv` to its exit."""
    cpu = children_cpu()
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, input=stdin, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return elapsed, children_cpu() - cpu


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def serve_until_ready(work: Path, python_flags: Sequence[str] = ()) -> tuple[float, float, str]:
    """(wall time from `Popen` of `odin serve` (a fresh data directory) to its first 200 from /readyz, its CPU time
    to that moment (from /proc: the process is still running), its stderr once stopped by SIGTERM)."""
    data = Path(tempfile.mkdtemp(prefix="serve-", dir=work))
    port = free_port()
    env = clean_env(ODIN_DATA_DIR=str(data), ODIN_PORT=str(port), ODIN_LOG_LEVEL="WARNING")
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, *python_flags, str(BIN / "odin"), "serve"] if python_flags else [str(BIN / "odin"), "serve"]
    errors = (work / f"serve-{port}.err").open("w+")
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=errors)
    try:
        deadline = start + 60
        while not ready(url):
            if proc.poll() is not None:
                errors.seek(0)
                raise SystemExit(f"odin serve exited {proc.returncode}: {errors.read()}")
            if time.perf_counter() > deadline:
                raise SystemExit("odin serve not ready after 60 s")
            time.sleep(0.005)  # polling granularity, not a guess at readiness
        elapsed = time.perf_counter() - start
        cpu = process_cpu(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    errors.seek(0)
    return elapsed, cpu, errors.read()


def process_cpu(pid: int) -> float:
    """User + system seconds of a running process (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class ListServer:
    """One `odin serve` (admin with a known password) and a logged-in odinctl configuration, for `odinctl runs`."""

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = clean_env(
            ODIN_DATA_DIR=str(work / "list-server"),
            ODIN_PORT=str(self.port),
            ODIN_LOG_LEVEL="WARNING",
            ODIN_ADMIN_PASSWORD=PASSWORD,
        )
        self.proc = subprocess.Popen([str(BIN / "odin"), "serve"], env=env, stdout=subprocess.DEVNULL)
        deadline = time.perf_counter() + 60
        while not ready(self.url):
            if self.proc.poll() is not None or time.perf_counter() > deadline:
                raise SystemExit("the server for `odinctl runs` did not start")
            time.sleep(0.05)
        self.env = clean_env(ODIN_CONFIG_DIR=str(work / "odinctl-config"), ODIN_SERVER=self.url)
        timed([str(BIN / "odinctl"), "login", "--password-stdin"], self.env, stdin=PASSWORD + "\n")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def one_task_pipeline(work: Path) -> Path:
    directory = work / "hello"
    directory.mkdir()
    (directory / "main.yml").write_text(
        "name: hello\ntasks:\n  - name: say\n    image: busybox\n    command: echo hello\n"
    )
    return directory / "main.yml"


def module_count(argv: Sequence[str], env: dict[str, str]) -> tuple[int, list[tuple[int, str]]]:
    """(modules imported, (cumulative µs, name) of the top-level imports) from `-X importtime` of one run."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv], env=env, capture_output=True, text=True, check=False
    )
    return parse_importtime(done.stderr)


def parse_importtime(stderr: str) -> tuple[int, list[tuple[int, str]]]:
    rows = [line.split("|") for line in stderr.splitlines() if line.startswith("import time:")][1:]
    tops = [(int(r[1]), r[2].rstrip()) for r in rows if not r[2].startswith("  ")]
    return len(rows), sorted(tops, reverse=True)


def script(name: str) -> list[str]:
    """The installed console script, as a `python` argv (for `-X importtime`)."""
    return [str(BIN / name)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--top", type=int, default=0, help="print the N slowest top-level imports of each command")
    args = parser.parse_args()
    only = {n for n in args.only.split(",") if n}

    with tempfile.TemporaryDirectory(prefix="odin-bench-startup-") as tmp:
        work = Path(tmp)
        main_yml = one_task_pipeline(work)
        base = clean_env()
        list_server: ListServer | None = ListServer(work) if not only or "odinctl-runs" in only else None
        list_env = list_server.env if list_server is not None else base
        run_data = work / "run-data"
        run_env = clean_env(ODIN_DATA_DIR=str(run_data))
        cases = [
            Case(
                "odinctl-help", 0.150, lambda: timed([*script("odinctl"), "--help"], base), ["odinctl", "--help"], base
            ),
            Case("odin-help", 0.150, lambda: timed([*script("odin"), "--help"], base), ["odin", "--help"], base),
            Case(
                "odinctl-runs",
                None,
                lambda: timed([*script("odinctl"), "runs"], list_env),
                ["odinctl", "runs"],
                list_env,
            ),
            Case(
                "odin-run",
                0.300,
                lambda: timed([*script("odin"), "run", str(main_yml)], run_env),
                ["odin", "run", str(main_yml)],
                run_env,
            ),
            Case("odin-serve-ready", 1.5, lambda: serve_until_ready(work)[:2], ["odin", "serve"], base),
        ]
        print(f"load average before: {load_average()}  (1, 5, 15 min; {os.cpu_count()} CPUs)")
        print(f"{'command':<18} {'median':>8} {'p90':>8} {'target':>8} {'cpu med':>8}  {'modules':>7}")
        try:
            for case in cases:
                if only and case.name not in only:
                    continue
                case.run()  # writes the bytecode caches of everything it imports
                runs = [case.run() for _ in range(args.repeat)]
                times = sorted(wall for wall, _ in runs)
                cpu = statistics.median(cpu for _, cpu in runs)
                median = statistics.median(times)
                p90 = times[min(len(times) - 1, round(0.9 * (len(times) - 1)))]
                if case.name == "odin-serve-ready":  # never exits by itself: counted up to ready
                    modules, tops = parse_importtime(serve_until_ready(work, ["-X", "importtime"])[2])
                else:
                    modules, tops = module_count(script(case.argv[0]) + list(case.argv[1:]), case.env)
                target = f"{case.target * 1000:.0f} ms" if case.target else "-"
                verdict = "" if case.target is None else ("  ok" if p90 <= case.target else "  OVER")
                print(
                    f"{case.name:<18} {median * 1000:>5.0f} ms {p90 * 1000:>5.0f} ms {target:>8} "
                    f"{cpu * 1000:>5.0f} ms  {modules:>7}{verdict}"
                )
                for micros, name in tops[: args.top]:
                    print(f"    {micros / 1000:>7.1f} ms  {name}")
        finally:
            if list_server is not None:
                list_server.stop()
            print(f"load average after:  {load_average()}")


if __name__ == "__main__":
    main()
