"""WebSocket fan-out: how long after a state change is committed do 200 subscribers receive it?

Target (issue: the API, odinctl and the clients): a state change reaches WebSocket subscribers <= 100 ms later with
200 subscribers.

A real `odin serve` (Postgres by default) follows a local repository with a fan-out pipeline of quick tasks. Client
processes (separate from the server) open --subscribers connections, each subscribed to everything; then runs are
started over HTTP. Every event carries the time the engine recorded it; latency is the time each subscriber received
it minus that time (same machine, same clock), over every (event, subscriber) pair. It then checks delivery against
the store: every subscriber must have received every event the store recorded for those runs exactly once (none
missing, none twice, none the store does not have). The load average is printed before and after.

    .venv/bin/python benchmarks/bench_ws.py [--subscribers 200] [--runs 10] [--tasks 10] [--processes 4]
        [--admin-url postgresql+psycopg2://postgres@127.0.0.1:5432/postgres | --sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from websockets.asyncio.client import connect

from odin.controller.git.seed import seed_repository
from odin.controller.store.tables import EVENTS

BIN = Path(sys.executable).parent
PASSWORD = "benchmark-password"
RUN_ENDED = re.compile(r'"kind":"run\.status"[^{]*"data":\{"status":"(?:succeeded|failed)"')


def pipeline(tasks: int) -> str:
    lines = ["name: fan", "tasks:", "  - {name: start, image: busybox, command: ['true']}"]
    lines += [f"  - {{name: t{i}, image: busybox, command: ['true'], depends: start}}" for i in range(tasks - 1)]
    return "\n".join(lines) + "\n"


def start_server(env_extra: dict[str, str], data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    env.update(
        ODIN_DATA_DIR=str(data_dir),
        ODIN_PORT=str(port),
        ODIN_ADMIN_PASSWORD=PASSWORD,
        ODIN_LOG_LEVEL="WARNING",
        ODIN_POLL_INTERVAL="30",
        ODIN_PARALLELISM="64",
        **env_extra,
    )
    data_dir.mkdir(parents=True, exist_ok=True)
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


async def subscribers(url: str, token: str, count: int, ready: MpEvent, go: MpEvent, runs: int) -> list[Any]:
    conns = []
    for _ in range(count):
        conn = await connect(url, additional_headers={"Authorization": f"Bearer {token}"}, max_queue=None)
        await conn.recv()  # welcome
        await conn.send(json.dumps({"type": "subscribe", "all": True, "id": "all"}))
        await conn.recv()  # subscribed
        conns.append(conn)
    ready.set()

    async def collect(conn: Any) -> list[tuple[float, str]]:
        got: list[tuple[float, str]] = []
        finished = 0
        while finished < runs:
            raw = await asyncio.wait_for(conn.recv(), 120)
            got.append((time.time(), raw))
            finished += len(RUN_ENDED.findall(raw))
        return got

    results = await asyncio.gather(*(collect(c) for c in conns))
    for c in conns:
        await c.close()
    del go
    return results


def worker(url: str, token: str, count: int, ready: MpEvent, go: MpEvent, runs: int, out: Any) -> None:
    received = asyncio.run(subscribers(url, token, count, ready, go, runs))
    per_subscriber = []
    for got in received:
        rows = []
        for at, raw in got:
            message = json.loads(raw)
            events = [message["event"]] if message["type"] == "event" else message.get("events", [])
            for event in events:
                if event["run_id"] is None:
                    continue  # only the runs this benchmark started (not the first sync's commit and repo events)
                sent = datetime.fromisoformat(event["time"]).timestamp()
                rows.append((event["id"], at - sent))
        per_subscriber.append(rows)
    out.put(per_subscriber)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--admin-url", default="postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--sqlite", action="store_true", help="use SQLite instead of Postgres")
    args = parser.parse_args()

    print(f"machine: {os.cpu_count()} CPUs, load average {load_average()} before")
    tmp = Path(tempfile.mkdtemp(prefix="odin-bench-ws-"))
    (tmp / "samples" / "fan").mkdir(parents=True)
    (tmp / "samples" / "fan" / "main.yml").write_text(pipeline(args.tasks))
    seeded = seed_repository(tmp / "remote.git", tmp / "workspace", tmp / "samples")
    name = f"odin_bench_{uuid.uuid4().hex[:8]}"
    admin = None
    proc: subprocess.Popen[bytes] | None = None
    try:
        if args.sqlite:
            db_url = f"sqlite:///{tmp / 'odin.db'}"
        else:
            admin = sa.create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
            db_url = sa.make_url(args.admin_url).set(database=name).render_as_string(hide_password=False)
        port = 20000 + random.randrange(20000)
        proc = start_server({"ODIN_REPO": str(seeded.remote), "ODIN_DATABASE_URL": db_url}, tmp / "state", port)
        base = f"http://127.0.0.1:{port}"
        token = httpx.post(f"{base}/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()[
            "access_token"
        ]
        ctx = multiprocessing.get_context("spawn")
        out = ctx.Queue()
        go = ctx.Event()
        readies = []
        procs = []
        per_process = [args.subscribers // args.processes] * args.processes
        per_process[0] += args.subscribers - sum(per_process)
        for count in per_process:
            ready = ctx.Event()
            p = ctx.Process(
                target=worker, args=(f"ws://127.0.0.1:{port}/v1/ws", token, count, ready, go, args.runs, out)
            )
            p.start()
            procs.append(p)
            readies.append(ready)
        for ready in readies:
            if not ready.wait(120):
                raise SystemExit("subscribers did not connect in time")
        go.set()
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(args.runs):
            r = httpx.post(f"{base}/v1/runs", json={"pipeline": "fan"}, headers=headers, timeout=30)
            assert r.status_code == 201, r.text
            time.sleep(0.3)
        results: list[list[tuple[int, float]]] = []
        for _ in procs:
            results.extend(out.get(timeout=300))
        for p in procs:
            p.join(30)
        store_ids = recorded_event_ids(db_url)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
        shutil.rmtree(tmp, ignore_errors=True)

    latencies = [lat * 1000 for rows in results for _, lat in rows]
    missing, twice, unknown = check_delivery(store_ids, [[i for i, _ in rows] for rows in results])
    exact = not (missing or twice or unknown) and len(results) == args.subscribers
    backend = "SQLite" if args.sqlite else "Postgres"
    print(
        f"websocket fan-out ({backend}): {len(results)} subscribers x {len(store_ids)} events in the store "
        f"({args.runs} runs of {args.tasks} tasks) = {len(latencies):,} deliveries"
    )
    print(
        f"checked against the store, per subscriber: missing {missing}, received twice {twice}, not in the store "
        f"{unknown} (summed over subscribers); every subscriber got every stored event exactly once: {exact}"
    )
    p50, p90, p99 = (percentile(latencies, q) for q in (0.5, 0.9, 0.99))
    print(
        "latency from the engine recording a change to a subscriber receiving it: "
        f"p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms"
    )
    print(f"load average {load_average()} after")


def recorded_event_ids(db_url: str) -> set[int]:
    """The ids of every event the store holds for a run: what each subscriber must have received once."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.select(EVENTS.c.id).where(EVENTS.c.run_id.is_not(None))).scalars())
    finally:
        engine.dispose()


def check_delivery(store_ids: set[int], received: list[list[int]]) -> tuple[int, int, int]:
    """(missing, duplicated, unknown) deliveries summed over subscribers, each against the store's events."""
    missing = twice = unknown = 0
    for ids in received:
        got = set(ids)
        missing += len(store_ids - got)
        twice += len(ids) - len(got)
        unknown += len(got - store_ids)
    return missing, twice, unknown


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
