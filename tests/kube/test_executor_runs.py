"""Runs end to end: the real engine and store, the Kubernetes executor, pods moved by the fake kubelet through the API.

The same module runs against a real cluster with ODIN_TEST_KUBECONFIG: tests that need the fake (log text, the
simulated operators, fault injection) say so and skip there.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine as DbEngine

from odin.controller.executors.kubernetes import Deadlines
from odin.controller.store.runs import EVENTS
from odin.controller.vocabulary import RunStatus
from odin.testing.kube.environment import KubeEnv
from odin.testing.kube.kubelet import wait_for
from tests.kube.harness import COMMIT, TREE, KubeHarness, pipeline, require_crd, task

pytestmark = pytest.mark.kube


@pytest.fixture
def harness(kube: KubeEnv, db: DbEngine, tmp_path: Path) -> Iterator[KubeHarness]:
    h = KubeHarness(kube, db, tmp_path)
    yield h
    h.stop()


@pytest.fixture(params=["sqlite"])
def sqlite_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DbEngine]:
    from odin.controller.store.db import create_db_engine, migrate

    engine = create_db_engine(f"sqlite:///{tmp_path / 'odin.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def h(kube: KubeEnv, sqlite_db: DbEngine, tmp_path: Path) -> Iterator[KubeHarness]:
    """The harness on SQLite only: the Kubernetes matrix does not need both stores (the DAG test runs on both)."""
    harness = KubeHarness(kube, sqlite_db, tmp_path)
    yield harness
    harness.stop()


def retry_reasons(h: KubeHarness, run_id: str, name: str) -> list[str]:
    """The reasons of a task's `retrying` events, in order."""
    with h.db.connect() as conn:
        rows = conn.execute(
            sa.select(EVENTS.c.data)
            .where(EVENTS.c.run_id == run_id, EVENTS.c.task == name, EVENTS.c.kind == "task.status")
            .order_by(EVENTS.c.id)
        ).all()
    return [r.data["reason"] for r in rows if r.data.get("status") == "retrying"]


def labels_of(pod: Any) -> dict[str, str]:
    return dict(pod.metadata.labels or {})


def test_a_dag_of_pods_and_jobs_runs_with_the_commits_files_and_provenance(harness: KubeHarness) -> None:
    kube = harness.kube
    harness.start()
    run_id = harness.create(
        pipeline(
            task("prepare", "python ${WORK_PATH}/train.py > ${RUN_PATH}/data", env={"SEED": "7"}),
            task("train", "echo train", depends=("prepare",), resource_type="Job"),
            task("evaluate", "echo eval", depends=("train",)),
        ),
        pipeline_path="vision/resnet",
    )
    prepare = harness.wait_pod(run_id, "prepare")
    assert len(harness.pods(f"odin.dev/commit={COMMIT}")) == 1  # the other tasks wait for it
    labels = labels_of(prepare)
    assert labels["odin.dev/run"] == run_id and labels["odin.dev/commit"] == COMMIT
    assert labels["odin.dev/pipeline"] == "vision.resnet" and labels["app.kubernetes.io/managed-by"] == "odin"
    annotations = dict(prepare.metadata.annotations)
    assert annotations["odin.dev/repo-url"] == "https://git.example.com/ml/pipelines.git"
    assert annotations["odin.dev/trigger"] == "manual" and annotations["odin.dev/tree"] == TREE
    container = prepare.spec.containers[0]
    assert container.command == ["sh", "-c", "python /odin/work/train.py > /odin/run/data"]
    env = {e.name: e.value for e in container.env}
    assert (env["SEED"], env["ODIN_RUN"], env["ODIN_TASK"], env["ODIN_COMMIT_SHA"], env["ODIN_PIPELINE"]) == (
        "7", run_id, "prepare", COMMIT, "vision/resnet",
    )  # fmt: skip
    # ${WORK_PATH}: the run's files, in immutable ConfigMaps, mounted where the projection puts them back.
    [cm] = kube.core.list_namespaced_config_map(kube.namespace, label_selector=f"odin.dev/run={run_id}").items
    assert cm.immutable is True and cm.metadata.annotations["odin.dev/tree"] == TREE
    assert sorted(cm.data.values()) == ["#!/bin/sh\necho run\n", "lr: 0.1\n", "print('training')\n"]
    [work] = [v for v in prepare.spec.volumes if v.name == "odin-work"]
    paths = {i.path: i.mode for i in work.projected.sources[0].config_map.items}
    assert paths == {"train.py": 0o444, "configs/base.yml": 0o444, "run.sh": 0o555}

    kube.kubelet.start(prepare)
    harness.wait_task(run_id, "prepare", "running")
    kube.kubelet.succeed(prepare)
    job_pod = harness.wait_pod(run_id, "train")
    assert any(ref.kind == "Job" for ref in job_pod.metadata.owner_references)
    kube.kubelet.succeed(job_pod)
    kube.kubelet.succeed(harness.wait_pod(run_id, "evaluate"))
    assert harness.wait(run_id) == RunStatus.SUCCEEDED

    rows = harness.tasks(run_id)
    assert {r.status for r in rows.values()} == {"succeeded"}
    assert (rows["prepare"].resource_kind, rows["prepare"].resource_name) == ("Pod", f"{run_id}-prepare-1")
    assert (rows["train"].resource_kind, rows["train"].namespace) == ("Job", kube.namespace)
    assert rows["prepare"].exit_code == 0 and rows["train"].started_at >= rows["prepare"].finished_at
    # Everything the commit started is found by its label, objects of every kind included.
    everything = harness.pods(f"odin.dev/commit={COMMIT}")
    assert {labels_of(p)["odin.dev/task"] for p in everything} == {"prepare", "train", "evaluate"}
    [job] = kube.batch.list_namespaced_job(kube.namespace, label_selector=f"odin.dev/commit={COMMIT}").items
    assert job.metadata.labels["odin.dev/task"] == "train"


