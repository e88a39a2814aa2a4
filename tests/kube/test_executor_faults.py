"""Faults: restarts, 409s, watches that drop or expire, an API that throttles or fails, forbidden namespaces, bad
input. Each must end in a clear task or run status -- never a crash, never a run that hangs silently.

Fault injection needs the fake API server; those tests skip on a real cluster (ODIN_TEST_KUBECONFIG) with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from odin.controller.executors.kubernetes import names
from odin.controller.store.db import transaction
from odin.controller.store.runs import EVENTS, TASKS
from odin.controller.vocabulary import RunStatus
from odin.schema.model import TaskSpec
from odin.testing.kube.environment import KubeEnv
from odin.testing.kube.kubelet import wait_for
from tests.kube.harness import KubeHarness, pipeline, sqlite_harness, task

pytestmark = pytest.mark.kube


@pytest.fixture
def h(kube: KubeEnv, tmp_path: Path) -> Iterator[KubeHarness]:
    yield from sqlite_harness(kube, tmp_path)


def created(kube: KubeEnv, resource: str = "pods") -> int:
    """Successful creates of `resource` the executor made (the fake's request log)."""
    assert kube.fake is not None
    return kube.fake.requests.count(
        verb="create", resource=resource, status=201, predicate=lambda r: r.subresource is None
    )


def adoptable_pod(h: KubeHarness, run_id: str, task: str = "t", attempt: int = 1) -> dict[str, object]:
    """The pod a previous controller created for this attempt: its name and Odin's labels."""
    pod = h.kube.pod_manifest(names.attempt_name(run_id, task, attempt))
    pod["metadata"]["labels"] = {
        "app.kubernetes.io/managed-by": "odin", "odin.dev/instance": "default", "odin.dev/run": run_id,
        "odin.dev/task": task, "odin.dev/attempt": str(attempt),
    }  # fmt: skip
    return pod


# -- idempotence ---------------------------------------------------------------------------------------------------
def test_a_create_that_meets_409_adopts_the_existing_object(kube: KubeEnv, h: KubeHarness) -> None:
    fake = kube.require_fake("counts requests")
    h.start()
    h.stop()  # only to learn nothing; the run below is created while no engine runs
    run_id = h.create(pipeline(task("t")))
    name = names.attempt_name(run_id, "t", 1)
    # The object already exists (a previous controller created it and died before recording anything).
    existing = kube.pod_manifest(name)
    existing["metadata"]["labels"] = {
        "app.kubernetes.io/managed-by": "odin", "odin.dev/instance": "default", "odin.dev/run": run_id,
        "odin.dev/task": "t", "odin.dev/attempt": "1",
    }  # fmt: skip
    kube.core.create_namespaced_pod(kube.namespace, existing)
    fake.requests.reset()
    h.start()
    wait_for(lambda: fake.requests.count(verb="create", resource="pods", status=409) == 1, 10)
    kube.kubelet.succeed(name)
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    assert created(kube) == 0


def test_a_foreign_object_with_the_same_name_fails_the_task(kube: KubeEnv, h: KubeHarness) -> None:
    h.start()
    h.stop()
    run_id = h.create(pipeline(task("t")))
    kube.core.create_namespaced_pod(kube.namespace, kube.pod_manifest(names.attempt_name(run_id, "t", 1)))
    h.start()
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, "t")
    assert (row.reason, row.failure) == ("NameTaken", "permanent")


# -- restarts -------------------------------------------------------------------------------------------------------
def test_a_restart_adopts_what_ran_meanwhile_and_submits_nothing_twice(kube: KubeEnv, h: KubeHarness) -> None:
    kube.require_fake("counts create requests")
    h.start()
    run_id = h.create(pipeline(task("done-while-down"), task("still-running"), task("gone-while-down", retries=0),
                               task("after", depends=("done-while-down", "still-running"))))  # fmt: skip
    pods = {name: h.wait_pod(run_id, name) for name in ("done-while-down", "still-running", "gone-while-down")}
    for pod in pods.values():
        kube.kubelet.start(pod)
    for name in pods:
        h.wait_task(run_id, name, "running")
    h.stop()  # the controller dies; the cluster carries on
    kube.kubelet.succeed(pods["done-while-down"])
    kube.core.delete_namespaced_pod(pods["gone-while-down"].metadata.name, kube.namespace)

    h.start()
    h.wait_task(run_id, "done-while-down", "succeeded")
    retry = h.wait_pod(run_id, "gone-while-down", 2)  # lost (INFRA), retried
    row = h.task_row(run_id, "gone-while-down")
    assert (row.infra_failures, row.user_failures) == (1, 0)
    kube.kubelet.succeed(retry)
    kube.kubelet.succeed(pods["still-running"])
    kube.kubelet.succeed(h.wait_pod(run_id, "after"))
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    assert created(kube) == 5  # 3 first attempts, 1 retry of the lost one, 1 dependent: each exactly once


