"""Webhook speed, against a real `odin serve` following a local bare repository (local executor).

Targets (issue: webhooks): a delivery is answered <= 20 ms at p99 under 200 deliveries/s; a push becomes a started
task <= 1 s at p50.

1. **Answer latency.** Signed GitHub push deliveries (the recorded payload from tests/webhooks/data, ~8 KB), each
   with its own delivery id, sent open-loop at `--rate` per second for `--seconds`: a request is sent at its
   scheduled time whether or not earlier ones were answered, and its latency counts from that time, so a stall
   shows up in the figures instead of slowing the load down (no coordinated omission). Every delivery names a new
   commit that changes the pipeline (prepared beforehand; the remote's branch is moved to it just before the
   delivery is sent, as a push would), so the load verifies, records, syncs and starts runs -- the whole path a
   busy repository takes, not a stub. Afterwards it prints how many runs the load started and how long the server
   took to finish them.
2. **Push to first task started.** `--pushes` times: commit a change to a pipeline, push it to the bare remote, send
   the webhook, and wait for the run's first task to be reported running. Measured from just before the webhook is
   sent to the `task.status running` event's time in the store (both clocks are this machine's). The poll interval
   is an hour, so only the webhook can start the work.

The load average is printed before and after: on a shared machine the figures move with it.

    .venv/bin/python benchmarks/bench_webhooks.py [--rate 200] [--seconds 10] [--pushes 10] [--drain 60]
                                                  [--database-url postgresql+psycopg2://postgres@127.0.0.1/bench]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pygit2
import sqlalchemy as sa
from _serving import wait_healthy  # benchmarks/ is the script's own directory, first on sys.path

from odin.controller.store.tables import EVENTS, RUNS

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = ROOT / "tests" / "webhooks" / "data" / "github" / "push.json"
SECRET = "bench-secret-0123456789abcdef"
PIPELINE = "name: train\ntasks:\n  - {{name: first, image: busybox, command: [sh, -c, 'echo {marker}']}}\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Remote:
    """A bare repository and a working clone, committing and pushing with pygit2."""

    def __init__(self, root: Path) -> None:
        self.bare = pygit2.init_repository(str(root / "remote.git"), bare=True, initial_head="main")
        self.work = pygit2.init_repository(str(root / "work"), initial_head="main")
        self.work.remotes.create("origin", str(root / "remote.git"))
        self.path = root / "remote.git"
        self.count = 0

    def commit(self, files: dict[str, str]) -> str:
        self.count += 1
        ref = self.work.references.get("refs/heads/main")
        parents = [ref.target] if ref is not None else []
        index = pygit2.Index()
        if parents:
            index.read_tree(self.work[parents[0]].peel(pygit2.Commit).tree)
        for path, text in files.items():
            index.add(pygit2.IndexEntry(path, self.work.create_blob(text.encode()), pygit2.enums.FileMode.BLOB))
        tree = index.write_tree(self.work)
        sig = pygit2.Signature("bench", "bench@odin.invalid", 1_700_000_000 + self.count, 0)
        oid = self.work.create_commit("refs/heads/main", sig, sig, f"change {self.count}", tree, parents)
        self.work.remotes["origin"].push(["+refs/heads/main:refs/heads/main"])
        return str(oid)

    def prepare(self, count: int) -> list[str]:
        """`count` commits after the remote's tip, each changing the pipeline, in the remote but not yet on its
        branch: `advance` moves the branch to one of them, which is what the server sees of a push."""
        tip = self.work.references["refs/heads/main"].target
        shas: list[str] = []
        parent = tip
        for i in range(count):
            index = pygit2.Index()
            index.read_tree(self.work[parent].peel(pygit2.Commit).tree)
            text = PIPELINE.format(marker=f"load-{i}")
            index.add(
                pygit2.IndexEntry("train/main.yml", self.work.create_blob(text.encode()), pygit2.enums.FileMode.BLOB)
            )
            sig = pygit2.Signature("bench", "bench@odin.invalid", 1_700_100_000 + i, 0)
            parent = self.work.create_commit(None, sig, sig, f"load {i}", index.write_tree(self.work), [parent])
            shas.append(str(parent))
        self.work.references.create("refs/heads/load", parent, force=True)
        self.work.remotes["origin"].push(["+refs/heads/load:refs/heads/load"])
        self.work.references["refs/heads/main"].set_target(parent)  # later `commit`s continue from the load's tip
        return shas

    def advance(self, sha: str) -> None:
        self.bare.references["refs/heads/main"].set_target(pygit2.Oid(hex=sha))


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def delivery(template: dict[str, Any], sha: str, delivery_id: str) -> tuple[bytes, dict[str, str]]:
    body = dict(template["body"])
    body["after"] = sha
    raw = json.dumps(body).encode()
    headers = {**template["headers"], "X-GitHub-Delivery": delivery_id, "X-Hub-Signature-256": sign(raw)}
    return raw, headers


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def answer_latency(
    port: int, template: dict[str, Any], remote: Remote, warm: str, shas: list[str], rate: float, seconds: float
) -> None:
    """Open-loop load over keep-alive connections with a lean HTTP/1.1 client: on a small machine, a general-purpose
    client's own CPU use would show up as server latency."""
    total = len(shas)
    requests = [_http_request(*delivery(template, sha, f"bench-{os.getpid()}-{i}")) for i, sha in enumerate(shas)]
    pushed = [-1]
    scheduled_lat: list[float] = []
    service_lat: list[float] = []
    statuses: dict[int, int] = {}
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(32):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    for i in range(20):  # warm-up: the first sync, lazily started threads
        await _exchange(idle, _http_request(*delivery(template, warm, f"warm-{os.getpid()}-{i}")))
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.1

    async def one(i: int) -> None:
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - loop.time()))
        if i > pushed[0]:  # the push this delivery announces (never moving the branch backwards)
            remote.advance(shas[i])
            pushed[0] = i
        sent = loop.time()
        status = await _exchange(idle, requests[i])
        done = loop.time()
        statuses[status] = statuses.get(status, 0) + 1
        scheduled_lat.append(done - due)
        service_lat.append(done - sent)

    await asyncio.gather(*(one(i) for i in range(total)))
    elapsed = loop.time() - start
    while not idle.empty():
        idle.get_nowait()[1].close()
    print(f"\n1. answer latency: {total} signed GitHub push deliveries at {rate:.0f}/s for {seconds:.0f} s")
    print(f"   achieved rate    : {total / elapsed:7.1f} deliveries/s   answers: {dict(sorted(statuses.items()))}")
    for name, values in (("from schedule", scheduled_lat), ("from send", service_lat)):
        ms = [v * 1000 for v in values]
        print(
            f"   {name:<16} : p50 {percentile(ms, 50):6.2f} ms   p95 {percentile(ms, 95):6.2f} ms   "
            f"p99 {percentile(ms, 99):6.2f} ms   max {max(ms):7.2f} ms"
        )
    p99 = percentile([v * 1000 for v in scheduled_lat], 99)
    print(f"   target p99 <= 20 ms: {'met' if p99 <= 20 else 'NOT met'} ({p99:.2f} ms)")
    errors = total - statuses.get(202, 0)
    print(f"   errors (answers other than 202): {errors}")


