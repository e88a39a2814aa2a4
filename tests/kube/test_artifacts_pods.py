# ruff: noqa: E501 (the pipeline below is YAML, one shell command a line, as users write them)
"""Artifacts leave the pod (issue 11 item 4): the engine, the store and the Kubernetes executor on the fake API
server, each pod's containers played as real processes (tests/support/podrun.py) against a real SeaweedFS server.

Nothing is shared between pods but the object store: a file written by one task reaches the next one through the
`odin-upload` container, the outputs record, the reference resolved to `/odin/inputs/...` and the `odin-inputs`
init container -- the commands Odin wrote into the manifests, run as they are.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.engine import Engine as DbEngine

from odin.controller.artifacts.settings import ArtifactSettings
from odin.controller.engine.cache import store_outputs_present
from odin.controller.executors.kubernetes import BuildContext, HandlerRegistry, KubeOptions, names
from odin.controller.executors.kubernetes.executor import KubernetesExecutor
from odin.controller.executors.kubernetes.logs import LogStore
from odin.controller.executors.kubernetes.transfer import OUTPUTS_MOUNT, LazyStore
from odin.controller.executors.pod_outputs import WRAPPER
from odin.controller.history_retention import HistoryPolicy, prune_once
from odin.controller.store.db import transaction
from odin.controller.store.run_queries import find_task
from odin.controller.store.runs import NewRun, create_run
from odin.controller.vocabulary import CACHED, InputArtifact, RunStatus, TaskLaunch, Trigger
from odin.schema import load_pipeline
from odin.schema.model import Artifact, PipelineSpec, Result, TaskSpec
from odin.testing.kube.crd_schemas import validate_manifest
from odin.testing.kube.environment import KubeEnv
from odin.testing.kube.kubelet import wait_for
from tests.kube.harness import COMMIT, KubeHarness, pipeline, task
from tests.kube.test_executor_manifests import launch_for, pod_templates
from tests.support.podrun import PodOutcome, run_pod
from tests.support.seaweedfs import S3Endpoint, seaweedfs_server

pytestmark = pytest.mark.kube
SECRET = "odin-s3"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    with seaweedfs_server(tmp_path_factory.mktemp("seaweedfs")) as endpoint:
        yield endpoint


def store_settings(s3: S3Endpoint) -> ArtifactSettings:
    return ArtifactSettings(
        backend="s3", bucket=s3.bucket, prefix=f"t-{uuid.uuid4().hex[:10]}/", endpoint_url=s3.url, region=s3.region,
        addressing_style="path", access_key_id=SecretStr(s3.access_key), secret_access_key=SecretStr(s3.secret_key),
    )  # fmt: skip


@pytest.fixture
def h(kube: KubeEnv, db: DbEngine, tmp_path: Path, s3: S3Endpoint) -> Iterator[KubeHarness]:
    if kube.fake is None:
        pytest.skip("plays pods as local processes: needs the fake API server")
    harness = KubeHarness(kube, db, tmp_path, artifacts=store_settings(s3), artifacts_secret=SECRET)
    yield harness
    harness.stop()


def secrets_of(s3: S3Endpoint) -> dict[str, dict[str, str]]:
    return {SECRET: {"access_key_id": s3.access_key, "secret_access_key": s3.secret_key}}


def play(h: KubeHarness, pod: Any, s3: S3Endpoint) -> PodOutcome:
    """Run the pod's containers for real, then report the outcome through the API as its kubelet would."""
    body = h.kube.api_client.sanitize_for_serialization(pod)
    outcome = run_pod(body, h.tmp / "pods" / pod.metadata.name, secrets_of(s3))
    if outcome.ok:
        h.succeed(pod)
    else:
        failed = next(name for name, code in outcome.codes.items() if code != 0)
        h.kube.kubelet.fail(pod, exit_code=outcome.codes[failed])
    return outcome


