"""`odin serve` with ODIN_EXECUTOR=kubernetes, killed with SIGKILL mid-run and started again: it rebuilds its state
from the store and the cluster's labels, submits nothing twice, and finishes the run.

A real process, a real kill, a real git repository; the cluster is the fake API server (through a kubeconfig written
for it) or the ODIN_TEST_KUBECONFIG cluster.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from odin.controller.store.db import create_db_engine
from odin.controller.store.runs import RUNS, TASKS
from odin.testing.kube.environment import KubeEnv
from tests.support.git import GitRemote
from tests.support.server import OdinServer
from tests.support.wait import wait_until

pytestmark = [pytest.mark.kube, pytest.mark.slow]

PIPELINE = """\
name: gated
tasks:
  - {name: first, image: busybox:1.36, command: [echo, first]}
  - {name: wait, image: busybox:1.36, command: [sleep, "3600"], depends: first}
  - {name: last, image: busybox:1.36, command: [echo, last], depends: wait}
"""


def test_sigkill_mid_run_then_restart_finishes_without_submitting_twice(
    kube: KubeEnv, git_remote: GitRemote, tmp_path: Path
) -> None:
    git_remote.commit({"hello/main.yml": "name: hello\ntasks:\n  - {name: hi, image: busybox, command: [echo, hi]}\n"})
    env = {
        "ODIN_REPO": git_remote.file_url,
        "ODIN_POLL_INTERVAL": "0.2",
        "ODIN_ADMIN_PASSWORD": "correct-horse-battery",
        "ODIN_EXECUTOR": "kubernetes",
        "ODIN_KUBE_IN_CLUSTER": "false",
        "ODIN_KUBE_CONFIG": str(kube.kubeconfig),
        "ODIN_KUBE_NAMESPACE": kube.namespace,
        "ODIN_KUBE_SCHEDULER_NAME": kube.scheduler_name,
        "NO_PROXY": "*",
        "HTTP_PROXY": "",
        "HTTPS_PROXY": "",
    }
    state = tmp_path / "state"
    db = create_db_engine(f"sqlite:///{state / 'odin.db'}")

    def pod(task: str) -> object:
        pods = kube.core.list_namespaced_pod(kube.namespace, label_selector=f"odin.dev/task={task}").items
        return pods[0] if pods else None

    def run_status() -> str | None:
        with db.connect() as conn:
            row = conn.execute(sa.select(RUNS.c.status).where(RUNS.c.pipeline == "gated")).first()
        return row.status if row else None

    first = OdinServer(state, env).start()
    try:
        wait_until(lambda: "first sync" in first.log(), 30)
        sha = git_remote.commit({"gated/main.yml": PIPELINE})
        kube.kubelet.succeed(wait_until(lambda: pod("first"), 30, message="first pod"))
        waiting = wait_until(lambda: pod("wait"), 30, message="wait pod")
        kube.kubelet.start(waiting)
        wait_until(lambda: run_status() == "running", 10)
    finally:
        first.kill()
    kube.kubelet.succeed(waiting)  # finishes while no Odin is up

    second = OdinServer(state, env).start()  # a fresh port: the old one may be taken meanwhile
    try:
        kube.kubelet.succeed(wait_until(lambda: pod("last"), 60, message=f"last pod ({second.log()[-3000:]})"))
        wait_until(lambda: run_status() == "succeeded", 60, message=lambda: second.log()[-3000:])  # type: ignore[arg-type]
    finally:
        second.stop()
    with db.connect() as conn:
        rows = {r.name: r for r in conn.execute(sa.select(TASKS))}
    db.dispose()
    assert {n: (r.status, r.attempt) for n, r in rows.items() if n in ("first", "wait", "last")} == {
        "first": ("succeeded", 1), "wait": ("succeeded", 1), "last": ("succeeded", 1),
    }  # fmt: skip
    pods = kube.core.list_namespaced_pod(kube.namespace, label_selector=f"odin.dev/commit={sha}").items
    assert sorted(p.metadata.labels["odin.dev/task"] for p in pods) == ["first", "last", "wait"]
    if kube.fake is not None:
        creates = kube.fake.requests.filter(
            verb="create", resource="pods", status=201, predicate=lambda r: r.subresource is None
        )
        assert len(creates) == 3, [r.path for r in creates]
