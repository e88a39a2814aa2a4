"""`GET /v1/runs?commit=<sha>` on a large store: latency and authenticated throughput of a real `odin serve`.

Targets (issue: the API, odinctl and the clients): with 100,000 runs and 1,000,000 task runs in Postgres,
p99 <= 15 ms and >= 1,000 authenticated requests/s on the 2-core development machine.

What it does:
1. creates a scratch Postgres database and seeds it with COPY (runs spread over a year and ~33,000 commits, ten task
   runs each), then ANALYZE, and prints the query plan of the commit lookup;
2. starts `odin serve` on it (no repository followed: the engine and API only) with a JWT secret, logs in and
   creates an API token (`odin_...`, what CI uses: a store lookup on every request, not a cached JWT);
3. load: --rate requests/s for random commits (full SHAs and 7-digit prefixes), open loop from --processes client
   processes over --connections keep-alive connections; the latency percentiles are those of the requests of that
   load, each from its scheduled time (so queueing counts), and every non-200 answer, socket error and timeout
   (no answer 2 s after the scheduled time) is an error;
4. with --wrk (Debian package `wrk`): closed-loop saturation as well, its own latency distribution and socket
   errors.
The load average is printed before and after: on a shared machine the figures move with it. So is the server's CPU
time per request answered (user + system time of the `odin serve` process from /proc/<pid>/stat, before and after
each load, over the requests it answered): what neighbours on the machine change least, and what must stay well
under 1 ms for 1,000 requests/s on what is left of two cores.

    .venv/bin/python benchmarks/bench_api.py [--runs 100000] [--tasks-per-run 10] [--rate 1000[,500...]]
        [--duration 15] [--connections 32] [--processes 2] [--server-processes 1] [--wrk]
        [--keep | --database NAME] [--log-level WARNING]
        [--admin-url postgresql+psycopg2://postgres@127.0.0.1:5432/postgres] [--odin OTHER/.venv/bin/odin]
"""

from __future__ import annotations

import argparse
import asyncio
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
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from odin.controller.store.db import create_db_engine, migrate

BIN = Path(sys.executable).parent
SECRET = "benchmark-secret-that-is-long-enough-0123456789"
PASSWORD = "benchmark-password"
STATUSES = ["succeeded"] * 80 + ["failed"] * 12 + ["cancelled"] * 4 + ["running"] * 3 + ["pending"]
REQUEST_TIMEOUT = 2.0  # seconds; a slower answer is an error, as a client with a deadline sees it
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