TWO_TASKS = """
tasks:
  - name: train
    image: busybox
    command: [sh, -c, 'mkdir -p ${OUTPUT_PATH}/ckpt && echo weights > ${OUTPUT_PATH}/model.bin && echo cfg > ${OUTPUT_PATH}/ckpt/config && echo 0.93 > ${RESULTS_PATH}/accuracy']
    outputs:
      artifacts: [{name: model, path: model.bin}, ckpt]
      results: [accuracy]
  - name: evaluate
    image: busybox
    command: [sh, -c, 'cat ${tasks.train.artifacts.model} ${tasks.train.artifacts.ckpt}/config > ${OUTPUT_PATH}/report && echo ${tasks.train.results.accuracy} > ${RESULTS_PATH}/seen']
    depends: train
    outputs:
      artifacts: [report]
      results: [seen]
"""


def yaml_pipeline(yaml: str) -> PipelineSpec:
    result = load_pipeline(yaml.encode(), file="main.yml", default_name="p")
    assert result.spec is not None, [str(p) for p in result.problems]
    return result.spec


def test_two_tasks_pass_a_file_and_a_result_through_the_store_only(h: KubeHarness, s3: S3Endpoint) -> None:
    h.start()
    run_id = h.create(yaml_pipeline(TWO_TASKS))
    train_pod = h.wait_pod(run_id, "train")
    body = json.dumps(h.kube.api_client.sanitize_for_serialization(train_pod))
    assert s3.secret_key not in body and s3.access_key not in body  # credentials only by Secret reference
    assert [c.name for c in train_pod.spec.containers] == ["main", "odin-upload"]
    outcome = play(h, train_pod, s3)
    assert outcome.ok, outcome.logs

    evaluate_pod = h.wait_pod(run_id, "evaluate")
    assert [c.name for c in evaluate_pod.spec.init_containers] == ["odin-inputs"]
    assert "/odin/inputs/train/model.bin" in " ".join(evaluate_pod.spec.containers[0].command)
    outcome = play(h, evaluate_pod, s3)
    assert outcome.ok, outcome.logs
    assert h.wait(run_id) == RunStatus.SUCCEEDED

    rows = h.tasks(run_id)
    train, evaluate = rows["train"], rows["evaluate"]
    assert train.results == {"accuracy": 0.93}
    model = train.artifacts["model"]
    assert model["location"].startswith(f"s3://{s3.bucket}/") and model["size"] == len("weights\n")
    assert model["digest"].startswith("sha256:") and train.artifacts["ckpt"]["type"] == "directory"
    assert evaluate.results == {"seen": 0.93}
    # The report was made of bytes that reached the second pod through the store, and went back the same way.
    report = evaluate.artifacts["report"]
    key = report["location"].split("/", 3)[3]
    assert s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read() == b"weights\ncfg\n"


SAMPLES = Path(__file__).resolve().parents[2] / "sample-pipelines"


def play_run(h: KubeHarness, run_id: str, s3: S3Endpoint, timeout: float = 300) -> RunStatus:
    """Play every pod of the run as it appears, until the run ends."""
    assert h.engine is not None
    engine = h.engine
    played: set[str] = set()

    def news() -> list[Any] | RunStatus | None:
        status = engine.wait(run_id, 0)
        if status is not None:
            return status
        fresh = [p for p in h.pods(f"odin.dev/run={run_id}") if p.metadata.name not in played]
        return fresh or None

    while True:
        found = wait_for(news, timeout, message=f"run {run_id}: no new pod and not finished")
        if isinstance(found, RunStatus):
            return found
        for pod in found:
            played.add(pod.metadata.name)
            outcome = play(h, pod, s3)
            assert outcome.ok, outcome.logs


