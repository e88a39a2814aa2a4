"""What admission refuses, through the executor: an exhausted ResourceQuota is a wait, not a failure; a missing
ServiceAccount and an RBAC denial are permanent, each saying what to fix (issue 14, item 2).

The quota is a real ResourceQuota object that the API server counts pods against (the fake as the quota controller
does: a pod that ends frees its slot), so the quota and ServiceAccount tests run on a real cluster too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from odin.controller.executors.kubernetes.errors import Forbidden, KubeApiError, QuotaExceeded, translate
from odin.controller.executors.kubernetes.tracking import outcome_detail
from odin.controller.store.db import create_db_engine, migrate
from odin.controller.store.runs import EVENTS
from odin.controller.vocabulary import WAITING_FOR_QUOTA, Failure, Observation, RunStatus, TaskStatus
from odin.testing.kube.environment import KubeEnv
from odin.testing.kube.kubelet import wait_for
from tests.kube.harness import KubeHarness, pipeline, task

pytestmark = pytest.mark.kube


@pytest.fixture
def h(kube: KubeEnv, tmp_path: Path) -> Iterator[KubeHarness]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'odin.db'}")
    migrate(engine)
    harness = KubeHarness(kube, engine, tmp_path)
    yield harness
    harness.stop()
    engine.dispose()


def one_pod_quota(kube: KubeEnv) -> None:
    kube.core.create_namespaced_resource_quota(
        kube.namespace, {"metadata": {"name": "one-pod"}, "spec": {"hard": {"pods": "1"}}}
    )


def task_events(h: KubeHarness, run_id: str, name: str) -> list[dict[str, Any]]:
    with h.db.connect() as conn:
        rows = conn.execute(
            sa.select(EVENTS.c.data)
            .where(EVENTS.c.run_id == run_id, EVENTS.c.task == name, EVENTS.c.kind == "task.status")
            .order_by(EVENTS.c.id)
        ).all()
    return [dict(r.data) for r in rows]


def test_a_task_over_the_quota_waits_for_a_slot_then_runs(h: KubeHarness) -> None:
    kube = h.kube
    one_pod_quota(kube)
    h.start()
    run_id = h.create(pipeline(task("a"), task("b")))
    [first] = h.wait_pods(f"odin.dev/run={run_id}", 1)
    running = first.metadata.labels["odin.dev/task"]
    waiting = "b" if running == "a" else "a"
    row = h.wait_task(run_id, waiting, "starting")
    row = wait_for(lambda: r if (r := h.task_row(run_id, waiting)).reason == WAITING_FOR_QUOTA else None, 20)
    assert row.message.startswith("waiting for quota: ") and "exceeded quota: one-pod" in row.message
    assert row.failure is None and row.attempt == 1
    [note] = [e for e in task_events(h, run_id, waiting) if e.get("reason") == WAITING_FOR_QUOTA]
    assert note["status"] == "starting" and note["message"] == row.message

    h.succeed(first)  # frees the slot: the waiting task's create goes through on its next try
    second = h.wait_pod(run_id, waiting)
    h.kube.kubelet.start(second)
    row = h.wait_task(run_id, waiting, "running")
    assert row.reason is None and row.message is None  # the note goes once the task runs
    h.succeed(second)
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    rows = h.tasks(run_id)
    assert {(r.status, r.attempt, r.infra_failures) for r in rows.values()} == {("succeeded", 1, 0)}


def test_cancelling_a_run_ends_a_wait_for_quota_at_once(h: KubeHarness) -> None:
    kube = h.kube
    one_pod_quota(kube)
    engine = h.start()
    run_id = h.create(pipeline(task("a"), task("b")))
    [first] = h.wait_pods(f"odin.dev/run={run_id}", 1)
    waiting = "b" if first.metadata.labels["odin.dev/task"] == "a" else "a"
    wait_for(lambda: h.task_row(run_id, waiting).reason == WAITING_FOR_QUOTA, 20)
    assert engine.cancel(run_id)
    assert h.wait(run_id, timeout=20) == RunStatus.CANCELLED
    assert h.task_row(run_id, waiting).status in ("cancelled", "skipped")
    assert len(h.pods(f"odin.dev/run={run_id},odin.dev/task={waiting}")) == 0


def test_a_missing_service_account_fails_the_task_for_good_and_names_it(h: KubeHarness) -> None:
    h.start(service_account="trainer")
    run_id = h.create(pipeline(task("a", retries=3)))
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, "a")
    assert (row.reason, row.failure, row.attempt) == ("ServiceAccountNotFound", "permanent", 1)
    assert 'serviceaccount "trainer" not found' in row.message
    assert f"create that ServiceAccount in namespace {h.kube.namespace}" in row.message
    assert "rbac.yaml" not in row.message


def test_an_rbac_denial_stays_permanent_beside_a_quota(kube: KubeEnv, h: KubeHarness) -> None:
    fake = kube.require_fake("denies pod creation as RBAC would")
    one_pod_quota(kube)
    fake.faults.add(403, verb="create", resource="pods")
    h.start()
    run_id = h.create(pipeline(task("a", retries=3)))
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, "a")
    assert (row.reason, row.failure, row.attempt) == ("Forbidden", "permanent", 1)
    assert "deploy/base/rbac.yaml" in row.message and "quota" not in row.message


@pytest.mark.parametrize(
    ("message", "kind", "reason", "failure"),
    [
        ('pods "x" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=1, limited: pods=1',
         QuotaExceeded, "QuotaExceeded", Failure.INFRA),
        ('pods "x" is forbidden: status unknown for quota: compute, resources: pods', QuotaExceeded, "QuotaExceeded",
         Failure.INFRA),
        ('pods "x" is forbidden: failed quota: compute: must specify limits.cpu', Forbidden, "Forbidden",
         Failure.PERMANENT),
        ('pods "x" is forbidden: error looking up service account ns/trainer: serviceaccount "trainer" not found',
         Forbidden, "ServiceAccountNotFound", Failure.PERMANENT),
        ('pods is forbidden: User "system:serviceaccount:odin:odin" cannot create resource "pods"', Forbidden,
         "Forbidden", Failure.PERMANENT),
    ],
)  # fmt: skip
def test_a_403_is_told_apart_by_what_admission_said(
    message: str, kind: type[KubeApiError], reason: str, failure: Failure
) -> None:
    body = json.dumps({"kind": "Status", "status": "Failure", "reason": "Forbidden", "code": 403, "message": message})
    error = translate(403, body, "create Pod ns/x")
    assert (type(error), error.reason, error.failure) == (kind, reason, failure)


def test_a_success_is_logged_without_a_none() -> None:
    done = Observation("r", "t", 1, TaskStatus.SUCCEEDED, reason="Completed")
    assert outcome_detail(done) == " (Completed)"
    failed = Observation("r", "t", 1, TaskStatus.FAILED, reason="Error", message="exit code 1")
    assert outcome_detail(failed) == " (Error: exit code 1)"