def test_user_errors_are_retried_as_often_as_retries_says(h: KubeHarness) -> None:
    kube = h.kube
    h.start()
    run_id = h.create(pipeline(task("flaky", retries=1), task("after", depends=("flaky",))))
    kube.kubelet.fail(h.wait_pod(run_id, "flaky", 1), exit_code=3)
    kube.kubelet.fail(h.wait_pod(run_id, "flaky", 2), exit_code=4, message="ValueError: lr")
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, "flaky")
    assert (row.status, row.attempt, row.user_failures, row.infra_failures) == ("failed", 2, 2, 0)
    assert (row.exit_code, row.reason, row.failure) == (4, "Error", "user")
    assert "exit code 4: ValueError: lr" in row.message and "no retries left" in row.message
    assert h.task_row(run_id, "after").status == "skipped"


def test_oom_is_a_user_failure(h: KubeHarness) -> None:
    h.start()
    run_id = h.create(pipeline(task("big")))
    h.kube.kubelet.oom(h.wait_pod(run_id, "big"))
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, "big")
    assert (row.reason, row.exit_code, row.failure, row.attempt) == ("OOMKilled", 137, "user", 1)


def test_infrastructure_failures_are_retried_without_using_up_retries(h: KubeHarness) -> None:
    kube = h.kube
    h.start()
    run_id = h.create(pipeline(task("train")))  # retries: 0
    kube.kubelet.evict(h.wait_pod(run_id, "train", 1))
    second = h.wait_pod(run_id, "train", 2)  # `retrying` lasts 50 ms here: its event says why
    assert retry_reasons(h, run_id, "train") == ["Evicted"]
    kube.kubelet.node_lost(second)
    kube.kubelet.succeed(h.wait_pod(run_id, "train", 3))
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    row = h.task_row(run_id, "train")
    assert (row.attempt, row.user_failures, row.infra_failures) == (3, 0, 2)


def test_a_bad_image_fails_for_good_after_the_grace_period_and_its_pod_is_deleted(
    kube: KubeEnv, h: KubeHarness
) -> None:
    h.start(deadlines=Deadlines(image_pull_grace=0.3, missing_volume=30, unschedulable=60))
    run_id = h.create(pipeline(task("pull", image="registry.example.com/nope:1", retries=3)))
    pod = h.wait_pod(run_id, "pull")
    kube.kubelet.image_pull_backoff(pod)
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, "pull")
    assert (row.reason, row.failure, row.attempt) == ("ImagePullBackOff", "permanent", 1)
    assert "not retried" in row.message
    wait_for(lambda: not h.pods(f"odin.dev/run={run_id}"), 10, message="the stuck pod was not deleted")


def test_unschedulable_past_the_deadline_fails_with_the_schedulers_reason(kube: KubeEnv, h: KubeHarness) -> None:
    h.start(deadlines=Deadlines(image_pull_grace=30, missing_volume=30, unschedulable=0.3))
    run_id = h.create(pipeline(task("gpu", num_gpus=8)))
    kube.kubelet.unschedulable(h.wait_pod(run_id, "gpu"))
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, "gpu")
    assert (row.reason, row.failure) == ("Unschedulable", "permanent")
    assert "Insufficient nvidia.com/gpu" in row.message


