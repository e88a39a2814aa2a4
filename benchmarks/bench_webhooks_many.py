"""Push -> run created while one `odin serve` follows many repositories (issue 13, Speed).

Target (issue 13): 500 repositories followed by one controller, 5 branches each; a push to any of them -> run created
<= 200 ms after its webhook. `bench_webhooks.py` measures a push with one repository followed and `bench_repos.py`
the CPU of a poll cycle over 500 repositories in one thread without a server; this one runs a real `odin serve`
(local executor, SQLite or `--database-url`) following `--repos` repositories with their real pollers:

1. **Set up.** The `ODIN_REPO` repository (branch `main`) and `--repos - 1` repositories registered through the API
   (`POST /v1/repos` as admin: `branches: [main, release/*]`, `webhook_secret_ref: env:NAME`, a secret of its own
   each, held in the server's environment). Each is a local bare repository with `--branches` branches (`main`,
   `release/1`...) at one commit with one pipeline. Every repository polls at `--poll-interval` (default: Odin's
   default, 30 s). It waits until `GET /v1/repos` shows every repository Ready, every further branch Ready and
   followed (`followed_branches`), then measures the server's CPU over `--idle` seconds with nothing pushed
   (default: one poll interval, so every branch's poller has run once: a whole poll cycle with real pollers,
   threads and store).
2. **Pushes.** `--pushes` times, to a repository and a branch chosen at random (`--seed`): a commit that changes the
   pipeline is written into the bare repository, the branch is moved to it just before the webhook (a signed
   GitHub push delivery naming that repository's path, signed with its own secret) is sent, and the store is read
   until the run's first task is running. Measured from just before the webhook is sent to the `run.created` and the
   first `task.status running` events' times in the store (both clocks this machine's). One push at a time: the
   next is sent once the run has finished. With a poll interval of 30 s a poller may find a push before its
   webhook does; such a push is counted and left out of the figures (the run was created before the webhook).

It prints p50/p90/max of both, the answer time of the deliveries, the server's RSS, threads and CPU over the pushes
(and idle), and the load average before and after: on a shared machine the figures move with it.

    .venv/bin/python benchmarks/bench_webhooks_many.py [--repos 500] [--branches 5] [--pushes 50]
        [--poll-interval 30] [--idle 30] [--database-url postgresql+psycopg2://postgres@127.0.0.1/bench]
        [--register-only]

`--register-only` stops after step 1's registrations and prints each `POST /v1/repos`'s time by hundreds registered
before it (p50/p90/max): what following one more repository costs the API request as the number followed grows.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pygit2
import sqlalchemy as sa
from _serving import wait_healthy  # benchmarks/ is the script's own directory, first on sys.path
from bench_webhooks import PAYLOAD, PIPELINE, free_port, percentile
from pygit2.enums import FileMode

from odin.controller.store.tables import EVENTS, RUNS

PASSWORD = "bench-admin-password-0123456789"
FINAL = ("succeeded", "failed", "cancelled", "skipped")


@dataclass
class Followed:
    """One repository the server follows: its bare remote, branches and webhook secret."""

    index: int
    path: Path
    branches: list[str]
    secret: str
    secret_env: str

    @property
    def name(self) -> str:
        return f"r{self.index:04d}"

    def push(self, branch: str, marker: str) -> tuple[str, str]:
        """A commit on `branch` that changes the pipeline, written but not yet on the branch: (old tip, new sha)."""
        repo = pygit2.Repository(str(self.path))
        ref = repo.references[f"refs/heads/{branch}"]
        parent = repo[ref.target].peel(pygit2.Commit)
        index = pygit2.Index()
        index.read_tree(parent.tree)
        text = PIPELINE.format(marker=marker).encode()
        index.add(pygit2.IndexEntry("train/main.yml", repo.create_blob(text), FileMode.BLOB))
        sig = pygit2.Signature("bench", "bench@odin.invalid", int(time.time()), 0)
        sha = repo.create_commit(None, sig, sig, f"push {marker}", index.write_tree(repo), [parent.id])
        return str(parent.id), str(sha)

    def advance(self, branch: str, sha: str) -> None:
        pygit2.Repository(str(self.path)).references[f"refs/heads/{branch}"].set_target(pygit2.Oid(hex=sha))


def make_remote(path: Path, branches: int) -> list[str]:
    """A bare repository with one pipeline and `branches` branches (main, release/1...) at one commit."""
    repo = pygit2.init_repository(str(path), bare=True, initial_head="main")
    pipeline = repo.TreeBuilder()
    pipeline.insert("main.yml", repo.create_blob(PIPELINE.format(marker="seed").encode()), FileMode.BLOB)
    root = repo.TreeBuilder()
    root.insert("train", pipeline.write(), FileMode.TREE)
    sig = pygit2.Signature("bench", "bench@odin.invalid", 1_700_000_000, 0)
    commit = repo.create_commit("refs/heads/main", sig, sig, "seed", root.write(), [])
    names = ["main"]
    for i in range(1, branches):
        repo.references.create(f"refs/heads/release/{i}", commit)
        names.append(f"release/{i}")
    return names


def delivery(template: dict[str, Any], repo: Followed, branch: str, before: str, sha: str, delivery_id: str) -> tuple[
    bytes, dict[str, str]
]:  # fmt: skip
    """A GitHub push delivery naming the repository by its path (what Odin follows), signed with its own secret."""
    body = dict(template["body"])
    body.update(ref=f"refs/heads/{branch}", before=before, after=sha)
    body["repository"] = {**body["repository"], "clone_url": str(repo.path), "ssh_url": None, "html_url": None}
    raw = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(repo.secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {**template["headers"], "X-GitHub-Delivery": delivery_id, "X-Hub-Signature-256": signature}


def register(client: httpx.Client, repos: list[Followed], poll_interval: float) -> list[float]:
    """`POST /v1/repos` for each registered repository; returns the seconds each request took, in order."""
    took: list[float] = []
    for repo in repos:
        body = {
            "name": repo.name,
            "url": str(repo.path),
            "branches": ["main", "release/*"],
            "webhook_secret_ref": f"env:{repo.secret_env}",
            "poll_interval": poll_interval,  # a registration's own (ODIN_POLL_INTERVAL is only ODIN_REPO's)
        }
        started = time.perf_counter()
        res = client.post("/v1/repos", json=body)
        took.append(time.perf_counter() - started)
        if res.status_code != 201:
            raise SystemExit(f"POST /v1/repos {repo.name}: {res.status_code} {res.text}")
    return took


def print_registrations(took: list[float]) -> None:
    """The registrations' total, and each request's time by hundreds registered before it: a request that re-read
    every registration grew with their number, one that touches only its own repository does not."""
    print(f"registered {len(took)} repositories through POST /v1/repos in {sum(took):.1f} s")
    for start in range(0, len(took), 100):
        print(figures(f"POST /v1/repos #{start + 1}-{min(start + 100, len(took))}", took[start : start + 100]))


def not_ready(client: httpx.Client, repos: list[Followed]) -> list[str]:
    """The repositories `GET /v1/repos` does not yet show followed on every branch and Ready, with why."""
    items = {item["url"]: item for item in client.get("/v1/repos").raise_for_status().json()["items"]}
    waiting: list[str] = []
    for repo in repos:
        item = items.get(str(repo.path))
        if item is None:
            waiting.append(f"{repo.name}: not listed")
        elif item["ready"] is not True:
            waiting.append(f"{repo.name}: ready={item['ready']}")
        elif sorted(item["followed_branches"]) != sorted(repo.branches):
            waiting.append(f"{repo.name}: following {item['followed_branches']}")
        else:
            for branch in repo.branches[1:]:
                conds = item["branch_conditions"].get(branch, [])
                if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds):
                    waiting.append(f"{repo.name}@{branch}: not Ready yet")
                    break
    return waiting


def wait_followed(client: httpx.Client, repos: list[Followed], deadline_s: float) -> float:
    started = time.monotonic()
    while True:
        waiting = not_ready(client, repos)
        if not waiting:
            return time.monotonic() - started
        if time.monotonic() - started > deadline_s:
            raise SystemExit(f"{len(waiting)} repositories not ready within {deadline_s:.0f} s: {waiting[:5]}")
        time.sleep(1.0)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass
class Push:
    created_s: float
    started_s: float
    answer_s: float


def one_push(
    client: httpx.Client, db: sa.Engine, template: dict[str, Any], repo: Followed, branch: str, i: int
) -> Push | None:
    """Push, send the webhook, wait for the run's first task and then for the run to finish; None when a poller
    created the run before the webhook was sent."""
    before, sha = repo.push(branch, f"push-{i}")
    raw, headers = delivery(template, repo, branch, before, sha, f"many-{os.getpid()}-{i}")
    repo.advance(branch, sha)
    t0 = datetime.now(UTC)
    sent = time.perf_counter()
    res = client.post("/webhooks/github", content=raw, headers=headers)
    answer = time.perf_counter() - sent
    if res.status_code != 202:
        raise SystemExit(f"push {i} to {repo.name}@{branch}: webhook answered {res.status_code} {res.text}")
    deadline = time.monotonic() + 60
    created: datetime | None = None
    started: datetime | None = None
    status = ""
    while True:
        with db.connect() as conn:
            if created is None:
                created = conn.execute(
                    sa.select(EVENTS.c.time).where(EVENTS.c.kind == "run.created", EVENTS.c.commit_sha == sha).limit(1)
                ).scalar()
            if created is not None and started is None:
                started = conn.execute(
                    sa.select(EVENTS.c.time)
                    .join(RUNS, RUNS.c.id == EVENTS.c.run_id)
                    .where(RUNS.c.commit_sha == sha, EVENTS.c.kind == "task.status")
                    .where(EVENTS.c.data["status"].as_string() == "running")
                    .order_by(EVENTS.c.id)
                    .limit(1)
                ).scalar()
            if started is not None:
                status = conn.execute(sa.select(RUNS.c.status).where(RUNS.c.commit_sha == sha)).scalar() or ""
        if started is not None and status in FINAL:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"push {i} to {repo.name}@{branch}: no finished run within 60 s")
        time.sleep(0.005 if started is None else 0.05)
    assert created is not None
    made = (_utc(created) - t0).total_seconds()
    if made < 0:
        return None
    return Push(made, (_utc(started) - t0).total_seconds(), answer)


def figures(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return f"   {name:<30}: p50 {percentile(ms, 50):7.1f} ms   p90 {percentile(ms, 90):7.1f} ms   max {max(ms):7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repos", type=int, default=500, help="repositories followed, the ODIN_REPO one included")
    parser.add_argument("--branches", type=int, default=5, help="branches of each registered repository")
    parser.add_argument("--pushes", type=int, default=50)
    parser.add_argument("--poll-interval", type=float, default=30.0, help="seconds (Odin's default: 30)")
    parser.add_argument(
        "--idle",
        type=float,
        default=None,
        help="seconds of server CPU measured with no push (default: one poll interval)",
    )
    parser.add_argument(
        "--settle", type=float, default=0.0, help="seconds to let the pollers run before the idle measurement starts"
    )
    parser.add_argument("--ready-timeout", type=float, default=900.0)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--log-level", default="WARNING", help="the server's ODIN_LOG_LEVEL")
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary data directory")
    parser.add_argument(
        "--register-only",
        action="store_true",
        help="stop after the registrations: their total and per-request times, and the load average",
    )
    args = parser.parse_args()
    idle = args.poll_interval if args.idle is None else args.idle
    # SIGTERM (`timeout`, a killed job) runs the clean-up below too: an orphaned server would poll 2,500 branches on
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    tmp = Path(tempfile.mkdtemp(prefix="odin-bench-many-"))
    started = time.perf_counter()
    repos: list[Followed] = []
    for n in range(args.repos):
        path = tmp / "remotes" / f"r{n:04d}.git"
        branches = make_remote(path, 1 if n == 0 else args.branches)  # the ODIN_REPO one follows `main` only
        secret = hashlib.sha256(f"bench-many-{n}".encode()).hexdigest()
        repos.append(Followed(n, path, branches, secret, f"BENCH_WEBHOOK_SECRET_{n:04d}"))
    print(f"{args.repos} bare repositories made in {time.perf_counter() - started:.1f} s")

    port = free_port()
    data_dir = tmp / "state"
    db_url = args.database_url or f"sqlite:///{data_dir / 'odin.db'}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ODIN_")},
        **{r.secret_env: r.secret for r in repos[1:]},
        "ODIN_DATA_DIR": str(data_dir),
        "ODIN_DATABASE_URL": db_url,
        "ODIN_PORT": str(port),
        "ODIN_REPO": str(repos[0].path),
        "ODIN_WEBHOOK_SECRET": repos[0].secret,
        "ODIN_POLL_INTERVAL": str(args.poll_interval),
        "ODIN_ADMIN_PASSWORD": PASSWORD,
        "ODIN_LOG_LEVEL": args.log_level,
    }
    log = (tmp / "server.log").open("wb")
    command = [sys.executable, "-c", "from odin.cli.admin import main; main()", "serve"]
    server = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    db = sa.create_engine(db_url)
    try:
        wait_healthy(url, server, tmp / "server.log")
        token = httpx.post(f"{url}/v1/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=30)
        token.raise_for_status()
        proc = psutil.Process(server.pid)
        print(f"odin serve on {url} (database {'SQLite' if args.database_url is None else args.database_url})")
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"machine: {os.cpu_count()} CPUs, load average {load} before the run; python {sys.version.split()[0]}")
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
            print_registrations(register(client, repos[1:], args.poll_interval))
            if args.register_only:
                print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} after")
                return
            took = wait_followed(client, repos, args.ready_timeout)
        branches = sum(len(r.branches) for r in repos)
        print(
            f"following {args.repos} repositories, {branches} branches (poll interval {args.poll_interval:g} s): "
            f"all Ready {took:.1f} s after the last registration; server RSS "
            f"{proc.memory_info().rss / 2**20:.0f} MiB, {proc.num_threads()} threads"
        )

        time.sleep(args.settle)  # the first cycles after start-up open caches: measure the steady state after them
        cpu0 = sum(proc.cpu_times()[:2])
        time.sleep(idle)  # a measurement window (the pollers' work with nothing pushed), not a wait for something
        idle_cpu = sum(proc.cpu_times()[:2]) - cpu0
        per_cycle = idle_cpu * args.poll_interval / idle
        print(
            f"idle: server CPU {idle_cpu:.2f} s over {idle:g} s ({100 * idle_cpu / idle:.1f}% of one core): "
            f"{per_cycle:.2f} s per poll interval of {args.poll_interval:g} s (target <= 2 s for 500 x 5)"
        )

        template = json.loads(PAYLOAD.read_text())
        rng = random.Random(args.seed)
        pushes: list[Push] = []
        raced = 0
        rss_peak = 0
        cpu0, wall0 = sum(proc.cpu_times()[:2]), time.perf_counter()
        with httpx.Client(base_url=url, timeout=30) as hooks:
            for i in range(args.pushes):
                repo = rng.choice(repos)
                result = one_push(hooks, db, template, repo, rng.choice(repo.branches), i)
                rss_peak = max(rss_peak, proc.memory_info().rss)
                if result is None:
                    raced += 1
                else:
                    pushes.append(result)
        cpu, wall = sum(proc.cpu_times()[:2]) - cpu0, time.perf_counter() - wall0
        print(f"\npush -> run: {len(pushes)} pushes to random repositories and branches, local executor")
        if raced:
            print(f"   ({raced} more found by a poller before their webhook was sent; left out)")
        print(figures("webhook answered", [p.answer_s for p in pushes]))
        print(figures("webhook -> run created", [p.created_s for p in pushes]))
        print(figures("webhook -> first task running", [p.started_s for p in pushes]))
        p50 = percentile([p.created_s * 1000 for p in pushes], 50)
        p90 = percentile([p.created_s * 1000 for p in pushes], 90)
        print(f"   target run created <= 200 ms: p50 {'met' if p50 <= 200 else 'NOT met'}, p90 "
              f"{'met' if p90 <= 200 else 'NOT met'}")  # fmt: skip
        print(
            f"   server: CPU {cpu:.1f} s over {wall:.1f} s of pushes ({100 * cpu / wall:.0f}% of one core), "
            f"RSS {proc.memory_info().rss / 2**20:.0f} MiB (peak sampled {rss_peak / 2**20:.0f} MiB), "
            f"{proc.num_threads()} threads"
        )
        print(f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())} after")
    finally:
        db.dispose()
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
