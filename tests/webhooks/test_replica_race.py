"""Two `odin serve` replicas on one Postgres, racing on 20 concurrent pushes whose webhooks are delivered to both:
exactly one run per (repository, commit, pipeline), every delivery recorded once (issue 14 item 5).

Real processes (as deployed: two pods behind one Service, a provider that retries to whichever answers), a real
git remote and real Postgres. The replicas start together, so they also race for the leadership. Pushes follow each
other on one branch without waiting for the previous one's run; a sync that finds several new commits runs the tip
and records the others as absorbed, so not every commit gets a run of its own: what must never happen is a second
run for a (commit, pipeline), or a push whose tip is never looked at.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from odin.controller.store.models import COMMITS, RUNS, WEBHOOK_DELIVERIES
from tests.support.git import GitRemote
from tests.support.postgres import scratch_database
from tests.support.server import OdinServer
from tests.support.wait import wait_until
from tests.webhooks.support import ALIASES, HELLO, SECRET, load, point_at, signed

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

PUSHES = 20
PIPELINES = ("train", "hello")


@pytest.fixture
def two_replicas(tmp_path: Path, postgres_admin_url: str) -> Iterator[tuple[GitRemote, sa.Engine, list[OdinServer]]]:
    remote = GitRemote.create(tmp_path / "repo")
    remote.commit({f"{p}/main.yml": HELLO.format(name=p, marker="start") for p in PIPELINES})
    with scratch_database(postgres_admin_url) as url:
        env = {
            "ODIN_DATABASE_URL": url,
            "ODIN_REPO": remote.url,
            "ODIN_REPO_ALIASES": ",".join(ALIASES),
            "ODIN_WEBHOOK_SECRET": SECRET,
            "ODIN_POLL_INTERVAL": "3600",  # only the webhooks (and the first sync) look at the remote
            "ODIN_RETRY_BACKOFF": "0.1",
        }
        servers = [OdinServer(tmp_path / name, env) for name in ("a", "b")]
        db = sa.create_engine(url)
        try:
            starting = [threading.Thread(target=s.start) for s in servers]
            for thread in starting:
                thread.start()
            for thread in starting:
                thread.join(90)
            for server in servers:
                server.wait_healthy(30, interval=0.1)
            yield remote, db, servers
        finally:
            for server in servers:
                server.stop()
            db.dispose()


def test_concurrent_pushes_to_both_replicas_make_one_run_per_commit_and_pipeline(
    two_replicas: tuple[GitRemote, sa.Engine, list[OdinServer]],
) -> None:
    remote, db, servers = two_replicas
    answers: list[Future[httpx.Response]] = []
    shas: list[str] = []

    def post(url: str, raw: bytes, headers: dict[str, str]) -> httpx.Response:
        with httpx.Client(base_url=url, timeout=60) as client:
            return client.post("/webhooks/github", content=raw, headers=headers)

    with ThreadPoolExecutor(2 * PUSHES) as pool:
        for i in range(PUSHES):
            before = remote.head
            changed = PIPELINES[i % 2] if i % 3 else None  # every third push changes both pipelines
            names = PIPELINES if changed is None else (changed,)
            sha = remote.commit({f"{p}/main.yml": HELLO.format(name=p, marker=f"push-{i}") for p in names})
            shas.append(sha)
            delivery = point_at("github", load("github", "push"), after=sha, before=before)
            delivery.headers["X-GitHub-Delivery"] = f"push-{i}"
            raw, headers = signed("github", delivery)
            answers.extend(pool.submit(post, s.url, raw, headers) for s in servers)  # the same delivery, to both
        codes = [a.result().status_code for a in answers]
    assert sorted(set(codes)) <= [200, 202], [a.result().text for a in answers if a.result().status_code >= 300]
    assert codes.count(202) == PUSHES, "each delivery accepted once; its copy at the other replica is a duplicate"

    def seen() -> set[str]:
        with db.connect() as conn:
            return {r.sha for r in conn.execute(sa.select(COMMITS.c.sha))}

    wait_until(lambda: set(shas) <= seen(), 60, interval=0.2, message="every pushed commit is recorded")
    wait_until(lambda: _runs(db, shas[-1]), 30, interval=0.2, message="the last push's tip runs")
    with db.connect() as conn:
        runs = conn.execute(sa.select(RUNS.c.commit_sha, RUNS.c.pipeline, RUNS.c.repo_id)).all()
        deliveries = conn.execute(sa.select(WEBHOOK_DELIVERIES.c.delivery_id)).all()
    per_key = Counter((r.repo_id, r.commit_sha, r.pipeline) for r in runs)
    assert [k for k, n in per_key.items() if n > 1] == [], "exactly one run per (repository, commit, pipeline)"
    with db.connect() as conn:
        absorbed = {r.sha for r in conn.execute(sa.select(COMMITS.c.sha).where(COMMITS.c.absorbed_by.is_not(None)))}
    ran = {r.commit_sha for r in runs}
    assert [s for s in shas if s not in ran | absorbed] == [], "every push ran, or is covered by a later tip's runs"
    assert sorted(str(d.delivery_id) for d in deliveries) == sorted(f"push-{i}" for i in range(PUSHES))
    leading = [s for s in servers if "this replica is the leader" in s.log()]
    assert len(leading) == 1, "one replica led throughout"
    print(f"{len(runs)} runs for {PUSHES} pushes ({len(seen())} commits recorded)")


def _runs(db: sa.Engine, sha: str) -> list[sa.Row[tuple[str]]]:
    with db.connect() as conn:
        return list(conn.execute(sa.select(RUNS.c.pipeline).where(RUNS.c.commit_sha == sha)))