def runs_started(db_url: str, shas: list[str], deadline_s: float) -> None:
    """How many runs the load started (the run policy may absorb commits into a later run), and how long after the
    last delivery the server had synced the last pushed commit and finished every run; waits on the store."""
    db = sa.create_engine(db_url)
    started = time.monotonic()
    wanted = set(shas)
    final = ("succeeded", "failed", "cancelled", "skipped")
    synced_s: float | None = None
    try:
        while True:
            with db.connect() as conn:
                rows = conn.execute(sa.select(RUNS.c.commit_sha, RUNS.c.status)).all()
            ours = [r for r in rows if r.commit_sha in wanted]
            waited = time.monotonic() - started
            if synced_s is None and any(r.commit_sha == shas[-1] for r in ours):
                synced_s = waited
            open_runs = [r for r in ours if r.status not in final]
            if (synced_s is not None and not open_runs) or waited > deadline_s:
                break
            time.sleep(0.2)
    finally:
        db.dispose()
    by_status: dict[str, int] = {}
    for r in ours:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    print(f"   runs started by the load: {len(ours)} for {len(shas)} pushed commits {dict(sorted(by_status.items()))}")
    synced = f"{synced_s:.1f} s" if synced_s is not None else f"not within {deadline_s:.0f} s"
    state = "all finished" if synced_s is not None and not open_runs else f"{len(open_runs)} open (gave up waiting)"
    print(f"   after the load: a run for the last pushed commit {synced}; {state} {waited:.1f} s after the load")


def _http_request(body: bytes, headers: dict[str, str]) -> bytes:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items() if k.lower() != "content-length")
    return (
        f"POST /webhooks/github HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


async def _exchange(idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]], request: bytes) -> int:
    """Send one request on an idle keep-alive connection; returns the status code."""
    reader, writer = await idle.get()
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    await reader.readexactly(length)
    idle.put_nowait((reader, writer))
    return status