def test_the_train_sample_runs_on_kubernetes_with_nothing_shared_but_the_store(h: KubeHarness, s3: S3Endpoint) -> None:
    """sample-pipelines/train: prepare -> a 3-member sweep -> evaluate (every member's model) -> gated export. Its
    directory comes through the store too (a ConfigMap limit of 0), so no pod gets anything from the controller but
    its manifest."""
    if h.db.dialect.name != "sqlite":
        pytest.skip("the database plays no part here beyond the other tests': one store suffices (about 100 s)")
    h.work = SAMPLES / "train"
    h.start(work_max_bytes=0)
    spec = yaml_pipeline((SAMPLES / "train" / "main.yml").read_text())
    new = NewRun(
        pipeline="train", spec=spec, trigger=Trigger.MANUAL, params={p.name: p.default or "" for p in spec.params},
        work_path=str(h.work), work_tree="5a" * 20, commit_sha=COMMIT,
    )  # fmt: skip
    with transaction(h.db) as conn:
        run_id = create_run(conn, new).run_id
    assert h.engine is not None
    h.engine.submit(run_id)
    status = play_run(h, run_id, s3)
    rows = h.tasks(run_id)
    assert status == RunStatus.SUCCEEDED, {n: (r.status, r.reason, r.message) for n, r in rows.items()}
    members = [name for name in rows if name.startswith("train-")]
    assert len(members) == 3 and all(rows[m].artifacts["model"]["location"].startswith("s3://") for m in members)
    assert rows["evaluate"].results["best_lr"] in (0.1, 0.03, 0.01)
    assert rows["export"].status == "succeeded" and rows["export"].artifacts["model"]["size"] > 0


CACHED_PAIR = """
cache: true
tasks:
  - name: first
    image: busybox
    command: [sh, -c, 'echo weights-v1 > ${OUTPUT_PATH}/model.bin']
    outputs:
      artifacts: [{name: x, path: model.bin}]
  - name: second
    image: busybox
    command: [sh, -c, 'cat ${tasks.first.artifacts.x} > ${RESULTS_PATH}/seen']
    depends: first
    cache: false
    outputs:
      results: [seen]
"""


def test_a_cache_hit_reuses_the_stored_artifact_that_the_dependent_downloads(h: KubeHarness, s3: S3Endpoint) -> None:
    """Issue 11 item 6 on Kubernetes, end to end, with the store check `odin serve` plugs in: the second run of an
    unchanged pipeline creates no pod for the cached task and records where its outputs came from, and the pod of
    its dependent (`cache: false`, so it runs) downloads the first run's blob, by the same digest, and reads the
    bytes the first run's pod wrote. Once the blob is deleted, the next run is a miss and runs the task again."""
    settings = h.options().artifacts  # the very store (and prefix) the pods upload to, as `odin serve` opens it
    assert settings is not None and h.engine is None
    h.engine_options = {"outputs_present": store_outputs_present(LazyStore(settings).get)}
    h.start()
    spec = yaml_pipeline(CACHED_PAIR)
    first = h.create(spec)
    assert play_run(h, first, s3, timeout=120) == RunStatus.SUCCEEDED
    produced = h.task_row(first, "first").artifacts["x"]
    assert produced["location"].startswith(f"s3://{s3.bucket}/"), produced
    assert h.task_row(first, "second").results == {"seen": "weights-v1"}

    second = h.create(spec)
    assert play_run(h, second, s3, timeout=120) == RunStatus.SUCCEEDED
    cached, dependent = h.task_row(second, "first"), h.task_row(second, "second")
    assert (cached.status, cached.reason) == ("succeeded", CACHED)
    assert cached.message == f"cached from run {first} (commit {COMMIT[:12]})"
    assert cached.resource_name is None and h.pods(f"odin.dev/run={second},odin.dev/task=first") == []
    assert cached.artifacts["x"] == produced  # the first run's record, not a copy: the same blob in the store
    (pod,) = h.pods(f"odin.dev/run={second},odin.dev/task=second")
    (inputs,) = [c for c in pod.spec.init_containers if c.name == "odin-inputs"]
    assert "first/model.bin=" + produced["digest"] in inputs.command, inputs.command
    assert dependent.status == "succeeded" and dependent.results == {"seen": "weights-v1"}

    # The blob gone from the store (what retention does): a miss that runs the task again, not a failed download.
    s3.client().delete_object(Bucket=s3.bucket, Key=produced["location"].split("/", 3)[3])
    third = h.create(spec)
    assert play_run(h, third, s3, timeout=120) == RunStatus.SUCCEEDED
    rerun = h.task_row(third, "first")
    assert rerun.reason != CACHED and rerun.resource_name is not None
    assert rerun.artifacts["x"]["digest"] == produced["digest"]  # the same bytes, stored again
    assert h.task_row(third, "second").results == {"seen": "weights-v1"}


