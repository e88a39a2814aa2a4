"""Odin side by side with other local DAG runners (issue 15 item 7): the same generated DAGs, whole processes.

Each peer is installed into its own throwaway virtual environment (`uv` when it is on PATH, else `pip`, from whatever
index pip is configured with); a peer that cannot be installed here is reported and skipped, never faked. Every DAG is
made of `/bin/true` processes, so what differs between runners is their own cost: scheduling, bookkeeping, start-up.

Runners, each timed as a fresh process from spawn to exit (start-up included, as a user meets it):
* `threads` -- the floor: a plain thread pool of `--parallelism` running the same processes in dependency order;
* `odin`    -- `odin run DIR --parallelism P` (engine, local executor, every transition recorded in SQLite);
* `luigi`   -- `luigi.build(..., workers=P, local_scheduler=True)`, one `LocalTarget` per task (Luigi's own way to
  know a task is done);
* `prefect` -- a `@flow` with `ThreadPoolTaskRunner(max_workers=P)`, tasks submitted with `wait_for` their
  dependencies (Prefect's ephemeral local server, started by each process as `python flow.py` does with no server
  configured; its database is made by an untimed warm-up flow first).

DAGs: `one` (a single task: the runner's start-up), `fan` (N independent tasks joined by one fan-in task) and
`chain` (N tasks one after another). Prints wall seconds, overhead per task over the thread pool (start-up spread over
the tasks), cost per task after start-up (wall minus the runner's `one`), each runner's ratio to the thread pool and
to Odin, and the load average before and after (the machine may be shared: compare figures from one invocation).

    .venv/bin/python benchmarks/peers.py [--tasks 200] [--chain 50] [--parallelism 2] [--repeat 1]
        [--peers luigi,prefect]
        [--venvs /tmp/odin-peers] [--fresh]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ODIN = Path(sys.executable).with_name("odin")
PACKAGES = {"luigi": ["luigi"], "prefect": ["prefect"]}

Dag = dict[str, list[str]]  # task name -> the names it depends on, in a topological order

THREADS = """
import json, subprocess, sys
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
dag, parallelism = json.loads(sys.argv[1]), int(sys.argv[2])
left = {name: len(deps) for name, deps in dag.items()}
dependents = {name: [] for name in dag}
for name, deps in dag.items():
    for dep in deps:
        dependents[dep].append(name)
def run():
    subprocess.run(["/bin/true"], check=True)
with ThreadPoolExecutor(parallelism) as pool:
    running = {pool.submit(run): name for name, n in left.items() if n == 0}
    while running:
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            future.result()
            for child in dependents[running.pop(future)]:
                left[child] -= 1
                if left[child] == 0:
                    running[pool.submit(run)] = child
"""

LUIGI = """
import json, subprocess, sys
import luigi
dag, parallelism, out = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
class Step(luigi.Task):
    name = luigi.Parameter()
    def requires(self):
        return [Step(name=dep) for dep in dag[self.name]]
    def output(self):
        return luigi.LocalTarget(f"{out}/{self.name}.done")
    def run(self):
        subprocess.run(["/bin/true"], check=True)
        with self.output().open("w") as f:
            f.write("ok")
leaves = set(dag) - {dep for deps in dag.values() for dep in deps}
ok = luigi.build([Step(name=n) for n in sorted(leaves)], workers=parallelism, local_scheduler=True,
                 log_level="WARNING")
sys.exit(0 if ok else 1)
"""

PREFECT = """
import json, subprocess, sys
from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner
dag, parallelism = json.loads(sys.argv[1]), int(sys.argv[2])
@task
def step(name):
    subprocess.run(["/bin/true"], check=True)
@flow(task_runner=ThreadPoolTaskRunner(max_workers=parallelism), log_prints=False)
def dag_flow():
    futures = {}
    for name, deps in dag.items():
        futures[name] = step.with_options(name=name).submit(name, wait_for=[futures[d] for d in deps])
    for f in futures.values():
        f.result()
