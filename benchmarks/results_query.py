"""`odinctl results` over 10,000 runs: the store query, the API call and the command end to end, p50/p95.

Target (issue 11, "Speed"): `odinctl results` over 10,000 runs answers in <= 100 ms.

What it does, on SQLite (the embedded install's store) and on a scratch Postgres database (`--backend` for one):
1. seeds a fresh store with `--runs` runs of pipeline `train` spread over the last 30 days, plus as many runs of 9
   other pipelines (noise the query must not read), each with 3 task runs; two tasks of each `train` run record
   results (`accuracy`, `loss`; `auc`);
2. times `run_queries.results_by_run` in this process (the store alone): the default page (50) and every run;
3. starts `odin serve` on the store (no repository: API only), logs in, and times the server over keep-alive HTTP:
   `GET /v1/results?pipeline=train&since=30d` (the default page of 50) and the first page of `--all` (2,000 runs,
   `all_columns`), with the size of each answer;
4. times `odinctl` as a real subprocess, the number a user waits for (Python's start, imports, the request, the
   printing): `--help` for reference, then `results --pipeline train --since 30d` as a table (the default view), as
   `-o json`, and with `--all -o json` / `--all -o csv` (all 10,000 runs streamed page by page), p50/p95 each;
5. prints the summary and the load average before and after.

    .venv/bin/python benchmarks/results_query.py [--runs 10000] [--repeat 30] [--cli-repeat 15]
        [--backend both|sqlite|postgres] [--admin-url postgresql+psycopg2://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

from odin.controller.store import run_queries
from odin.controller.store.db import create_db_engine, migrate
from odin.controller.store.tables import RUNS, TASK_RUNS

BIN = Path(sys.executable).parent
SECRET = "benchmark-secret-that-is-long-enough-0123456789"
PASSWORD = "benchmark-password"


def seed(url: str, runs: int) -> None:
    rng = random.Random(7)
    engine = create_db_engine(url)
    migrate(engine)
    now = datetime.now(UTC)
    started = time.perf_counter()
    run_rows: list[dict[str, object]] = []
    task_rows: list[dict[str, object]] = []
    for pipeline_no in range(10):
        pipeline = "train" if pipeline_no == 0 else f"other{pipeline_no}"
        for i in range(runs if pipeline_no == 0 else runs // 9):
            sha = f"{rng.getrandbits(160):040x}"
            run_id = f"{pipeline}-{sha[:7]}-{i}"
            created = now - timedelta(seconds=rng.uniform(60, 29 * 86400))
            run_rows.append(
                {"id": run_id, "pipeline": pipeline, "commit_sha": sha, "branch": "main", "trigger": "poll",
                 "status": "succeeded", "created_at": created, "params": {}, "spec": {}, "absorbed_commits": [],
                 "conditions": []}
            )  # fmt: skip
            for t, results in (
                ("train", {"accuracy": round(rng.uniform(0.8, 0.99), 4), "loss": round(rng.uniform(0.1, 0.5), 4)}),
                ("eval", {"auc": round(rng.uniform(0.8, 0.99), 4)}),
                ("export", None),
            ):
                task_rows.append(
                    {"run_id": run_id, "name": t, "status": "succeeded", "attempt": 1, "gpus": [],
                     "results": results if pipeline == "train" else None, "artifacts": None}
                )  # fmt: skip
    with engine.begin() as conn:
        for start in range(0, len(run_rows), 5000):
            conn.execute(RUNS.insert(), run_rows[start : start + 5000])
        for start in range(0, len(task_rows), 5000):
            conn.execute(TASK_RUNS.insert(), task_rows[start : start + 5000])
        conn.execute(sa.text("ANALYZE"))  # both backends: the planner should know the tables' sizes
    engine.dispose()
    print(
        f"seeded {len(run_rows):,} runs ({runs:,} of `train`) and {len(task_rows):,} task runs in "
        f"{time.perf_counter() - started:.1f}s"
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(label: str, fn: Callable[[], object], repeat: int, warmup: int = 3) -> tuple[float, float, float]:
    """p50 and p95 wall milliseconds of `fn`, and the median CPU milliseconds of the processes it ran (user + system
    of its children: what the command costs whatever the neighbours do; 0 for in-process calls)."""
    for _ in range(warmup):
        fn()
    samples, cpu = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    p50, p95, cpu50 = percentile(samples, 0.5), percentile(samples, 0.95), percentile(cpu, 0.5)
    spent = f", CPU {cpu50:.0f} ms" if cpu50 else ""
    print(f"  {label}: p50 {p50:.1f} ms, p95 {p95:.1f} ms{spent} ({repeat} runs)", flush=True)
    return p50, p95, cpu50


@contextlib.contextmanager
def database(backend: str, admin_url: str, tmp: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'odin.db'}"
        return
    name = f"odin_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def server(url: str, data_dir: Path, port: int) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    env.update(ODIN_DATABASE_URL=url, ODIN_DATA_DIR=str(data_dir), ODIN_PORT=str(port), ODIN_JWT_SECRET=SECRET,
               ODIN_ADMIN_PASSWORD=PASSWORD, ODIN_LOG_LEVEL="WARNING")  # fmt: skip
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen([str(BIN / "odin"), "serve"], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"odin serve did not start; see {data_dir / 'server.log'}")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


def bench_backend(backend: str, args: argparse.Namespace) -> dict[str, tuple[float, float, float]]:
    """Seed a store on `backend`, then time the store, the API and the command; the command's figures by view."""
    figures: dict[str, tuple[float, float, float]] = {}
    print(f"backend {backend}:", flush=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        with database(backend, args.admin_url, tmp) as url:
            seed(url, args.runs)
            engine = create_db_engine(url)
            since = datetime.now(UTC) - timedelta(days=30)
            for limit in (50, args.runs):
                rows = run_queries.results_by_run(engine, "train", since=since, limit=limit)
                timed(
                    f"store: results_by_run(train, 30d, limit={limit}) -> {len(rows):,} runs",
                    lambda limit=limit: run_queries.results_by_run(engine, "train", since=since, limit=limit),
                    args.repeat,
                )
            engine.dispose()
            with socket_port() as port, server(url, tmp, port) as base:
                token = httpx.post(f"{base}/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()[
                    "access_token"
                ]
                with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
                    for limit, extra in ((50, {}), (2000, {"all_columns": "true"})):
                        params = {"pipeline": "train", "since": "30d", "limit": limit, **extra}
                        answer = http.get("/v1/results", params=params)
                        n = len(answer.json()["items"])
                        timed(
                            f"server: GET /v1/results?{'&'.join(f'{k}={v}' for k, v in params.items())} -> {n:,} "
                            f"runs, {len(answer.content) / 1024:,.0f} KiB",
                            lambda params=params: http.get("/v1/results", params=params).raise_for_status(),
                            args.repeat,
                        )
                env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
                env.update(ODIN_SERVER=base, ODIN_TOKEN=token, ODIN_CONFIG_DIR=str(tmp / "cfg"), COLUMNS="200")
                figures["python -c pass"] = timed(
                    "python -c pass (the interpreter's start alone, for reference)",
                    lambda: subprocess.run([sys.executable, "-c", "pass"], env=env, check=True, capture_output=True),
                    args.cli_repeat,
                    warmup=2,
                )
                figures["--help"] = timed(
                    "odinctl --help (Python start and typer, no request)",
                    lambda: subprocess.run([str(BIN / "odinctl"), "--help"], env=env, check=True, capture_output=True),
                    args.cli_repeat,
                    warmup=2,
                )
                views = [("default", ()), ("-o json", ("-o", "json")), ("--all -o json", ("--all", "-o", "json")),
                         ("--all -o csv", ("--all", "-o", "csv"))]  # fmt: skip
                for view, extra in views:
                    command = [str(BIN / "odinctl"), "results", "--pipeline", "train", "--since", "30d", *extra]
                    printed = subprocess.run(command, env=env, check=True, capture_output=True).stdout
                    rows = (
                        len(json.loads(printed)["items"])
                        if "json" in extra
                        else printed.count(b"\n") - 1  # header line
                    )

                    def run_cli(command: list[str] = command) -> None:
                        subprocess.run(command, env=env, check=True, capture_output=True)

                    figures[view] = timed(
                        f"odinctl results --pipeline train --since 30d {' '.join(extra)} -> {rows:,} runs, "
                        f"{len(printed) / 1024:,.0f} KiB (whole process)",
                        run_cli,
                        args.cli_repeat,
                        warmup=2,
                    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--cli-repeat", type=int, default=15)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--admin-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    summary = {backend: bench_backend(backend, args) for backend in backends}
    print(f"\nodinctl results over {args.runs:,} runs, whole process (target: default view <= 100 ms):")
    for backend, figures in summary.items():
        for view, (p50, p95, cpu) in figures.items():
            verdict = "" if view != "default" else ("  ok" if p50 <= 100 else "  ABOVE TARGET")
            print(f"  {backend:8} {view:14} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  CPU {cpu:6.1f} ms{verdict}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


@contextlib.contextmanager
def socket_port() -> Iterator[int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    yield port


if __name__ == "__main__":
    main()