def test_outputs_of_a_pod_that_ended_while_the_controller_was_down_are_recorded(h: KubeHarness, s3: S3Endpoint) -> None:
    h.start()
    run_id = h.create(pipeline(task("train", "echo 0.5 > ${RESULTS_PATH}/loss", results=(Result("loss"),))))
    pod = h.wait_pod(run_id, "train")
    h.stop()  # what a SIGKILL leaves: the pod runs on, and succeeds with nobody watching
    assert play(h, pod, s3).ok
    h.start()
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    assert h.task_row(run_id, "train").results == {"loss": 0.5}


def test_a_declared_output_not_written_fails_permanently_as_locally(h: KubeHarness, s3: S3Endpoint) -> None:
    h.start()
    run_id = h.create(pipeline(task("train", "true", retries=2, artifacts=(Artifact("model", "m.bin"),))))
    play(h, h.wait_pod(run_id, "train"), s3)
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, "train")
    assert (row.reason, row.failure, row.attempt) == ("MissingArtifact", "permanent", 1)
    assert "${OUTPUT_PATH}/m.bin" in row.message


def test_the_task_failing_uploads_nothing_and_is_a_user_failure(h: KubeHarness, s3: S3Endpoint) -> None:
    h.start()
    run_id = h.create(pipeline(task("train", "exit 3", results=(Result("accuracy"),))))
    outcome = play(h, h.wait_pod(run_id, "train"), s3)
    assert outcome.codes["main"] == 3 and outcome.codes["odin-upload"] == 0
    assert h.wait(run_id) == RunStatus.FAILED
    assert h.task_row(run_id, "train").failure == "user"


def test_a_work_tree_over_the_configmap_limit_reaches_the_pod_through_the_store(h: KubeHarness, s3: S3Endpoint) -> None:
    (h.work / "data.bin").write_bytes(b"x" * 4096)
    h.start(work_max_bytes=1024)
    run_id = h.create(pipeline(task("read", "cat ${WORK_PATH}/configs/base.yml > ${RESULTS_PATH}/lr && test -s data.bin",
                                    results=(Result("lr"),))))  # fmt: skip
    pod = h.wait_pod(run_id, "read")
    assert [c.name for c in pod.spec.init_containers] == ["odin-work"]
    assert not [v for v in pod.spec.volumes if v.projected is not None]  # no ConfigMaps
    outcome = play(h, pod, s3)
    assert outcome.ok, outcome.logs
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    assert h.task_row(run_id, "read").results == {"lr": "lr: 0.1"}
    # The same tree in a second run is not stored again: its digest is remembered per git tree id.
    assert h.executor is not None and h.executor.submitter.work_trees is not None
    assert len(h.executor.submitter.work_trees._known) == 1


def test_outputs_without_a_store_say_what_to_configure(kube: KubeEnv, db: DbEngine, tmp_path: Path) -> None:
    h = KubeHarness(kube, db, tmp_path)
    try:
        h.start()
        run_id = h.create(pipeline(task("train", results=(Result("accuracy"),))))
        assert h.wait(run_id) == RunStatus.FAILED
        row = h.task_row(run_id, "train")
        assert row.reason == "OutputsUnsupported" and "ODIN_ARTIFACTS_BACKEND=s3" in row.message
    finally:
        h.stop()


# -- manifests: valid, and only the first replica uploads --------------------------------------------------------

REGISTRY = HandlerRegistry.load()


def transfer_launch(resource_type: str) -> TaskLaunch:
    spec = TaskSpec(
        name="train", image="pytorch/pytorch:2.5.1", command=("python", "train.py"), args=("--lr", "0.1"),
        resource_type=resource_type, num_workers=1 if resource_type in ("Pod", "Job") else 3,
        artifacts=(Artifact("model", "model.pt"),), results=(Result("loss"),),
    )  # fmt: skip
    launch = launch_for(spec)
    data = InputArtifact("prep", "data", "data", "sha256:" + "ab" * 32, "s3://b/odin/x", tree=True)
    return dataclasses.replace(launch, inputs=(data,))