def test_a_missing_secret_fails_the_task_once_the_deadline_passes(kube: KubeEnv, h: KubeHarness) -> None:
    from odin.schema.model import SecretMount

    h.start(deadlines=Deadlines(image_pull_grace=30, missing_volume=0.3, unschedulable=60))
    run_id = h.create(pipeline(task("needs-secret", secrets=(SecretMount(name="creds", path="/creds"),))))
    pod = h.wait_pod(run_id, "needs-secret")
    kube.kubelet.schedule(pod)
    kube.kubelet.emit_event(
        pod, "FailedMount", 'MountVolume.SetUp failed for volume "secret-0" : secret "creds" not found', "Warning"
    )
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, "needs-secret")
    assert (row.reason, row.failure) == ("MissingVolume", "permanent")
    assert 'secret "creds" not found' in row.message


def test_a_missing_pvc_fails_the_task_once_the_deadline_passes(kube: KubeEnv, h: KubeHarness) -> None:
    from odin.schema.model import Mount

    h.start(deadlines=Deadlines(image_pull_grace=30, missing_volume=0.3, unschedulable=600))
    run_id = h.create(pipeline(task("needs-pvc", mounts=(Mount(name="data", path="/data", claim="datasets"),))))
    kube.kubelet.unschedulable(
        h.wait_pod(run_id, "needs-pvc"), '0/3 nodes are available: persistentvolumeclaim "datasets" not found.'
    )
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, "needs-pvc")
    assert (row.reason, row.failure) == ("MissingVolume", "permanent")
    assert 'persistentvolumeclaim "datasets" not found' in row.message


def test_a_command_that_does_not_exist_is_not_retried(h: KubeHarness) -> None:
    h.start()
    run_id = h.create(pipeline(task("typo", retries=2)))
    h.kube.kubelet.fail(h.wait_pod(run_id, "typo"), exit_code=127)
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, "typo")
    assert (row.reason, row.failure, row.attempt) == ("CommandNotFound", "permanent", 1)


def test_cancel_deletes_the_objects_with_propagation(h: KubeHarness) -> None:
    kube = h.kube
    engine = h.start()
    run_id = h.create(pipeline(task("long", resource_type="Job"), task("pod")))
    job_pod = h.wait_pod(run_id, "long")
    kube.kubelet.start(job_pod)
    kube.kubelet.start(h.wait_pod(run_id, "pod"))
    h.wait_task(run_id, "long", "running")
    h.wait_task(run_id, "pod", "running")
    assert engine.cancel(run_id, by="alice")
    assert h.wait(run_id) == RunStatus.CANCELLED
    rows = h.tasks(run_id)
    assert {r.status for r in rows.values()} == {"cancelled"}
    wait_for(lambda: not h.pods(f"odin.dev/run={run_id}"), 20, message="pods survived the cancel")
    assert not kube.batch.list_namespaced_job(kube.namespace, label_selector=f"odin.dev/run={run_id}").items
    if kube.fake is not None:
        deletes = {r.resource: r.query.get("propagationPolicy") for r in kube.fake.requests.filter(verb="delete")}
        assert deletes == {"jobs": "Foreground", "pods": "Background"}


def test_timeout_kills_the_attempt(h: KubeHarness) -> None:
    h.start()
    run_id = h.create(pipeline(task("slow", timeout=0.5)))
    h.kube.kubelet.start(h.wait_pod(run_id, "slow"))
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, "slow")
    assert (row.reason, row.failure) == ("DeadlineExceeded", "user")
    wait_for(lambda: not h.pods(f"odin.dev/run={run_id}"), 20)


def test_logs_are_saved_before_the_ttl_clean_up_deletes_the_pod(kube: KubeEnv, h: KubeHarness) -> None:
    fake = kube.require_fake("sets log text")
    h.start(cleanup_ttl=0.3)
    run_id = h.create(pipeline(task("talk")))
    pod = h.wait_pod(run_id, "talk")
    kube.kubelet.start(pod)
    kube.kubelet.set_log(pod, "epoch 1 loss 0.5\nepoch 2 loss 0.25\n")
    assert "".join(h.executor.logs(run_id, "talk", tail=1)) == "epoch 2 loss 0.25\n"  # live, from the pod
    kube.kubelet.succeed(pod)
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    wait_for(lambda: not h.pods(f"odin.dev/run={run_id}"), 10, message="the TTL clean-up did not delete the pod")
    saved = h.data_dir / "tasks" / run_id / "talk.1.log"
    assert saved.read_text() == "epoch 1 loss 0.5\nepoch 2 loss 0.25\n"
    assert h.task_row(run_id, "talk").log_path == str(saved)
    log_read = fake.requests.filter(subresource="log")[-1]
    [delete] = fake.requests.filter(verb="deletecollection", resource="pods")  # the run's objects, in one request
    assert log_read.time <= delete.time
    assert list(h.executor.logs(run_id, "talk")) == ["epoch 1 loss 0.5\n", "epoch 2 loss 0.25\n"]  # from disk now