def push_to_task(url: str, db_url: str, remote: Remote, template: dict[str, Any], pushes: int) -> None:
    db = sa.create_engine(db_url)
    latencies: list[float] = []
    created: list[float] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(pushes):
            sha = remote.commit({"train/main.yml": PIPELINE.format(marker=f"push-{i}")})
            raw, headers = delivery(template, sha, f"push-{os.getpid()}-{i}")
            t0 = datetime.now(UTC)
            res = client.post("/webhooks/github", content=raw, headers=headers)
            assert res.status_code == 202, res.text
            deadline = time.monotonic() + 30
            while True:
                with db.connect() as conn:
                    row = conn.execute(
                        sa.select(EVENTS.c.time)
                        .join(RUNS, RUNS.c.id == EVENTS.c.run_id)
                        .where(RUNS.c.commit_sha == sha, EVENTS.c.kind == "task.status")
                        .where(EVENTS.c.data["status"].as_string() == "running")
                        .order_by(EVENTS.c.id)
                        .limit(1)
                    ).first()
                    run = conn.execute(
                        sa.select(EVENTS.c.time)
                        .where(EVENTS.c.kind == "run.created", EVENTS.c.commit_sha == sha)
                        .limit(1)
                    ).first()
                if row is not None:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit(f"push {i}: no task started within 30 s")
                time.sleep(0.005)
            started = row.time.replace(tzinfo=UTC) if row.time.tzinfo is None else row.time
            latencies.append((started - t0).total_seconds())
            if run is not None:
                made = run.time.replace(tzinfo=UTC) if run.time.tzinfo is None else run.time
                created.append((made - t0).total_seconds())
            time.sleep(0.3)  # let the run finish: one push at a time, as a person pushes
    db.dispose()
    ms = [v * 1000 for v in latencies]
    made_ms = [v * 1000 for v in created]
    print(f"\n2. push -> first task started: {pushes} pushes, local executor")
    print(f"   webhook -> run recorded      : p50 {statistics.median(made_ms):7.1f} ms   max {max(made_ms):7.1f} ms")
    print(
        f"   webhook -> first task running: p50 {statistics.median(ms):7.1f} ms   "
        f"p90 {percentile(ms, 90):7.1f} ms   max {max(ms):7.1f} ms"
    )
    print(f"   target p50 <= 1 s: {'met' if statistics.median(ms) <= 1000 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--drain", type=float, default=60, help="how long to wait for the load's runs to finish")
    parser.add_argument("--pushes", type=int, default=10)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary data directory")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="odin-bench-webhooks-"))
    remote = Remote(tmp)
    remote.commit({"train/main.yml": PIPELINE.format(marker="seed"), "README.md": "bench\n"})
    port = free_port()
    data_dir = tmp / "state"
    db_url = args.database_url or f"sqlite:///{data_dir / 'odin.db'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ODIN_")},
        "ODIN_DATA_DIR": str(data_dir),
        "ODIN_DATABASE_URL": db_url,
        "ODIN_PORT": str(port),
        "ODIN_REPO": str(remote.path),
        "ODIN_REPO_ALIASES": "https://github.com/acme/ml",
        "ODIN_WEBHOOK_SECRET": SECRET,
        "ODIN_POLL_INTERVAL": "3600",
        "ODIN_LOG_LEVEL": "WARNING",
    }
    log = (tmp / "server.log").open("wb")
    # `odin serve`, through this interpreter (works without the `odin` script on PATH, e.g. from a source tree)
    command = [sys.executable, "-c", "from odin.cli.admin import main; main()", "serve"]
    server = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server, tmp / "server.log")
        template = json.loads(PAYLOAD.read_text())
        print(f"odin serve on {url} (database {'SQLite' if args.database_url is None else args.database_url})")
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"machine: {os.cpu_count()} CPUs, load average {load} before the run; python {sys.version.split()[0]}")
        warm = remote.commit({"README.md": "warm-up\n"})  # pushed before the load's commits, which descend from it
        shas = remote.prepare(int(args.rate * args.seconds))
        cpu = psutil.Process(server.pid)
        before = cpu.cpu_times()
        asyncio.run(answer_latency(port, template, remote, warm, shas, args.rate, args.seconds))
        after = cpu.cpu_times()
        used = (after.user + after.system) - (before.user + before.system)
        print(f"   server CPU       : {used:.1f} s over the load ({100 * used / args.seconds:.0f}% of one core)")
        runs_started(db_url, shas, args.drain)
        push_to_task(url, db_url, remote, template, args.pushes)
        print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} after")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
