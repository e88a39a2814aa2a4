"""`GET /v1/runs?commit=<sha>` on a large store: latency and authenticated throughput of a real `odin serve`.

Targets (issue: the API, odinctl and the clients): with 100,000 runs and 1,000,000 task runs in Postgres,
p99 <= 15 ms and >= 1,000 authenticated requests/s on the 2-core development machine.

What it does:
1. creates a scratch Postgres database and seeds it with COPY (runs spread over a year and ~33,000 commits, ten task
   runs each), then ANALYZE, and prints the query plan of the commit lookup;
2. starts `odin serve` on it (no repository followed: the engine and API only) with a JWT secret, logs in;
3. latency: sequential keep-alive requests for random commits (full SHAs and 7-digit prefixes), p50/p90/p99;
4. throughput: `wrk` (Debian package `wrk`) with a Lua script rotating commits and the bearer token, from another
   process, for --duration seconds at --connections; without wrk, a Python fallback (several processes).

    .venv/bin/python benchmarks/bench_api.py [--runs 100000] [--tasks-per-run 10] [--duration 20]
        [--connections 32] [--admin-url postgresql+psycopg2://postgres@127.0.0.1:5432/postgres] [--keep]
        [--log-level WARNING]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

from odin.controller.store.db import create_db_engine, migrate

BIN = Path(sys.executable).parent
SECRET = "benchmark-secret-that-is-long-enough-0123456789"
PASSWORD = "benchmark-password"
STATUSES = ["succeeded"] * 80 + ["failed"] * 12 + ["cancelled"] * 4 + ["running"] * 3 + ["pending"]
TRIGGERS = ["poll"] * 70 + ["webhook"] * 20 + ["api"] * 7 + ["rerun"] * 3


def rows_runs(n: int, shas: list[str], rng: random.Random) -> Iterator[list[object]]:
    start = datetime.now(UTC) - timedelta(days=365)
    spec = json.dumps({"name": "p", "description": None, "params": [], "tasks": [{"name": f"t{i}"} for i in range(10)]})
    for i in range(n):
        created = start + timedelta(seconds=i * 315)  # a year, in order
        sha = shas[i % len(shas)] if i % 3 else shas[rng.randrange(len(shas))]
        status = rng.choice(STATUSES)
        yield [
            f"p{i % 50:02d}-{sha[:7]}-{i}",
            1,
            f"p{i % 50:02d}",
            sha,
            "main",
            rng.choice(TRIGGERS),
            "" if rng.random() < 0.7 else "alice",
            "{}",
            spec,
            "0" * 40,
            "",
            status,
            "",
            "",
            "",
            "f",
            "",
            "",
            "",
            "[]",
            "[]",
            created.isoformat(),
            (created + timedelta(seconds=5)).isoformat(),
            (created + timedelta(seconds=600)).isoformat() if status not in ("running", "pending") else "",
        ]


RUN_COLUMNS = (
    "id, repo_id, pipeline, commit_sha, branch, trigger, triggered_by, params, spec, work_tree, work_path, status, "
    "reason, message, parallelism, cancel_requested, parent_run, run_path_id, dedupe_key, absorbed_commits, "
    "conditions, created_at, started_at, finished_at"
)
TASK_COLUMNS = "run_id, name, status, attempt, user_failures, infra_failures, exit_code, gpus, started_at, finished_at"


def copy_rows(raw: object, table: str, columns: str, rows: Iterator[list[object]], chunk: int = 100_000) -> int:
    cursor = raw.cursor()  # type: ignore[attr-defined]
    total = 0
    while True:
        buf = io.StringIO()
        writer = csv.writer(buf)
        count = 0
        for row in rows:
            writer.writerow(row)
            count += 1
            if count == chunk:
                break
        if not count:
            break
        buf.seek(0)
        cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv, NULL '')", buf)
        total += count
        if count < chunk:
            break
    return total


def seed(url: str, runs: int, tasks_per_run: int) -> tuple[list[str], float]:
    rng = random.Random(7)
    shas = [f"{rng.getrandbits(160):040x}" for _ in range(max(1, runs // 3))]
    engine = create_db_engine(url)
    migrate(engine)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO repositories (name, url, branch, poll_interval, run_policy, conditions, created_at) "
                "VALUES ('default', 'file:///bench', 'main', 30, 'latest', '[]', now())"
            )
        )
    raw = engine.raw_connection()
    try:
        n = copy_rows(raw, "runs", RUN_COLUMNS, rows_runs(runs, shas, rng))
        cursor = raw.cursor()
        cursor.execute("SELECT id FROM runs")
        ids = [r[0] for r in cursor.fetchall()]
        tasks = (
            [run_id, f"t{t}", "succeeded", 1, 0, 0, 0, "[]", "", ""] for run_id in ids for t in range(tasks_per_run)
        )
        m = copy_rows(raw, "task_runs", TASK_COLUMNS, tasks)
        raw.commit()
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
        engine.dispose()
    seconds = time.perf_counter() - started
    print(f"seeded {n:,} runs and {m:,} task runs in {seconds:.1f}s")
    return shas, seconds


def explain(url: str, sha: str) -> None:
    engine = create_db_engine(url)
    try:
        with engine.connect() as conn:
            for label, where in (
                ("full sha", f"commit_sha = '{sha}'"),
                ("prefix", f"commit_sha >= '{sha[:7]}' AND commit_sha < '{sha[:7]}g'"),
            ):
                plan = conn.execute(
                    sa.text(
                        f"EXPLAIN ANALYZE SELECT id, pipeline, commit_sha, branch, trigger, triggered_by, status, "
                        f"message, parent_run, created_at, started_at, finished_at FROM runs WHERE {where} "
                        "ORDER BY created_at DESC, id DESC LIMIT 51"
                    )
                ).scalars()
                print(f"-- query plan ({label}):")
                for line in plan:
                    print("   ", line)
    finally:
        engine.dispose()


def start_server(url: str, data_dir: Path, port: int, log_level: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    env.update(
        ODIN_DATABASE_URL=url,
        ODIN_DATA_DIR=str(data_dir),
        ODIN_PORT=str(port),
        ODIN_JWT_SECRET=SECRET,
        ODIN_ADMIN_PASSWORD=PASSWORD,
        ODIN_LOG_LEVEL=log_level,
    )
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen([str(BIN / "odin"), "serve"], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"odin serve did not start; see {data_dir / 'server.log'}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def latency(base: str, token: str, shas: list[str], requests: int) -> None:
    rng = random.Random(11)
    samples: list[float] = []
    found = 0
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        for i in range(requests + 200):
            sha = rng.choice(shas)
            commit = sha if i % 2 else sha[:7]
            t0 = time.perf_counter()
            r = client.get("/v1/runs", params={"commit": commit})
            elapsed = time.perf_counter() - t0
            assert r.status_code == 200, r.text
            if i >= 200:  # warm-up
                samples.append(elapsed * 1000)
                found += len(r.json()["items"])
    print(
        f"latency GET /v1/runs?commit=<sha or 7-digit prefix>, {requests} sequential requests "
        f"({found / requests:.1f} runs per answer): p50 {percentile(samples, 0.5):.2f} ms, "
        f"p90 {percentile(samples, 0.9):.2f} ms, p99 {percentile(samples, 0.99):.2f} ms, max {max(samples):.2f} ms"
    )


LUA = """
local shas = {}
for line in io.lines("%(file)s") do shas[#shas + 1] = line end
local i = 0
request = function()
  i = i + 1
  local sha = shas[(i %% #shas) + 1]
  if i %% 2 == 0 then sha = string.sub(sha, 1, 7) end
  return wrk.format("GET", "/v1/runs?commit=" .. sha, {["Authorization"] = "Bearer %(token)s"})
end
"""


def throughput_wrk(base: str, token: str, shas: list[str], duration: int, connections: int, tmp: Path) -> None:
    (tmp / "shas.txt").write_text("\n".join(shas[:20000]) + "\n")
    (tmp / "bench.lua").write_text(LUA % {"file": tmp / "shas.txt", "token": token})
    threads = 2
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--latency", "-s",
         str(tmp / "bench.lua"), base],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    text = out.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    lat = {m.group(1): m.group(2) for m in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M)}
    print(
        f"throughput (wrk, {threads} threads, {connections} connections, {duration}s, authenticated): "
        f"{float(rps.group(1)) if rps else 0:,.0f} requests/s; latency under load p50 {lat.get('50')}, "
        f"p99 {lat.get('99')}; non-2xx: {non2xx.group(1) if non2xx else 0}"
    )


def _worker(base: str, token: str, shas: list[str], seconds: float, result: object) -> None:
    done = 0
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        i = 0
        while time.monotonic() < deadline:
            sha = shas[i % len(shas)]
            client.get("/v1/runs", params={"commit": sha})
            done += 1
            i += 1
    result.value = done  # type: ignore[attr-defined]


def throughput_python(base: str, token: str, shas: list[str], duration: int, processes: int) -> None:
    import multiprocessing

    values = [multiprocessing.Value("i", 0) for _ in range(processes)]
    procs = [
        multiprocessing.Process(target=_worker, args=(base, token, shas, duration, values[i])) for i in range(processes)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    total = sum(v.value for v in values)
    print(f"throughput (python fallback, {processes} processes): {total / duration:,.0f} requests/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--tasks-per-run", type=int, default=10)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--duration", type=int, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--admin-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--log-level", default="WARNING", help="server log level (INFO writes one line per request)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    name = f"odin_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(args.admin_url).set(database=name).render_as_string(hide_password=False)
    tmp = Path(tempfile.mkdtemp(prefix="odin-bench-api-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        shas, _ = seed(url, args.runs, args.tasks_per_run)
        explain(url, shas[124])
        port = 20000 + random.randrange(20000)
        proc = start_server(url, tmp, port, args.log_level)
        base = f"http://127.0.0.1:{port}"
        token = httpx.post(f"{base}/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()[
            "access_token"
        ]
        print(f"server: odin serve, 1 process (uvicorn + uvloop + httptools), log level {args.log_level}")
        latency(base, token, shas, args.requests)
        if shutil.which("wrk"):
            throughput_wrk(base, token, shas, args.duration, args.connections, tmp)
        else:
            throughput_python(base, token, shas, args.duration, 2)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