def commit_shas(runs: int, rng: random.Random) -> list[str]:
    """The commits `seed` spreads `runs` runs over; the same for the same `runs` (a kept database is reused)."""
    return [f"{rng.getrandbits(160):040x}" for _ in range(max(1, runs // 3))]


def seed(url: str, runs: int, tasks_per_run: int) -> tuple[list[str], float]:
    rng = random.Random(7)
    shas = commit_shas(runs, rng)
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


def start_server(
    url: str, data_dir: Path, port: int, log_level: str, odin: Path = BIN / "odin", processes: int = 1
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    env.update(
        ODIN_DATABASE_URL=url,
        ODIN_DATA_DIR=str(data_dir),
        ODIN_PORT=str(port),
        ODIN_JWT_SECRET=SECRET,
        ODIN_ADMIN_PASSWORD=PASSWORD,
        ODIN_LOG_LEVEL=log_level,
    )
    if processes != 1:  # only then: an `--odin` from before the setting existed serves as it always did
        env["ODIN_SERVE_PROCESSES"] = str(processes)
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen([str(odin), "serve"], env=env, stdout=log, stderr=log)
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


def api_token(base: str) -> str:
    """A long-lived API token (`odin_...`), as CI holds: each request is checked against the store, unlike a login
    JWT whose verification the server caches."""
    login = httpx.post(f"{base}/v1/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=30)
    login.raise_for_status()
    jwt = login.json()["access_token"]
    created = httpx.post(
        f"{base}/v1/auth/tokens", json={"name": "bench"}, headers={"Authorization": f"Bearer {jwt}"}, timeout=30
    )
    created.raise_for_status()
    token = str(created.json()["token"])
    assert token.startswith("odin_"), token
    return token


@dataclass
class Sample:
    """One load process's view: latency of every request from its scheduled time, and what went wrong."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    socket_errors: int = 0
    timeouts: int = 0
    runs_found: int = 0
    elapsed: float = 0.0
    cpu_seconds: float = 0.0


def _request(port: int, token: str, commit: str) -> bytes:
    return (
        f"GET /v1/runs?commit={commit} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nAccept: application/json\r\n\r\n"
    ).encode()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    return status, await reader.readexactly(length)


async def _load(port: int, token: str, shas: list[str], rate: float, seconds: float, connections: int) -> Sample:
    """Open-loop load: request i is due at start + i / rate whether or not earlier ones were answered, and its latency
    counts from that moment (a stall shows in the percentiles instead of slowing the load down). A lean HTTP/1.1
    client on keep-alive connections: on two cores a general-purpose client's CPU would show up as server latency."""
    rng = random.Random(os.getpid())
    requests = [_request(port, token, sha if i % 2 else sha[:7]) for i, sha in enumerate(rng.sample(shas, 2000))]
    sample = Sample()
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = asyncio.Queue()
    for _ in range(connections):  # opened before the clock starts, as wrk does; reopened on use after an error
        try:
            idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
        except OSError:
            idle.put_nowait(None)
    clock = time.perf_counter  # not loop.time(): uvloop's counts whole milliseconds
    total = int(rate * seconds)
    start = clock() + 0.05

    async def one(i: int, due: float) -> None:
        conn = None
        taken = False  # whether this request holds one of the connection slots
        try:
            async with asyncio.timeout(due + REQUEST_TIMEOUT - clock()):  # a client's deadline, queueing included
                conn = await idle.get()
                taken = True
                if conn is None:
                    conn = await asyncio.open_connection("127.0.0.1", port)
                reader, writer = conn
                writer.write(requests[i % len(requests)])
                status, body = await _read_response(reader)
        except TimeoutError:
            sample.timeouts += 1
            if taken:  # the connection's state is unknown: closed, and its slot reopens on next use
                _close(conn)
                idle.put_nowait(None)
            return
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            sample.socket_errors += 1
            _close(conn)
            idle.put_nowait(None)
            return
        sample.latencies_ms.append((clock() - due) * 1000)
        sample.statuses[status] = sample.statuses.get(status, 0) + 1
        if status == 200 and i % 50 == 0:
            sample.runs_found += len(json.loads(body)["items"])
        idle.put_nowait(conn)

    # Each request is started when it is due, by one dispatcher: creating them all up front (15,000 tasks and their
    # timers) cost the load generator a burst of CPU that showed up as the first second's latency.
    running: set[asyncio.Task[None]] = set()
    for i in range(total):
        due = start + i / rate
        if (wait := due - clock()) > 0:
            await asyncio.sleep(wait)
        task = asyncio.create_task(one(i, due))
        running.add(task)
        task.add_done_callback(running.discard)
    while running:
        await asyncio.wait(set(running))
    sample.elapsed = clock() - start
    while not idle.empty():
        _close(idle.get_nowait())
    return sample


def _close(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    if conn is not None:
        conn[1].close()


def _load_process(
    port: int, token: str, shas: list[str], rate: float, seconds: float, connections: int, out: Any
) -> None:
    try:  # the server's event loop too: the load generator shares the two cores, so its own cost matters
        import uvloop

        runner: Any = uvloop.run
    except ImportError:  # pragma: no cover (uvicorn[standard] brings it)
        runner = asyncio.run
    cpu = time.process_time()
    sample = runner(_load(port, token, shas, rate, seconds, connections))
    sample.cpu_seconds = time.process_time() - cpu
    out.put(asdict(sample))  # plain data across processes


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process and its live children (the API workers of `--server-processes`) have
    used so far (fields 14 and 15 of /proc/<pid>/stat, in clock ticks)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces; fields after it are plain
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return own + sum(cpu_seconds(int(child)) for child in children)


def load(
    port: int,
    token: str,
    shas: list[str],
    rate: float,
    seconds: float,
    connections: int,
    processes: int,
    server_pid: int,
) -> None:
    """Offers `rate` requests/s from `processes` client processes (each its share of the rate and connections) after
    a short warm-up, and prints throughput, latency percentiles under that load, every error, and the server's CPU
    time per request answered."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    per = max(1, connections // processes)
    warm = [ctx.Process(target=_load_process, args=(port, token, shas, 50, 2, per, out))]
    procs = [
        ctx.Process(target=_load_process, args=(port, token, shas, rate / processes, seconds, per, out))
        for _ in range(processes)
    ]
    for p in warm:
        p.start()
    out.get(timeout=120)  # the warm-up's figures are dropped
    for p in warm:
        p.join(30)
    cpu_before = cpu_seconds(server_pid)
    for p in procs:
        p.start()
    samples = [Sample(**out.get(timeout=seconds + 300)) for _ in procs]
    server_cpu = cpu_seconds(server_pid) - cpu_before
    for p in procs:
        p.join(30)
    latencies = [v for s in samples for v in s.latencies_ms]
    statuses: dict[int, int] = {}
    for s in samples:
        for code, n in s.statuses.items():
            statuses[code] = statuses.get(code, 0) + n
    offered = int(rate / processes * seconds) * processes
    ok = statuses.get(200, 0)
    elapsed = max(s.elapsed for s in samples)
    socket_errors = sum(s.socket_errors for s in samples)
    timeouts = sum(s.timeouts for s in samples)
    errors = offered - ok
    print(
        f"load: {rate:,.0f} requests/s offered for {seconds:.0f} s, open loop, from {processes} client processes over "
        f"{per * processes} keep-alive connections, API token (a store lookup per request)"
    )
    print(f"  throughput: {ok / elapsed:,.0f} answered 200 per second ({ok:,} of {offered:,} requests)")
    if latencies:
        print(
            f"  latency under the load, from each request's scheduled time: p50 {percentile(latencies, 0.5):.2f} ms, "
            f"p90 {percentile(latencies, 0.9):.2f} ms, p99 {percentile(latencies, 0.99):.2f} ms, "
            f"max {max(latencies):.2f} ms"
        )
    found = sum(s.runs_found for s in samples)
    print(
        f"  errors: {errors:,} (statuses {dict(sorted(statuses.items()))}, socket errors {socket_errors}, "
        f"timeouts {timeouts}: no answer {REQUEST_TIMEOUT:.0f} s after the scheduled time); "
        f"~{50 * found / max(ok, 1):.1f} runs per answer"
    )
    answered = sum(statuses.values())
    print(
        f"  server CPU: {server_cpu:.2f} s user+sys for {answered:,} answers = "
        f"{1000 * server_cpu / max(answered, 1):.3f} ms per request ({server_cpu / elapsed:.2f} cores while loaded)"
    )
    client_cpu = sum(s.cpu_seconds for s in samples)
    print(
        f"  load generator CPU: {client_cpu:.2f} s = {1000 * client_cpu / max(answered, 1):.3f} ms per request "
        f"({client_cpu / elapsed:.2f} cores of the same machine)"
    )
    p99 = percentile(latencies, 0.99) if latencies else float("inf")
    met = ok / elapsed >= 1000 and p99 <= 15 and errors == 0
    print(f"  target >= 1,000 requests/s at p99 <= 15 ms, no errors: {'met' if met else 'NOT met'}")


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


def load_wrk(base: str, token: str, shas: list[str], duration: int, connections: int, tmp: Path) -> None:
    """Closed-loop saturation with wrk: its latency distribution is its own, measured under its load; socket errors
    (connect, read, write) and timeouts count as errors."""
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
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", text)) else 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    socket_errors = sum(int(g) for g in sock.groups()) if sock else 0
    lat = {m.group(1): m.group(2) for m in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M)}
    print(
        f"wrk ({threads} threads, {connections} connections, {duration}s, closed loop, API token): "
        f"{float(rps.group(1)) if rps else 0:,.0f} requests/s; latency under its load p50 {lat.get('50')}, "
        f"p90 {lat.get('90')}, p99 {lat.get('99')}; errors {non2xx + socket_errors} (non-2xx {non2xx}, "
        f"socket errors and timeouts {sock.group(0) if sock else 0})"
    )


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--tasks-per-run", type=int, default=10)
    parser.add_argument(
        "--rate",
        default="1000",
        help="requests per second offered (open loop); several, comma-separated, one after another",
    )
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--processes", type=int, default=2, help="client processes sharing the load")
    parser.add_argument(
        "--server-processes",
        type=int,
        default=1,
        help="ODIN_SERVE_PROCESSES: processes of odin serve answering on the port (replicas forked by a supervisor)",
    )
    parser.add_argument("--wrk", action="store_true", help="also saturate the server with wrk (closed loop)")
    parser.add_argument("--admin-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--log-level", default="WARNING", help="server log level (INFO writes one line per request)")
    parser.add_argument(
        "--odin", type=Path, default=BIN / "odin", help="the `odin` to serve with (another checkout's, to compare)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (its name is printed)")
    parser.add_argument(
        "--database", help="reuse a database kept by an earlier --keep run with the same --runs instead of seeding one"
    )
    args = parser.parse_args()

    name = args.database or f"odin_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    if not args.database:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(args.admin_url).set(database=name).render_as_string(hide_password=False)
    tmp = Path(tempfile.mkdtemp(prefix="odin-bench-api-"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        if args.database:
            shas = commit_shas(args.runs, random.Random(7))
            print(f"database {name} reused ({args.runs:,} runs seeded by an earlier run)")
        else:
            shas, _ = seed(url, args.runs, args.tasks_per_run)
            if args.keep:
                print(f"database {name} kept: rerun with --database {name}")
        explain(url, shas[124])
        port = 20000 + random.randrange(20000)
        proc = start_server(url, tmp, port, args.log_level, args.odin, args.server_processes)
        base = f"http://127.0.0.1:{port}"
        token = api_token(base)
        workers = "1 process" if args.server_processes == 1 else f"{args.server_processes} processes and a supervisor"
        print(f"server: odin serve, {workers} (uvicorn + uvloop + httptools), log level {args.log_level}")
        print(f"load average {load_average()} before the load")
        for rate in (float(r) for r in args.rate.split(",")):
            load(port, token, shas, rate, args.duration, args.connections, args.processes, proc.pid)
        if args.wrk and shutil.which("wrk"):
            load_wrk(base, token, shas, args.duration, args.connections, tmp)
        elif args.wrk:
            print("wrk: not installed (Debian package `wrk`); skipped")
        print(f"load average {load_average()} after")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
        if not args.keep and not args.database:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
