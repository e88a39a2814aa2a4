"""The web console's budgets (issue 12) against a real `odin serve` on a seeded store.

Budgets: the run page of a 1,000-task run renders in <= 1 s (served, and in the browser: navigation to the load
event); a page of the commit timeline of 10,000 commits in <= 200 ms (first and deep pages, following the "Older
commits" links); a page with everything it loads weighs <= 500 kB uncompressed (the API docs aside); a task's new
state reaches the run page <= 250 ms after the engine commits it.

What it does: creates a store (SQLite by default, or --db-url), seeds --commits commits (a tenth of them invalid with
problems, each with a run) and one run of --tasks tasks in 10 layers, starts `odin serve` on it (no repository
followed), logs in through the console's form, then times sequential keep-alive GETs, and the run page's first
render in Chromium (Playwright). Then the live update: a second `odin serve` follows a scratch repository whose
pipeline is a chain of --live-tasks short tasks; with its run page open in Chromium, a MutationObserver notes when
each task's badge changes, and each change is compared with the time of the engine's event for it in the store (the
event's `time` is taken inside the engine's transaction, just before it commits: the figure is an upper bound).

    .venv/bin/python benchmarks/bench_console.py [--commits 10000] [--tasks 1000] [--repeat 20] [--live-tasks 20]
        [--db-url URL] [--no-browser]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from odin.controller.store.db import create_db_engine, migrate
from odin.controller.store.tables import COMMITS, REPOSITORIES, RUNS, TASK_RUNS
from tests.support.git import GitRemote
from tests.support.server import OdinServer

PASSWORD = "benchmark-password"


def seed(url: str, commits: int, tasks: int) -> str:
    engine = create_db_engine(url)
    migrate(engine)
    start = datetime.now(UTC) - timedelta(days=100)
    with engine.begin() as conn:
        repo_id = conn.execute(
            sa.insert(REPOSITORIES)
            .values(name="default", url="file:///bench", branch="main", poll_interval=30, run_policy="latest")
            .returning(REPOSITORIES.c.id)
        ).scalar_one()
        rows, runs = [], []
        for i in range(commits):
            sha = f"{i:040x}"
            invalid = i % 10 == 0
            at = start + timedelta(seconds=i * 60)
            problems = (
                [{"file": "p/main.yml", "line": 3, "column": 5, "message": "unknown task 'x'"}] if invalid else []
            )
            rows.append(
                dict(repo_id=repo_id, sha=sha, parents=[], author_name=f"dev{i % 7}", author_email=f"dev{i % 7}@x",
                     message=f"change {i}\n\nbody", seen_at=at, committed_at=at, branch="main",
                     validation="invalid" if invalid else "valid", problems=problems, pipelines_changed=["p"])
            )  # fmt: skip
            if not invalid:
                runs.append(
                    dict(id=f"p-{sha[:7]}-{i}", repo_id=repo_id, pipeline="p", commit_sha=sha, branch="main",
                         trigger="poll", params={}, spec={"name": "p", "tasks": [{"name": "t"}]}, status="succeeded",
                         created_at=at, started_at=at, finished_at=at + timedelta(seconds=30))
                )  # fmt: skip
        conn.execute(sa.insert(COMMITS), rows)
        conn.execute(sa.insert(RUNS), runs)
        names = [f"task-{i:04d}" for i in range(tasks)]
        layer = max(1, tasks // 10)
        spec_tasks = [{"name": n, "depends": [names[i - layer]] if i >= layer else []} for i, n in enumerate(names)]
        big = "big-0000000-1"
        conn.execute(
            sa.insert(RUNS).values(id=big, repo_id=repo_id, pipeline="big", commit_sha=f"{0:040x}", branch="main",
                                   trigger="api", params={"lr": "0.1"}, spec={"name": "big", "tasks": spec_tasks},
                                   status="running", created_at=start, started_at=start)
        )  # fmt: skip
        statuses = ["succeeded", "running", "pending", "failed"]
        conn.execute(
            sa.insert(TASK_RUNS),
            [dict(run_id=big, name=n, status=statuses[i % 4], attempt=1, user_failures=0, infra_failures=0, gpus=[],
                  started_at=start) for i, n in enumerate(names)],
        )  # fmt: skip
    engine.dispose()
    return big


def timed(http: httpx.Client, path: str) -> tuple[float, httpx.Response]:
    t = time.perf_counter()
    res = http.get(path)
    elapsed = time.perf_counter() - t
    assert res.status_code == 200, (path, res.status_code, res.text[:300])
    return elapsed, res


def report(name: str, samples: list[float], budget: float) -> bool:
    samples = sorted(samples)
    p50 = statistics.median(samples)
    p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
    ok = p95 <= budget
    verdict = f"(budget {budget * 1000:.0f} ms: {'ok' if ok else 'OVER'})" if budget != float("inf") else ""
    print(f"{name}: n={len(samples)} p50={p50 * 1000:.0f} ms p95={p95 * 1000:.0f} ms max={samples[-1] * 1000:.0f} ms "
          f"{verdict}")  # fmt: skip
    return ok


CHROMIUM = "/usr/bin/chromium"

# Installed once the page is live: records when each task's badge first shows each status (ms since the epoch).
OBSERVE = """() => {
  window.__seen = {};
  const note = () => {
    const now = performance.timeOrigin + performance.now();
    for (const row of document.querySelectorAll('#tasks tbody tr')) {
      const key = row.id.slice(2) + ' ' + (row.querySelector('.badge')?.textContent ?? '');
      if (!(key in window.__seen)) window.__seen[key] = now;
    }
  };
  note();
  new MutationObserver(note).observe(document.getElementById('tasks'), {subtree: true, childList: true,
                                                                      characterData: true});
}"""


def browser_render(server: OdinServer, run_id: str, repeat: int) -> tuple[list[float], list[float]]:
    """Seconds from navigation to the first contentful paint of the run page (its first render), and to its load
    event (scripts run, the live parts started), in Chromium (warm: after one visit)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page()
        _browser_login(page, server.url)
        paint, load = [], []
        for _ in range(repeat + 1):
            page.goto(f"{server.url}/console/runs/{run_id}", wait_until="load")
            times = page.evaluate(
                """() => ({load: performance.getEntriesByType('navigation')[0].loadEventEnd,
                           paint: performance.getEntriesByName('first-contentful-paint')[0]?.startTime})"""
            )
            paint.append((times["paint"] or times["load"]) / 1000)
            load.append(times["load"] / 1000)
        browser.close()
    return paint[1:], load[1:]