def test_a_create_interrupted_by_the_restart_is_sent_again_from_the_journal(kube: KubeEnv, h: KubeHarness) -> None:
    fake = kube.require_fake("blocks creates")
    outage = fake.faults.server_errors(status=503, verb="create", resource="pods")
    h.start()
    run_id = h.create(pipeline(task("t")))
    journal = h.data_dir / "kube" / "pending" / run_id / "t.1.json"
    wait_for(journal.exists, 10, message="the create was not journaled")
    h.stop()  # mid-retry: the engine recorded STARTING, the apiserver never took the pod
    fake.faults.remove(outage)
    assert h.task_row(run_id, "t").status == "starting"
    h.start()
    pod = h.wait_pod(run_id, "t")
    kube.kubelet.succeed(pod)
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    assert created(kube) == 1 and not journal.exists()
    assert h.task_row(run_id, "t").attempt == 1  # the same attempt, not a retry


def test_an_attempt_never_submitted_is_submitted_again_under_its_own_name(kube: KubeEnv, h: KubeHarness) -> None:
    """The controller died right after recording STARTING, before any journal entry: the engine rebuilds the launch
    and the executor creates it under the attempt's own name -- the same attempt, no INFRA retry (issue 15 item 4)."""
    h.start()
    h.stop()
    run_id = h.create(pipeline(task("t")))
    with transaction(h.db) as conn:  # what the store holds when the controller died right after recording STARTING
        conn.execute(sa.update(TASKS).where(TASKS.c.run_id == run_id).values(status="starting", attempt=1))
        conn.execute(sa.text("UPDATE runs SET status = 'running' WHERE id = :id"), {"id": run_id})
    h.start()
    kube.kubelet.succeed(h.wait_pod(run_id, "t", attempt=1))
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    row = h.task_row(run_id, "t")
    assert (row.attempt, row.infra_failures) == (1, 0)
    if kube.fake is not None:
        assert created(kube) == 1


def test_a_failover_submits_an_interrupted_create_again_without_the_old_journal(
    kube: KubeEnv, h: KubeHarness, tmp_path: Path
) -> None:
    """Two replicas share no disk: the new leader has none of the old one's `kube/pending/` journal. A create cut
    short (the apiserver never took it) is rebuilt from the store and sent again as the same attempt -- not reported
    lost -- and one that did reach the apiserver meets 409 and is adopted: either way, one pod per attempt."""
    fake = kube.require_fake("blocks creates")
    outage = fake.faults.server_errors(status=503, verb="create", resource="pods")
    h.start()
    cut_short = h.create(pipeline(task("t")))
    wait_for((h.data_dir / "kube" / "pending" / cut_short / "t.1.json").exists, 10, message="not journaled")
    h.stop()  # the leader dies mid-retry: STARTING in the store, nothing in the cluster
    fake.faults.remove(outage)
    reached = h.create(pipeline(task("t")))
    with transaction(h.db) as conn:  # the old leader created this one and died before the store heard back
        conn.execute(sa.update(TASKS).where(TASKS.c.run_id == reached).values(status="starting", attempt=1))
        conn.execute(sa.text("UPDATE runs SET status = 'running' WHERE id = :id"), {"id": reached})
    kube.core.create_namespaced_pod(kube.namespace, adoptable_pod(h, reached))
    h.start(data_dir=tmp_path / "other-replica")
    for run_id in (cut_short, reached):
        kube.kubelet.succeed(h.wait_pod(run_id, "t", attempt=1))
        assert h.wait(run_id) == RunStatus.SUCCEEDED
        row = h.task_row(run_id, "t")
        assert (row.attempt, row.infra_failures) == (1, 0), run_id
    assert created(kube) == 2  # the test's own, and the rebuilt one
    assert fake.requests.count(verb="create", resource="pods", status=409) == 0  # adopted from the list, no create