@pytest.mark.parametrize("resource_type", ["Pod", "Job", "PyTorchJob", "TFJob", "MPIJob", "ElasticJob"])
def test_transfer_manifests_validate_and_one_replica_uploads(resource_type: str, tmp_path: Path) -> None:
    launch = transfer_launch(resource_type)
    handler = REGISTRY.get(resource_type)
    options = KubeOptions(
        data_dir=tmp_path, namespace="ml", artifacts=ArtifactSettings(backend="s3", bucket="models"),
        artifacts_secret=SECRET,
    )  # fmt: skip
    name = names.attempt_name(launch.run.run_id, "train", 1, max_length=handler.max_name_length)
    obj = handler.build(BuildContext(launch, name, "ml", options, work_digest="sha256:" + "cd" * 32))
    validate_manifest(obj)
    uploads: list[str] = []
    for template in pod_templates(obj):
        pod = template["spec"]
        assert [c["name"] for c in pod["initContainers"]] == ["odin-work", "odin-inputs"]
        assert "prep/data/=sha256:" + "ab" * 32 in pod["initContainers"][1]["command"]
        for container in [*pod["initContainers"], *pod["containers"]]:
            for item in container.get("env", []):
                assert "value" in item or set(item["valueFrom"]) == {"secretKeyRef"}
        upload = [c for c in pod["containers"] if c["name"] == "odin-upload"]
        if upload:
            suffix = [a for a in upload[0]["command"] if a.startswith("--pod-suffix=")]
            uploads.append(suffix[0] if suffix else "")
            main = pod["containers"][0]
            assert main["command"][:2] == ["/bin/sh", "-c"] and main["command"][-4:] == ["python", "train.py", "--lr",
                                                                                         "0.1"]  # fmt: skip
            assert {"name": "odin-outputs", "mountPath": OUTPUT_MOUNT} in main["volumeMounts"]
    assert uploads == {"PyTorchJob": [""], "MPIJob": [""], "TFJob": ["--pod-suffix=-worker-0"],
                       "ElasticJob": ["--pod-suffix=-worker-0"]}.get(resource_type, [""])  # fmt: skip


OUTPUT_MOUNT = OUTPUTS_MOUNT