dag_flow()
"""


@dataclass(frozen=True)
class Result:
    runner: str
    dag: str
    tasks: int
    seconds: float | None
    note: str = ""


def fan(n: int) -> Dag:
    dag: Dag = {f"t{i}": [] for i in range(n)}
    dag["join"] = [f"t{i}" for i in range(n)]
    return dag


def chain(n: int) -> Dag:
    return {f"c{i}": ([f"c{i - 1}"] if i else []) for i in range(n)}


def odin_pipeline(directory: Path, name: str, dag: Dag) -> None:
    lines = [f"name: {name}", "tasks:"]
    for task, deps in dag.items():
        lines.append(f"  - name: {task}")
        lines.append("    image: busybox")
        lines.append("    command: /bin/true")
        if deps:
            lines.append("    depends:")
            lines += [f"      - {d}" for d in deps]
    directory.mkdir(parents=True)
    (directory / "main.yml").write_text("\n".join(lines) + "\n")


def install(peer: str, venvs: Path, fresh: bool) -> tuple[Path | None, str]:
    """The peer's interpreter, or None and why it could not be installed here."""
    venv = venvs / peer
    python = venv / "bin" / "python"
    if fresh and venv.exists():
        shutil.rmtree(venv)
    if python.exists() and (venv / ".installed").exists():
        return python, "reused"
    started = time.perf_counter()
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
        if shutil.which("uv"):
            cmd = ["uv", "pip", "install", "-q", "--python", str(python), *PACKAGES[peer]]
        else:
            cmd = [str(python), "-m", "pip", "install", "-q", *PACKAGES[peer]]
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900)
    except subprocess.CalledProcessError as e:
        tail = (e.stderr or e.stdout or "").strip().splitlines()[-1:] or ["(no output)"]
        return None, f"cannot install {peer} here: {tail[0]}"
    except subprocess.TimeoutExpired:
        return None, f"cannot install {peer} here: installation took over 15 minutes"
    (venv / ".installed").write_text("")
    return python, f"installed in {time.perf_counter() - started:.0f} s"


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float | None, str]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=1800)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return None, f"failed ({proc.returncode}): {' | '.join(tail)}"
    return seconds, ""


def runners(
    peers: dict[str, Path], tmp: Path, parallelism: int
) -> dict[str, Callable[[str, Dag], tuple[float | None, str]]]:
    """How each runner runs one DAG: (wall seconds or None, a note)."""

    def threads(name: str, dag: Dag) -> tuple[float | None, str]:
        return timed([sys.executable, "-c", THREADS, json.dumps(dag), str(parallelism)])

    def odin(name: str, dag: Dag) -> tuple[float | None, str]:
        directory = tmp / "odin" / name
        odin_pipeline(directory, name, dag)
        return timed(
            [str(ODIN), "run", str(directory), "--parallelism", str(parallelism), "--data-dir", str(tmp / f"d-{name}")]
        )

    def luigi(name: str, dag: Dag) -> tuple[float | None, str]:
        out = tmp / "luigi" / name
        out.mkdir(parents=True)
        return timed([str(peers["luigi"]), "-c", LUIGI, json.dumps(dag), str(parallelism), str(out)])

    prefect_env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    prefect_env.update(
        PREFECT_HOME=str(tmp / "prefect-home"),  # one home, as on a user's machine: its database already made
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300",
    )

    def prefect(name: str, dag: Dag) -> tuple[float | None, str]:
        return timed([str(peers["prefect"]), "-c", PREFECT, json.dumps(dag), str(parallelism)], prefect_env)

    if "prefect" in peers:  # untimed: the first flow creates and migrates Prefect's database
        _, note = prefect("warm-up", chain(1))
        if note:
            print(f"prefect warm-up {note}")

    table: dict[str, Callable[[str, Dag], tuple[float | None, str]]] = {"threads": threads, "odin": odin}
    if "luigi" in peers:
        table["luigi"] = luigi
    if "prefect" in peers:
        table["prefect"] = prefect
    return table