# -- watches --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("abrupt", [False, True])
def test_dropped_watches_reconnect_and_miss_nothing(kube: KubeEnv, h: KubeHarness, abrupt: bool) -> None:
    fake = kube.require_fake("drops watch streams")
    h.start()
    run_id = h.create(pipeline(task("a"), task("b", depends=("a",))))
    pod = h.wait_pod(run_id, "a")
    fake.wait_for_watches(1)
    fake.drop_watches(abrupt=abrupt)
    kube.kubelet.succeed(pod)  # possibly while no watch is connected
    fake.drop_watches(abrupt=abrupt)
    kube.kubelet.succeed(h.wait_pod(run_id, "b"))
    assert h.wait(run_id) == RunStatus.SUCCEEDED


def test_410_gone_relists_and_sees_what_changed_meanwhile(kube: KubeEnv, h: KubeHarness) -> None:
    fake = kube.require_fake("expires watch history")
    h.start()
    run_id = h.create(pipeline(task("a"), task("b")))
    pod_a, pod_b = h.wait_pod(run_id, "a"), h.wait_pod(run_id, "b")
    fake.wait_for_watches(1)
    watches_down = fake.faults.server_errors(status=500, verb="watch")
    fake.drop_watches()
    kube.kubelet.succeed(pod_a)
    kube.core.delete_namespaced_pod(pod_b.metadata.name, kube.namespace)  # a deletion only a re-list can reveal
    fake.expire_history()
    fake.faults.remove(watches_down)
    h.wait_task(run_id, "a", "succeeded")
    retry = h.wait_pod(run_id, "b", attempt=2)  # the deletion was seen (INFRA: retried)
    assert (h.task_row(run_id, "b").infra_failures, h.task_row(run_id, "b").user_failures) == (1, 0)
    kube.kubelet.succeed(retry)
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    assert fake.requests.count(verb="list", resource="pods") >= 2  # the first list, and the one after 410


# -- the API misbehaving ----------------------------------------------------------------------------------------------
def test_an_api_answering_500_for_a_while_delays_but_does_not_fail(kube: KubeEnv, h: KubeHarness) -> None:
    fake = kube.require_fake("injects 500s")
    h.start()
    fake.faults.server_errors(status=500, duration=1.5)
    run_id = h.create(pipeline(task("a")))
    h.succeed(h.wait_pod(run_id, "a", timeout=20))
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    assert fake.requests.count(status=500) > 0


def test_an_api_down_past_the_retry_deadline_fails_the_attempt_as_infrastructure(kube: KubeEnv, h: KubeHarness) -> None:
    fake = kube.require_fake("injects 503s")
    outage = fake.faults.server_errors(status=503, verb="create", resource="pods")
    h.start(api_retry_deadline=0.5)
    run_id = h.create(pipeline(task("a")))
    wait_for(lambda: h.task_row(run_id, "a").infra_failures >= 1, 20)
    # The failure as recorded when it happened (the row itself may already be on its next attempt).
    with h.db.connect() as conn:
        recorded = [
            dict(r.data)
            for r in conn.execute(
                sa.select(EVENTS.c.data).where(
                    EVENTS.c.run_id == run_id, EVENTS.c.task == "a", EVENTS.c.kind == "task.status"
                )
            )
        ]
    assert any(
        e.get("reason") == "ApiUnavailable" and "still failing after" in str(e.get("message")) for e in recorded
    ), recorded
    fake.faults.remove(outage)
    row = h.task_row(run_id, "a")
    kube.kubelet.succeed(h.wait_pod(run_id, "a", attempt=row.attempt + 1 if row.status == "retrying" else row.attempt))
    assert h.wait(run_id) == RunStatus.SUCCEEDED


