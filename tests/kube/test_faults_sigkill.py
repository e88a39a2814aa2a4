"""SIGKILL `odin serve` (Kubernetes executor, fake API server) at random points during 20 short runs, restart it each
time: every run finishes, no pod is created twice, no run is lost (issue 14 item 5; the local executor's variant is
tests/e2e/test_faults_sigkill.py).

A task's side effect here is its pod: the fake's request log counts every successful create, so a task submitted
twice (by the killed controller and again by its successor) shows as two creates of its name. Pods keep running and
finish while no Odin is up, as on a cluster. The seed of the kill points is printed; `ODIN_FAULT_SEED` replays it.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from odin.controller.store.db import create_db_engine
from odin.controller.store.runs import RUNS, TASKS
from odin.testing.kube.environment import KubeEnv
from tests.kube.autokubelet import AutoKubelet
from tests.support.git import GitRemote
from tests.support.postgres import scratch_database
from tests.support.seed import fault_seed
from tests.support.server import OdinServer
from tests.support.wait import wait_until

pytestmark = [pytest.mark.kube, pytest.mark.slow]

RUNS_WANTED = 20
KILLS = 5  # at most: kills stop once every run has finished

PIPELINE = """\
name: {name}
tasks:
  - {{name: a, image: busybox:1.36, command: [echo, a]}}
  - {{name: b, image: busybox:1.36, command: [echo, b], depends: a}}