def report(results: list[Result]) -> None:
    """The table: wall time; overhead per task over the thread pool (start-up included, spread over the tasks); cost
    per task once started (wall minus the same runner's one-task DAG, over the other tasks); ratios."""
    single = {r.runner: r.seconds for r in results if r.dag == "one"}
    print(
        f"\n{'dag':<12} {'runner':<8} {'wall s':>8} {'overhead/task':>14} {'per task after start-up':>24} "
        f"{'x threads':>10} {'x odin':>8}"
    )
    for dag in dict.fromkeys(r.dag for r in results):
        rows = {r.runner: r for r in results if r.dag == dag}
        floor = rows["threads"].seconds
        odin = rows["odin"].seconds
        for r in rows.values():
            if r.seconds is None:
                print(f"{dag:<12} {r.runner:<8} {'-':>8}  {r.note}")
                continue
            per_task = f"{(r.seconds - floor) / r.tasks * 1000:.1f} ms" if floor is not None else "-"
            base = single.get(r.runner)
            marginal = "-"
            if base and r.tasks > 1:
                cost = (r.seconds - base) / (r.tasks - 1) * 1000
                marginal = f"{cost:.1f} ms" if cost >= 0 else "noise"  # start-up varied more than the tasks cost
            vs_floor = f"{r.seconds / floor:.2f}" if floor else "-"
            vs_odin = f"{r.seconds / odin:.2f}" if odin else "-"
            print(f"{dag:<12} {r.runner:<8} {r.seconds:8.2f} {per_task:>14} {marginal:>24} {vs_floor:>10} {vs_odin:>8}")


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=200, help="fan-out width of the `fan` DAG (plus one fan-in)")
    parser.add_argument("--chain", type=int, default=50, help="length of the `chain` DAG (0: skip it)")
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--peers", default="luigi,prefect", help="comma-separated; empty for Odin and threads only")
    parser.add_argument("--venvs", type=Path, default=Path(tempfile.gettempdir()) / "odin-peers",
                        help="where the throwaway virtual environments go (reused between invocations)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=1, help="runs of each DAG by each runner; the median is shown")
    parser.add_argument("--fresh", action="store_true", help="reinstall the peers")
    args = parser.parse_args()

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    peers: dict[str, Path] = {}
    for peer in [p for p in args.peers.split(",") if p]:
        if peer not in PACKAGES:
            raise SystemExit(f"unknown peer {peer!r}: choose from {', '.join(PACKAGES)}")
        python, note = install(peer, args.venvs, args.fresh)
        version = ""
        if python is not None:
            version = subprocess.run(
                [str(python), "-c", f"import importlib.metadata as m; print(m.version({peer!r}))"],
                capture_output=True, text=True, check=False,
            ).stdout.strip()  # fmt: skip
            peers[peer] = python
        print(f"{peer}: {version or 'skipped'} ({note})")
    dags = {"one": chain(1), f"fan-{args.tasks}": fan(args.tasks)}  # `one`: each runner's start-up and one task
    if args.chain:
        dags[f"chain-{args.chain}"] = chain(args.chain)
    print(f"load average {load_average()} before; parallelism {args.parallelism}; every task is /bin/true")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="odin-peers-") as d:
        table = runners(peers, Path(d), args.parallelism)
        for dag_name, dag in dags.items():
            for runner, run in table.items():
                times: list[float] = []
                note = ""
                for i in range(args.repeat):
                    seconds, note = run(f"{dag_name}-{i}", dag)
                    if seconds is None:
                        break
                    times.append(seconds)
                seconds = statistics.median(times) if len(times) == args.repeat else None
                results.append(Result(runner, dag_name, len(dag), seconds, note))
                shown = f"{seconds:.2f} s" if seconds is not None else note
                print(f"  {dag_name} {runner}: {shown}", flush=True)
    report(results)
    print(f"load average {load_average()} after")


if __name__ == "__main__":
    main()