def test_follow_streams_a_running_log(kube: KubeEnv, h: KubeHarness) -> None:
    fake = kube.require_fake("sets log text")
    h.start()
    run_id = h.create(pipeline(task("stream")))
    pod = h.wait_pod(run_id, "stream")
    kube.kubelet.start(pod)
    kube.kubelet.set_log(pod, "one\n")
    lines = h.executor.logs(run_id, "stream", follow=True)
    assert next(lines) == "one\n"
    fake.append_log(kube.namespace, pod.metadata.name, "two\n")
    assert next(lines) == "two\n"
    kube.kubelet.succeed(pod)
    assert list(lines) == []


def test_events_of_a_task(kube: KubeEnv, h: KubeHarness) -> None:
    h.start()
    run_id = h.create(pipeline(task("ev")))
    pod = h.wait_pod(run_id, "ev")
    kube.kubelet.start(pod)
    h.wait_task(run_id, "ev", "running")
    events = h.executor.events(run_id, "ev")
    assert {"Scheduled", "Pulled", "Started"} <= {e["reason"] for e in events}
    assert all(e["object"] == f"Pod/{pod.metadata.name}" for e in events)


def test_pytorchjob_replicas_logs_and_success(kube: KubeEnv, h: KubeHarness) -> None:
    fake = kube.require_fake("the simulated training operator creates the replicas' pods")
    h.start()
    run_id = h.create(pipeline(task("ddp", resource_type="PyTorchJob", num_workers=2, num_gpus=1)))
    pods = h.wait_pods(f"odin.dev/run={run_id}", 3)
    by_replica = {p.metadata.labels["training.kubeflow.org/replica-type"] + "-"
                  + p.metadata.labels["training.kubeflow.org/replica-index"]: p for p in pods}  # fmt: skip
    assert set(by_replica) == {"master-0", "worker-0", "worker-1"}
    for replica, pod in by_replica.items():
        kube.kubelet.start(pod)
        fake.set_log(kube.namespace, pod.metadata.name, f"hello from {replica}\n")
    h.wait_task(run_id, "ddp", "running")
    assert list(h.executor.logs(run_id, "ddp")) == ["hello from master-0\n"]
    assert list(h.executor.logs(run_id, "ddp", replica="worker-1")) == ["hello from worker-1\n"]
    for pod in by_replica.values():
        kube.kubelet.succeed(pod)
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    row = h.task_row(run_id, "ddp")
    assert (row.resource_kind, row.gpus) == ("PyTorchJob", ["node-1:3"])
    saved = h.data_dir / "tasks" / run_id
    wait_for((saved / "ddp.1.worker-1.log").exists, 10)
    assert (saved / "ddp.1.log").read_text() == "hello from master-0\n"
    assert (saved / "ddp.1.worker-1.log").read_text() == "hello from worker-1\n"
    kube.custom.delete_namespaced_custom_object(
        "kubeflow.org", "v1", kube.namespace, "pytorchjobs", row.resource_name, propagation_policy="Foreground"
    )
    wait_for(lambda: not h.pods(f"odin.dev/run={run_id}"), 10)
    assert list(h.executor.logs(run_id, "ddp", replica="worker-1")) == ["hello from worker-1\n"]  # from disk
    assert list(h.executor.logs(run_id, "ddp", container="pytorch", tail=1)) == ["hello from master-0\n"]


def test_a_preempted_worker_fails_the_distributed_job_as_infrastructure(kube: KubeEnv, h: KubeHarness) -> None:
    kube.require_fake("the simulated training operator creates the replicas' pods")
    h.start()
    run_id = h.create(pipeline(task("ddp", resource_type="PyTorchJob", num_workers=2)))
    pods = h.wait_pods(f"odin.dev/run={run_id},odin.dev/attempt=1", 2)
    for pod in pods:
        kube.kubelet.start(pod)
    worker = next(p for p in pods if p.metadata.labels["training.kubeflow.org/replica-type"] == "worker")
    kube.kubelet.evict(worker)
    # `retrying` lasts 50 ms here: read the retry from its event rather than racing to see the state.
    second = h.wait_pods(f"odin.dev/run={run_id},odin.dev/attempt=2", 2)
    assert retry_reasons(h, run_id, "ddp") == ["Evicted"]
    row = h.task_row(run_id, "ddp")
    assert (row.attempt, row.user_failures, row.infra_failures) == (2, 0, 1)
    for pod in second:
        kube.kubelet.succeed(pod)
    assert h.wait(run_id) == RunStatus.SUCCEEDED