"""


def kube_env(kube: KubeEnv, remote: GitRemote) -> dict[str, str]:
    return {
        "ODIN_REPO": remote.file_url,
        "ODIN_POLL_INTERVAL": "0.5",
        "ODIN_RUN_ON_FIRST_SYNC": "true",
        "ODIN_RETRY_BACKOFF": "0.1",
        "ODIN_MAX_ACTIVE_TASKS": "8",
        "ODIN_EXECUTOR": "kubernetes",
        "ODIN_KUBE_IN_CLUSTER": "false",
        "ODIN_KUBE_CONFIG": str(kube.kubeconfig),
        "ODIN_KUBE_NAMESPACE": kube.namespace,
        "ODIN_KUBE_SCHEDULER_NAME": kube.scheduler_name,
        "NO_PROXY": "*",
        "HTTP_PROXY": "",
        "HTTPS_PROXY": "",
    }


def test_sigkill_at_random_points_submits_no_pod_twice(kube: KubeEnv, tmp_path: Path) -> None:
    fake = kube.require_fake("counts the creates of every pod")
    seed = fault_seed()
    rng = random.Random(seed)
    names = [f"p{i:02d}" for i in range(RUNS_WANTED)]
    remote = GitRemote.create(tmp_path / "repo")
    remote.commit({f"{n}/main.yml": PIPELINE.format(name=n) for n in names})
    state = tmp_path / "state"
    env = kube_env(kube, remote)
    db = create_db_engine(f"sqlite:///{state / 'odin.db'}")

    def statuses() -> dict[str, str]:
        if not (state / "odin.db").exists():
            return {}
        with db.connect() as conn:
            try:
                return {r.pipeline: r.status for r in conn.execute(sa.select(RUNS.c.pipeline, RUNS.c.status))}
            except sa.exc.OperationalError:  # the schema is not there yet
                return {}

    kills: list[str] = []
    context = f"seed {seed}"
    with AutoKubelet(kube, hold=0.5):
        server = OdinServer(state, env).start()
        try:
            while len(kills) < KILLS and set(statuses().values()) != {"succeeded"}:
                delay = rng.uniform(0.3, 2.5)
                time.sleep(delay)  # a random kill point, not a wait for a condition
                kills.append(f"{delay:.2f}s ({sum(s == 'succeeded' for s in statuses().values())} runs done)")
                server.kill()
                server = OdinServer(state, env).start()  # a fresh port: another process may hold the old one
            context = f"seed {seed}, kills after {kills}"
            try:
                wait_until(lambda: len(s := statuses()) == RUNS_WANTED and set(s.values()) == {"succeeded"}, 120)
            except AssertionError as e:
                raise AssertionError(
                    f"not every run succeeded ({context}): {statuses()}\n{server.log()[-4000:]}"
                ) from e
        finally:
            server.stop()
    print(f"kills after {kills}")
    with db.connect() as conn:
        runs = conn.execute(sa.select(RUNS.c.pipeline)).all()
        attempts = {(r.run_id, r.name): r.attempt for r in conn.execute(sa.select(TASKS))}
    db.dispose()
    assert sorted(r.pipeline for r in runs) == names, f"one run per pipeline, none lost ({context})"
    creates = fake.requests.count(verb="create", resource="pods", status=201, predicate=lambda r: r.subresource is None)
    pods = kube.core.list_namespaced_pod(kube.namespace, label_selector="app.kubernetes.io/managed-by=odin").items
    per_task = Counter((p.metadata.labels["odin.dev/run"], p.metadata.labels["odin.dev/task"]) for p in pods)
    assert len(per_task) == 2 * RUNS_WANTED and set(per_task.values()) == {1}, f"one pod per task ({context})"
    assert creates == 2 * RUNS_WANTED, f"each pod created once, never again after a restart ({context}): {creates}"
    # An attempt recorded as starting whose create never reached the API is reported lost and retried (attempt 2,
    # still one pod); the one pod of each task is the attempt the store recorded.
    labels = [p.metadata.labels for p in pods]
    pod_attempts = {(x["odin.dev/run"], x["odin.dev/task"]): int(x["odin.dev/attempt"]) for x in labels}
    assert pod_attempts == attempts, f"each pod is the attempt the store recorded ({context})"


@pytest.mark.postgres
def test_sigkill_of_the_leader_at_random_points_fails_over_without_submitting_twice(
    kube: KubeEnv, tmp_path: Path, postgres_admin_url: str
) -> None:
    """Two replicas on one Postgres, each with a data directory of its own (so the new leader has none of the old
    one's journal): the leader is killed at random points and started again as a follower; the other takes over
    and adopts the pods by their names and labels."""
    fake = kube.require_fake("counts the creates of every pod")
    seed = fault_seed()
    rng = random.Random(seed)
    names = [f"p{i:02d}" for i in range(RUNS_WANTED)]
    remote = GitRemote.create(tmp_path / "repo")
    remote.commit({f"{n}/main.yml": PIPELINE.format(name=n) for n in names})
    kills: list[str] = []
    context = f"seed {seed}"
    with scratch_database(postgres_admin_url) as url, AutoKubelet(kube, hold=1.5):  # longer: two replicas start
        env = {**kube_env(kube, remote), "ODIN_DATABASE_URL": url}
        db = sa.create_engine(url)

        def statuses() -> dict[str, str]:
            with db.connect() as conn:
                try:
                    return {r.pipeline: r.status for r in conn.execute(sa.select(RUNS.c.pipeline, RUNS.c.status))}
                except sa.exc.ProgrammingError:  # the schema is not there yet
                    return {}

        def leader() -> OdinServer | None:
            with db.connect() as conn:
                holder = conn.execute(sa.text("SELECT holder FROM leadership WHERE name = 'scheduler'")).scalar()
            pid = int(str(holder).rsplit(":", 1)[-1]) if holder else None
            return next((s for s in servers if s.proc is not None and s.proc.pid == pid), None)

        servers = [OdinServer(tmp_path / "a", env).start(), OdinServer(tmp_path / "b", env).start()]
        try:
            while len(kills) < KILLS and set(statuses().values()) != {"succeeded"}:
                delay = rng.uniform(0.3, 2.5)
                time.sleep(delay)  # a random kill point, not a wait for a condition
                killed = wait_until(leader, 30, message="a replica leads")
                kills.append(f"{delay:.2f}s ({sum(s == 'succeeded' for s in statuses().values())} runs done)")
                killed.kill()
                servers[servers.index(killed)] = OdinServer(killed.data_dir, env).start()
            context = f"seed {seed}, kills after {kills}"
            try:
                wait_until(lambda: len(s := statuses()) == RUNS_WANTED and set(s.values()) == {"succeeded"}, 120)
            except AssertionError as e:
                logs = "\n".join(s.log()[-3000:] for s in servers)
                raise AssertionError(f"not every run succeeded ({context}): {statuses()}\n{logs}") from e
            with db.connect() as conn:
                attempts = {(r.run_id, r.name): r.attempt for r in conn.execute(sa.select(TASKS))}
        finally:
            for server in servers:
                server.stop()
            db.dispose()
    print(f"kills after {kills}")
    creates = fake.requests.count(verb="create", resource="pods", status=201, predicate=lambda r: r.subresource is None)
    pods = kube.core.list_namespaced_pod(kube.namespace, label_selector="app.kubernetes.io/managed-by=odin").items
    labels = [p.metadata.labels for p in pods]
    assert Counter((x["odin.dev/run"], x["odin.dev/task"]) for x in labels) == Counter(attempts), (
        f"one pod per task ({context})"
    )
    assert creates == 2 * RUNS_WANTED, f"each pod created once, never again by the next leader ({context}): {creates}"
    pod_attempts = {(x["odin.dev/run"], x["odin.dev/task"]): int(x["odin.dev/attempt"]) for x in labels}
    assert pod_attempts == attempts, f"each pod is the attempt the store recorded ({context})"