def test_429_honours_retry_after_for_creates(kube: KubeEnv, h: KubeHarness) -> None:
    fake = kube.require_fake("throttles")
    fake.faults.throttle(times=2, retry_after=1, verb="create", resource="pods")
    h.start()
    run_id = h.create(pipeline(task("a")))
    kube.kubelet.succeed(h.wait_pod(run_id, "a"))
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    tries = fake.requests.filter(verb="create", resource="pods", predicate=lambda r: r.subresource is None)
    assert [r.status for r in tries] == [429, 429, 201]
    assert tries[1].time - tries[0].time >= 0.95 and tries[2].time - tries[1].time >= 0.95


def test_a_forbidden_namespace_fails_the_run_with_the_reason(kube: KubeEnv, h: KubeHarness) -> None:
    fake = kube.require_fake("forbids a namespace")
    fake.faults.forbid_namespace(kube.namespace)
    h.start()
    run_id = h.create(pipeline(task("a", retries=3), task("b")))
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, "a")
    assert (row.reason, row.failure, row.attempt) == ("Forbidden", "permanent", 1)
    assert "is forbidden" in row.message and "deploy/base/rbac.yaml" in row.message


def test_a_missing_namespace_fails_the_run(kube: KubeEnv, h: KubeHarness) -> None:
    h.start(pipeline_namespaces={"p": "odin-no-such-namespace"})
    run_id = h.create(pipeline(task("a")))
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, "a")
    assert (row.reason, row.failure) == ("NotFound", "permanent") and "odin-no-such-namespace" in row.message


# -- bad input the schema would reject (specs frozen by an older Odin, or built by hand) -----------------------------
@pytest.mark.parametrize(
    ("spec", "reason", "fragment"),
    [
        (TaskSpec(name="t", image="x", command=("true",), resource_type="RayJob"), "UnknownResourceType",
         "unknown resource_type 'RayJob'; known: Pod, Job, PyTorchJob"),
        (TaskSpec(name="t", image="x", command=("true",), num_workers=4), "InvalidTask",
         "num_workers: 4 needs a distributed resource_type"),
        (TaskSpec(name="t", image="x", command=("true",), resource_type="Job", num_workers=2), "InvalidTask",
         "a Job runs one worker"),
    ],
)  # fmt: skip
def test_bad_tasks_fail_permanently_with_a_clear_reason(
    kube: KubeEnv, h: KubeHarness, spec: TaskSpec, reason: str, fragment: str
) -> None:
    h.start()
    run_id = h.create(pipeline(spec, task("fine")))
    kube.kubelet.succeed(h.wait_pod(run_id, "fine"))
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, spec.name)
    assert (row.reason, row.failure, row.attempt) == (reason, "permanent", 1)
    assert fragment in row.message


def test_a_name_the_schema_would_refuse_still_gets_a_valid_object_name(kube: KubeEnv, h: KubeHarness) -> None:
    h.start()
    run_id = h.create(pipeline(TaskSpec(name="Train_Model", image="x", command=("true",))))
    pod = h.wait_pod(run_id, "Train_Model")
    assert names.is_dns1035(pod.metadata.name) and pod.metadata.name.startswith(f"{run_id}-train-model-1-")
    kube.kubelet.succeed(pod)
    assert h.wait(run_id) == RunStatus.SUCCEEDED


def test_a_crd_the_cluster_does_not_serve(kube: KubeEnv, h: KubeHarness) -> None:
    fake = kube.require_fake("serves no kubeflow.org for this request")
    fake.faults.add(
        404, resource="pytorchjobs", verb="create", message="the server could not find the requested resource"
    )
    h.start()
    run_id = h.create(pipeline(task("ddp", resource_type="PyTorchJob", num_workers=2)))
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, "ddp")
    assert (row.reason, row.failure) == ("NotFound", "permanent")
    assert "could not find the requested resource" in row.message


def test_an_operator_that_never_answers(kube: KubeEnv, h: KubeHarness) -> None:
    fake = kube.require_fake("needs a cluster without the training operator")
    fake.controllers.kubeflow = False
    h.start(operator_deadline=0.5)
    run_id = h.create(pipeline(task("ddp", resource_type="TFJob", num_workers=2)))
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, "ddp")
    assert (row.reason, row.failure) == ("NoController", "permanent")
    assert "is its operator installed" in row.message