def test_the_upload_step_gives_up_when_the_task_container_was_killed_whole(tmp_path: Path, s3: S3Endpoint) -> None:
    """An OOM kill of the whole container leaves no exit code: the heartbeat goes stale and the step fails the pod
    instead of holding it open forever (a real process, the wrapper's heartbeat file aged by hand)."""
    (tmp_path / "artifacts").mkdir()
    heartbeat = tmp_path / ".exit.alive"
    heartbeat.write_text("")
    os.utime(heartbeat, (time.time() - 120, time.time() - 120))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}, **s3.env("t-vanished/")}
    done = subprocess.run(
        [sys.executable, "-m", "odin.controller.executors.pod_outputs", "--record", "runs/r/t/1/outputs.json",
         "--dir", str(tmp_path), "--result=loss", "--stale-after=30"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1 and "stopped without an exit code" in done.stderr


def test_the_wrapper_beats_while_the_task_runs_and_leaves_its_exit_code(tmp_path: Path) -> None:
    exit_file = tmp_path / ".exit"
    # The task waits (up to 10 s) for the first heartbeat, then exits 7.
    task_script = f"for i in $(seq 200); do test -f {exit_file}.alive && exit 7; sleep 0.05; done; exit 1"
    command = ["/bin/sh", "-c", WRAPPER, "odin-task", "sh", "-c", task_script]
    done = subprocess.run(command, env={"ODIN_EXIT_FILE": str(exit_file), "PATH": "/usr/bin:/bin"}, timeout=30,
                          check=False)  # fmt: skip
    assert done.returncode == 7 and exit_file.read_text() == "7\n"


def test_a_saved_log_is_served_by_another_replica_with_an_empty_data_dir(h: KubeHarness) -> None:
    """Two replicas share no disk (deploy/): the log the leader saved reaches the other replica's API through the
    store, and the attempt to ask for comes from the database, not from a file the other replica never had."""
    h.start(cleanup_ttl=0.3)
    run_id = h.create(pipeline(task("talk")))
    pod = h.wait_pod(run_id, "talk")
    h.kube.kubelet.start(pod)
    h.kube.kubelet.set_log(pod, "epoch 1 loss 0.5\nepoch 2 loss 0.25\n")
    h.kube.kubelet.succeed(pod)
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    wait_for(lambda: not h.pods(f"odin.dev/run={run_id}"), 10, message="the TTL clean-up did not delete the pod")
    assert (h.data_dir / "tasks" / run_id / "talk.1.log").exists()

    other_dir = h.tmp / "other-replica"
    other = KubernetesExecutor(h.kube.api_client, h.options(data_dir=other_dir))
    try:
        assert other.log_store.attempts(run_id, "talk") == []  # nothing on its disk to find the attempt by
        row = find_task(h.db, run_id, "talk")
        assert row is not None and row.attempt == 1
        assert list(other.logs(run_id, "talk", attempt=row.attempt)) == ["epoch 1 loss 0.5\n", "epoch 2 loss 0.25\n"]
        assert list(other.logs(run_id, "talk", attempt=row.attempt, tail=1)) == ["epoch 2 loss 0.25\n"]
        assert (other_dir / "tasks" / run_id / "talk.1.log").read_text() == "epoch 1 loss 0.5\nepoch 2 loss 0.25\n"
        assert list(other.logs(run_id, "talk", attempt=2)) == []  # an attempt never saved anywhere: no log
    finally:
        other.shutdown()


def test_log_retention_deletes_the_copy_in_the_store_that_other_replicas_would_serve(h: KubeHarness) -> None:
    """`ODIN_LOGS_KEEP_DAYS` reaches the store's copy of a saved log (`logs/<run>/`): once the run is past the
    horizon, the leader's sweep deletes it with the local file, and a replica with an empty data directory has
    nothing left to serve; the run's outputs record in the same store is kept."""
    h.start(cleanup_ttl=0.3)
    run_id = h.create(pipeline(task("talk")))
    pod = h.wait_pod(run_id, "talk")
    h.kube.kubelet.start(pod)
    h.kube.kubelet.set_log(pod, "epoch 1 loss 0.5\n")
    h.kube.kubelet.succeed(pod)
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    wait_for(lambda: not h.pods(f"odin.dev/run={run_id}"), 10, message="the TTL clean-up did not delete the pod")
    store = LazyStore(h.options().artifacts).get()  # the store the executor saved the log to
    assert store.get_record(f"logs/{run_id}/talk.1.log", 100) == b"epoch 1 loss 0.5\n"
    store.put_record(f"runs/{run_id}/talk/1/outputs.json", b"{}")

    kept = prune_once(h.db, HistoryPolicy(logs_keep_days=7), tasks_dir=h.data_dir / "tasks", store=store)
    assert kept.runs_with_log_copies_pruned == [], "a run of today keeps its logs"
    later = datetime.now(UTC) + timedelta(days=8)
    done = prune_once(h.db, HistoryPolicy(logs_keep_days=7), tasks_dir=h.data_dir / "tasks", store=store, now=later)
    assert (done.runs_with_logs_pruned, done.runs_with_log_copies_pruned) == ([run_id], [run_id])
    assert store.get_record(f"logs/{run_id}/talk.1.log", 100) is None
    assert store.get_record(f"runs/{run_id}/talk/1/outputs.json", 100) == b"{}"
    other = KubernetesExecutor(h.kube.api_client, h.options(data_dir=h.tmp / "other-replica"))
    try:
        assert list(other.logs(run_id, "talk", attempt=1)) == []
    finally:
        other.shutdown()


def test_a_log_is_kept_on_disk_when_the_store_refuses_it(tmp_path: Path, s3: S3Endpoint) -> None:
    """The store's copy is a second copy: a store that fails loses it, never the attempt or the local log."""
    broken = store_settings(s3).model_copy(update={"secret_access_key": SecretStr("not-the-key")})
    logs = LogStore(tmp_path, LazyStore(broken).get)
    path = logs.path("r1", "talk", 1)
    logs.save(path, b"kept\n")
    assert list(logs.read(path, tail=None)) == ["kept\n"]
    elsewhere = LogStore(tmp_path / "elsewhere", LazyStore(broken).get)
    assert not elsewhere.exists(elsewhere.path("r1", "talk", 1))  # the store's failure reads as "no saved log"