@pytest.mark.parametrize(
    ("resource_type", "plural", "group", "version"),
    [
        ("TFJob", "tfjobs", "kubeflow.org", "v1"),
        ("MPIJob", "mpijobs", "kubeflow.org", "v1"),
        ("ElasticJob", "elasticjobs", "elastic.pytorch.org", "v1alpha1"),
    ],
)
def test_training_operator_kinds_follow_their_conditions(
    kube: KubeEnv, h: KubeHarness, resource_type: str, plural: str, group: str, version: str
) -> None:
    require_crd(kube, group, version, plural)
    if kube.fake is not None:
        kube.fake.controllers.kubeflow = False  # the test plays the operator, as it must on a cluster without one
    h.start()
    run_id = h.create(pipeline(task("a", resource_type=resource_type, num_workers=2),
                               task("b", resource_type=resource_type, num_workers=2)))  # fmt: skip

    def job(name: str) -> dict[str, Any]:
        items = kube.custom.list_namespaced_custom_object(
            group, version, kube.namespace, plural, label_selector=f"odin.dev/run={run_id},odin.dev/task={name}"
        )["items"]
        return items[0] if items else None  # type: ignore[no-any-return]

    a, b = wait_for(lambda: job("a"), 10), wait_for(lambda: job("b"), 10)
    kube.kubelet.kubeflow_created(a)
    kube.kubelet.kubeflow_running(a)
    h.wait_task(run_id, "a", "running")
    kube.kubelet.kubeflow_succeeded(a)
    kube.kubelet.kubeflow_failed(b, reason="Failed", message="worker 1 exited with code 2")
    assert h.wait(run_id) == RunStatus.FAILED
    rows = h.tasks(run_id)
    assert (rows["a"].status, rows["a"].resource_kind) == ("succeeded", resource_type)
    assert (rows["b"].status, rows["b"].failure) == ("failed", "user")
    assert "worker 1 exited with code 2" in rows["b"].message


def test_trainjob_runs_to_completion_and_its_pods_are_found_by_the_jobset_label(kube: KubeEnv, h: KubeHarness) -> None:
    require_crd(kube, "trainer.kubeflow.org", "v1alpha1", "trainjobs")
    h.start()
    run_id = h.create(pipeline(task("llm", resource_type="TrainJob", num_workers=2, num_gpus=8)))
    trainjob = wait_for(
        lambda: (kube.custom.list_namespaced_custom_object(
            "trainer.kubeflow.org", "v1alpha1", kube.namespace, "trainjobs", label_selector=f"odin.dev/run={run_id}"
        )["items"] or [None])[0],
        10,
    )  # fmt: skip
    name = trainjob["metadata"]["name"]
    # What the JobSet controller would create: a pod labelled with the JobSet's name, not with Odin's labels.
    pod = kube.core.create_namespaced_pod(kube.namespace, {
        **kube.pod_manifest(f"{name}-node-0-0-abcde"),
        "metadata": {"name": f"{name}-node-0-0-abcde", "labels": {"jobset.sigs.k8s.io/jobset-name": name,
                     "jobset.sigs.k8s.io/replicatedjob-name": "node", "jobset.sigs.k8s.io/job-index": "0"}},
    })  # fmt: skip
    kube.kubelet.start(pod)
    h.wait_task(run_id, "llm", "running")
    kube.kubelet.trainjob_complete(trainjob)
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    assert h.task_row(run_id, "llm").resource_kind == "TrainJob"


def test_a_failed_trainjob(kube: KubeEnv, h: KubeHarness) -> None:
    require_crd(kube, "trainer.kubeflow.org", "v1alpha1", "trainjobs")
    h.start()
    run_id = h.create(pipeline(task("llm", resource_type="TrainJob", num_workers=2)))
    trainjob = wait_for(
        lambda: (kube.custom.list_namespaced_custom_object(
            "trainer.kubeflow.org", "v1alpha1", kube.namespace, "trainjobs", label_selector=f"odin.dev/run={run_id}"
        )["items"] or [None])[0],
        10,
    )  # fmt: skip
    kube.kubelet.trainjob_failed(trainjob)
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, "llm")
    assert (row.reason, row.failure) == ("FailedJobs", "user")