def _browser_login(page: object, url: str) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.goto(f"{url}/console/login")
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/console/commits")


def live_latency(tmp: Path, tasks: int) -> list[float]:
    """Seconds from each task.status event's commit to the run page showing it, for a chain of `tasks` tasks."""
    from playwright.sync_api import sync_playwright

    remote = GitRemote.create(tmp / "remote")
    gate = tmp / "gate"
    lines = ["name: chain", "tasks:"]
    lines.append(f"  - {{name: t000, image: busybox, command: [sh, -c, 'while [ ! -e {gate} ]; do sleep 0.02; done']}}")
    for i in range(1, tasks):
        lines.append(f"  - {{name: t{i:03d}, image: busybox, command: [sh, -c, 'sleep 0.3'], depends: t{i - 1:03d}}}")
    remote.commit({"chain/main.yml": "\n".join(lines) + "\n"}, "add chain")
    env = {
        "ODIN_REPO": remote.file_url,
        "ODIN_DATABASE_URL": f"sqlite:///{tmp}/live.db",
        "ODIN_ADMIN_PASSWORD": PASSWORD,
        "ODIN_LOG_LEVEL": "WARNING",
        "ODIN_POLL_INTERVAL": "0.5",
    }
    with OdinServer(tmp / "live-state", env) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        token = http.post("/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {token}"
        deadline = time.monotonic() + 60
        while True:
            res = http.post("/v1/runs", json={"pipeline": "chain"})
            if res.status_code == 201 or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # the first sync has not seen the pipeline yet
        assert res.status_code == 201, res.text
        run_id = res.json()["id"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
            page = browser.new_page()
            _browser_login(page, server.url)
            page.goto(f"{server.url}/console/runs/{run_id}")
            page.wait_for_selector('#run[data-live="yes"]')
            page.evaluate(OBSERVE)
            watching = time.time()
            gate.touch()
            page.wait_for_selector('#run[data-status="succeeded"]', timeout=tasks * 5_000 + 30_000)
            seen: dict[str, float] = page.evaluate("() => window.__seen")
            browser.close()
        events = http.get(f"/v1/runs/{run_id}/events", params={"limit": 5000}).json()["items"]
    latencies = []
    for e in events:
        if e["kind"] != "task.status" or not e.get("task"):
            continue
        committed = datetime.fromisoformat(e["time"]).timestamp()
        shown = seen.get(f"{e['task']} {e['data'].get('status')}")
        if shown is not None and committed > watching:
            latencies.append(shown / 1000 - committed)
    print(f"live: the earliest change was shown {min(latencies, default=0) * 1000:.1f} ms after its event's time")
    return latencies


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--commits", type=int, default=10_000)
    ap.add_argument("--tasks", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--db-url", default=None)
    ap.add_argument("--live-tasks", type=int, default=20)
    ap.add_argument("--no-browser", action="store_true", help="skip the Chromium measurements")
    args = ap.parse_args()
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    try:
        return measure(args)
    finally:
        print("load average after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


def measure(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db_url or f"sqlite:///{tmp}/bench.db"
        t = time.perf_counter()
        run_id = seed(url, args.commits, args.tasks)
        print(
            f"seeded {args.commits} commits and a {args.tasks}-task run in {time.perf_counter() - t:.1f} s "
            f"({url.split(':')[0]})"
        )
        env = {"ODIN_DATABASE_URL": url, "ODIN_ADMIN_PASSWORD": PASSWORD, "ODIN_LOG_LEVEL": "WARNING"}
        with OdinServer(Path(tmp) / "state", env) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            res = http.post("/console/login", data={"username": "admin", "password": PASSWORD})
            assert res.status_code == 303, res.text
            ok = True
            samples, weight = [], 0
            for _ in range(args.repeat):
                elapsed, page = timed(http, f"/console/runs/{run_id}")
                samples.append(elapsed)
            assets = set(re.findall(r'(?:href|src)="(/console/static/[^"]+)"', page.text))
            weight = len(page.content) + sum(len(http.get(a).content) for a in assets)
            ok &= report(f"run page, {args.tasks} tasks (served)", samples, 1.0)
            for name, path in (
                ("run page, failed tasks only", f"/console/runs/{run_id}?status=failed"),
                ("GET /v1/runs/{id}?tasks=0 (counts only)", f"/v1/runs/{run_id}?tasks=0"),
                ("GET /v1/runs/{id}/tasks (a page of 100)", f"/v1/runs/{run_id}/tasks"),
            ):
                report(name, [timed(http, path)[0] for _ in range(args.repeat)], 1.0)
            print(f"run page weight with its assets: {weight / 1000:.0f} kB (budget 500 kB: "
                  f"{'ok' if weight <= 500_000 else 'OVER'})")  # fmt: skip
            ok &= weight <= 500_000
            samples, path, pages = [], "/console/commits", 0
            while path and pages < args.repeat * 5:
                elapsed, page = timed(http, path)
                samples.append(elapsed)
                pages += 1
                found = re.search(r'href="([^"]+)" rel="next"', page.text)
                path = "/console/commits" + found.group(1).replace("&amp;", "&") if found else ""
            ok &= report(f"commit timeline pages ({args.commits} commits, 50 a page, {pages} pages in order)",
                         samples, 0.2)  # fmt: skip
            samples = [timed(http, "/console/commits?status=invalid&author=dev3")[0] for _ in range(args.repeat)]
            ok &= report("commit timeline, filtered (status + author)", samples, 0.2)
            samples = [
                timed(http, "/console/commits?sha=00000000000000000000000000000000000012")[0]
                for _ in range(args.repeat)
            ]
            ok &= report("commit timeline, SHA prefix search", samples, 0.2)
            if not args.no_browser:
                paint, load = browser_render(server, run_id, args.repeat)
                ok &= report(f"run page, {args.tasks} tasks, in Chromium: first render (first contentful paint)",
                             paint, 1.0)  # fmt: skip
                report(f"run page, {args.tasks} tasks, in Chromium: load event (not budgeted)", load, float("inf"))
        if not args.no_browser:
            samples = live_latency(Path(tmp), args.live_tasks)
            name = f"live task state, engine commit to the run page's DOM ({len(samples)} changes)"
            ok &= report(name, samples, 0.25)
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
