"""Every handler's manifest: complete (everything the pipeline says), provenance-labelled, and valid -- core kinds
against Kubernetes' own schemas (kubernetes-validate), custom kinds against their operators' CRDs (testing/kube)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest

from odin.controller.executors.kubernetes import BuildContext, HandlerRegistry, KubeOptions, names
from odin.controller.executors.kubernetes.workdir import WorkTreeError, collect
from odin.controller.vocabulary import RunContext, TaskLaunch, TaskPaths
from odin.schema.model import ConfigMapMount, EphemeralVolume, Mount, Resources, SecretMount, TaskSpec
from odin.testing.kube.crd_schemas import validate_core, validate_custom, validate_manifest

pytestmark = pytest.mark.kube

SHA = "0123456789abcdef0123456789abcdef01234567"
REGISTRY = HandlerRegistry.load()


def rich_task(resource_type: str = "Pod", **kw: Any) -> TaskSpec:
    values: dict[str, Any] = {
        "name": "train",
        "image": "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime",
        "command": ("python", "/odin/work/train.py"),
        "args": ("--lr", "0.1"),
        "env": {"WANDB_MODE": "offline"},
        "mounts": (Mount(name="data", path="/data", claim="datasets", read_only=True, sub_path="imagenet"),),
        "secrets": (SecretMount(name="wandb", path="/etc/odin/secrets/wandb", mode=0o400),),
        "config_maps": (ConfigMapMount(name="train-config", path="/etc/train"),),
        "num_gpus": 2,
        "num_workers": 1,
        "cpu": Resources(requests="4", limits="8"),
        "memory": Resources(requests="16Gi", limits="32Gi"),
        "node_selector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
        "pull_policy": "IfNotPresent",
        "security_context": {"run_as_user": 1000, "fs_group": 2000, "read_only_root_filesystem": True,
                             "capabilities": {"drop": ["ALL"]}, "seccomp_profile": {"type": "RuntimeDefault"}},
        "resource_type": resource_type,
        "queue": "team-a-gpu",
        "retries": 2,
        "timeout": 3600.5,
        "service_account": "trainer",
        "image_pull_secrets": ("registry-creds",),
        "tolerations": ({"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"},),
    }  # fmt: skip
    values.update(kw)
    return TaskSpec(**values)


def launch_for(spec: TaskSpec, *, attempt: int = 1, pipeline: str = "vision/resnet") -> TaskLaunch:
    run = RunContext(
        run_id="resnet-0123456-1",
        pipeline=pipeline,
        commit_sha=SHA,
        repo_url="https://git.example.com/ml/pipelines.git",
        trigger="webhook",
        work_tree="ab" * 20,
        work_path=None,
    )
    env = {
        **spec.env,
        "ODIN_RUN": run.run_id,
        "ODIN_TASK": spec.name,
        "ODIN_COMMIT_SHA": SHA,
        "ODIN_PIPELINE": pipeline,
        "SHELLISH": "$(date) stays literal",
    }
    paths = TaskPaths("/odin/work", "/odin/run", "/odin/root")
    return TaskLaunch(run, spec, attempt, spec.command, spec.args, env, paths)


def build(spec: TaskSpec, tmp_path: Path, **options: Any) -> tuple[dict[str, Any], BuildContext]:
    work_dir = tmp_path / "work"
    work_dir.mkdir(exist_ok=True)
    (work_dir / "train.py").write_text("print(1)\n")
    handler = REGISTRY.get(spec.resource_type)
    launch = launch_for(spec)
    name = names.attempt_name(launch.run.run_id, spec.name, 1, max_length=handler.max_name_length)
    opts = KubeOptions(data_dir=tmp_path, namespace="ml", scheduler_name="odin-test-no-scheduler", **options)
    work = collect(work_dir, name="resnet-0123456-1-work", tree="ab" * 20, max_bytes=opts.work_max_bytes)
    ctx = BuildContext(launch, name, "ml", opts, work=work)
    return handler.build(ctx), ctx


def pod_templates(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Every pod template inside a manifest (the object itself for a Pod)."""
    if obj["kind"] == "Pod":
        return [obj]
    found: list[dict[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if "template" in value and isinstance(value["template"], dict) and "spec" in value["template"]:
                found.append(value["template"])
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(obj["spec"])
    return found


PROVENANCE = {
    "app.kubernetes.io/managed-by": "odin",
    "odin.dev/run": "resnet-0123456-1",
    "odin.dev/task": "train",
    "odin.dev/attempt": "1",
    "odin.dev/commit": SHA,
    "odin.dev/pipeline": "vision.resnet",
    "odin.dev/instance": "default",
}


@pytest.mark.parametrize("resource_type", ["Pod", "Job", "PyTorchJob", "TFJob", "MPIJob", "ElasticJob", "TrainJob"])
def test_manifest_is_valid_and_carries_provenance(resource_type: str, tmp_path: Path) -> None:
    workers = 1 if resource_type in ("Pod", "Job") else 3
    obj, _ = build(rich_task(resource_type, num_workers=workers), tmp_path)
    validate_manifest(obj)
    meta = obj["metadata"]
    assert meta["labels"].items() >= PROVENANCE.items()
    assert meta["labels"]["kueue.x-k8s.io/queue-name"] == "team-a-gpu"
    assert meta["annotations"]["odin.dev/repo-url"] == "https://git.example.com/ml/pipelines.git"
    assert meta["annotations"]["odin.dev/trigger"] == "webhook"
    assert meta["annotations"]["odin.dev/pipeline-path"] == "vision/resnet"
    for template in pod_templates(obj):
        # Pods carry the provenance too (so `kubectl get pods -l odin.dev/commit=<sha>` finds them), never the queue
        # (Kueue admits the top-level object).
        assert template["metadata"]["labels"].items() >= PROVENANCE.items()
        assert "kueue.x-k8s.io/queue-name" not in template["metadata"]["labels"] or obj["kind"] == "Pod"
        spec = template["spec"]
        assert spec["schedulerName"] == "odin-test-no-scheduler"
        assert spec["serviceAccountName"] == "trainer"
        assert spec["imagePullSecrets"] == [{"name": "registry-creds"}]
        assert spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
        gpu_toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        uses_gpus = "nvidia.com/gpu" in spec["containers"][0]["resources"]["limits"]  # not an MPI launcher
        assert (gpu_toleration in spec["tolerations"]) == uses_gpus
        assert {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"} in spec["tolerations"]
        assert spec["securityContext"] == {
            "runAsUser": 1000,
            "fsGroup": 2000,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        [container] = spec["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert (
            env["ODIN_COMMIT_SHA"] == SHA and env["ODIN_RUN"] == "resnet-0123456-1" and env["WANDB_MODE"] == "offline"
        )
        assert env["SHELLISH"] == "$$(date) stays literal"  # Kubernetes' $(VAR) expansion is disabled
        assert container["imagePullPolicy"] == "IfNotPresent"
        assert container["securityContext"] == {"readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert mounts["/odin/work"]["readOnly"] is True
        assert mounts["/data"] == {"name": "pvc-0", "mountPath": "/data", "readOnly": True, "subPath": "imagenet"}
        assert mounts["/etc/odin/secrets/wandb"]["readOnly"] is True
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["pvc-0"]["persistentVolumeClaim"] == {"claimName": "datasets", "readOnly": True}
        assert volumes["secret-0"]["secret"] == {"secretName": "wandb", "defaultMode": 0o400}
        assert volumes["config-0"]["configMap"] == {"name": "train-config"}
        assert volumes["odin-work"]["projected"]["sources"][0]["configMap"]["name"] == "resnet-0123456-1-work"


def test_pod_runs_the_command_with_resources(tmp_path: Path) -> None:
    obj, _ = build(rich_task(), tmp_path)
    assert obj["metadata"]["name"] == "resnet-0123456-1-train-1"
    assert obj["spec"]["restartPolicy"] == "Never"
    [c] = obj["spec"]["containers"]
    assert (c["command"], c["args"], c["workingDir"]) == (
        ["python", "/odin/work/train.py"],
        ["--lr", "0.1"],
        "/odin/work",
    )
    assert c["resources"] == {
        "requests": {"cpu": "4", "memory": "16Gi"},
        "limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "2"},
    }
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_no_gpu_no_gpu_toleration(tmp_path: Path) -> None:
    obj, _ = build(rich_task(num_gpus=0, tolerations=()), tmp_path)
    assert "tolerations" not in obj["spec"]
    assert "nvidia.com/gpu" not in obj["spec"]["containers"][0]["resources"]["limits"]


def test_job_retries_and_timeout_live_in_the_job(tmp_path: Path) -> None:
    obj, _ = build(rich_task("Job"), tmp_path)
    spec = obj["spec"]
    assert spec["backoffLimit"] == 2
    assert spec["activeDeadlineSeconds"] == 3601
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}
    assert rules[1]["action"] == "FailJob" and rules[1]["onExitCodes"]["values"] == [126, 127]


def test_pytorchjob_master_plus_workers_each_with_gpus(tmp_path: Path) -> None:
    obj, _ = build(rich_task("PyTorchJob", num_workers=4), tmp_path)
    replicas = obj["spec"]["pytorchReplicaSpecs"]
    assert (replicas["Master"]["replicas"], replicas["Worker"]["replicas"]) == (1, 4), (
        "master + num_workers workers, as in the original Odin"
    )
    for r in replicas.values():
        [c] = r["template"]["spec"]["containers"]
        assert c["name"] == "pytorch" and c["resources"]["limits"]["nvidia.com/gpu"] == "2"
        assert r["restartPolicy"] == "Never"
    assert obj["spec"]["runPolicy"] == {"cleanPodPolicy": "None", "backoffLimit": 0, "activeDeadlineSeconds": 3601}


def test_pytorchjob_elastic_policy(tmp_path: Path) -> None:
    elastic = {"min_replicas": 2, "max_replicas": 8, "max_restarts": 3, "rdzv_backend": "c10d"}
    obj, _ = build(rich_task("PyTorchJob", num_workers=4, elastic=elastic), tmp_path)
    validate_custom(obj)
    assert obj["spec"]["elasticPolicy"] == {"minReplicas": 2, "maxReplicas": 8, "maxRestarts": 3, "rdzvBackend": "c10d"}
    assert list(obj["spec"]["pytorchReplicaSpecs"]) == ["Worker"]
    assert obj["spec"]["pytorchReplicaSpecs"]["Worker"] | {"template": None} == {
        "replicas": 4, "restartPolicy": "OnFailure", "template": None,
    }  # fmt: skip


def test_tfjob_workers(tmp_path: Path) -> None:
    obj, _ = build(rich_task("TFJob", num_workers=3), tmp_path)
    assert obj["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] == 3
    assert obj["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]["name"] == "tensorflow"


def test_mpijob_launcher_runs_the_command_without_gpus(tmp_path: Path) -> None:
    obj, _ = build(rich_task("MPIJob", num_workers=2), tmp_path)
    spec = obj["spec"]
    launcher = spec["mpiReplicaSpecs"]["Launcher"]["template"]["spec"]["containers"][0]
    worker = spec["mpiReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    assert (
        launcher["command"] == ["python", "/odin/work/train.py"]
        and "nvidia.com/gpu" not in launcher["resources"]["limits"]
    )
    assert "command" not in worker and worker["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert (spec["slotsPerWorker"], spec["mpiReplicaSpecs"]["Worker"]["replicas"]) == (2, 2)


def test_elasticjob(tmp_path: Path) -> None:
    elastic = {"min_replicas": 1, "max_replicas": 4, "max_restarts": 5}
    obj, _ = build(rich_task("ElasticJob", num_workers=2, elastic=elastic), tmp_path, elastic_rdzv_endpoint="etcd:2379")
    spec = obj["spec"]
    assert (spec["rdzvEndpoint"], spec["minReplicas"], spec["maxReplicas"], spec["backoffLimit"]) == (
        "etcd:2379",
        1,
        4,
        5,
    )
    assert spec["replicaSpecs"]["Worker"]["replicas"] == 2


def test_trainjob_overrides_the_runtime(tmp_path: Path) -> None:
    obj, _ = build(rich_task("TrainJob", num_workers=4), tmp_path, trainjob_runtime="torch-distributed")
    spec = obj["spec"]
    assert spec["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime",
                                  "name": "torch-distributed"}  # fmt: skip
    trainer = spec["trainer"]
    assert (trainer["numNodes"], trainer["image"]) == (4, "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime")
    assert trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"] == "2"
    assert spec["labels"].items() >= PROVENANCE.items()
    [override] = spec["podSpecOverrides"]
    assert override["targetJobs"] == [{"name": "node"}]
    assert {m["mountPath"] for m in override["containers"][0]["volumeMounts"]} >= {"/odin/work", "/data"}
    assert override["serviceAccountName"] == "trainer"


def test_a_misspelt_field_fails_crd_validation(tmp_path: Path) -> None:
    obj, _ = build(rich_task("PyTorchJob", num_workers=2), tmp_path)
    obj["spec"]["runPolicy"]["cleanPodPolicyy"] = "None"
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(obj)


def test_data_claim_gives_shared_run_and_root_paths(tmp_path: Path) -> None:
    obj, _ = build(rich_task(), tmp_path, data_claim="odin-data")
    validate_core(obj)
    mounts = {m["mountPath"]: m for m in obj["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["/odin/data"] == {"name": "odin-data", "mountPath": "/odin/data"}
    run_dir = "runs/resnet-0123456-1"
    assert mounts[f"/odin/data/{run_dir}"] == {
        "name": "odin-data",
        "mountPath": f"/odin/data/{run_dir}",
        "subPath": run_dir,
    }
    assert {"name": "odin-data", "persistentVolumeClaim": {"claimName": "odin-data"}} in obj["spec"]["volumes"]


def test_names_are_deterministic_dns_labels() -> None:
    assert names.attempt_name("train-abc1234-1", "prepare", 2) == "train-abc1234-1-prepare-2"
    long = names.attempt_name("a" * 50 + "-abc1234-1", "b" * 40, 1)
    assert len(long) <= 63 and names.is_dns1035(long)
    assert long == names.attempt_name("a" * 50 + "-abc1234-1", "b" * 40, 1)
    assert long != names.attempt_name("a" * 50 + "-abc1234-1", "b" * 40, 2)
    assert names.attempt_name("2024-exp-abc1234-1", "t", 1).startswith("o-2024-exp")
    assert len(names.attempt_name("x" * 60, "y", 1, max_length=50)) <= 50
    with pytest.raises(names.InvalidName):
        names.dns_name("___")


def test_label_values() -> None:
    assert names.label_value("train") == "train"
    assert names.label_value("vision/resnet") == "vision.resnet"
    assert names.label_value("") == ""
    cleaned = names.label_value("ml/very/" + "deep/" * 20 + "pipeline")
    assert len(cleaned) <= 63 and cleaned[0].isalnum() and cleaned[-1].isalnum()


def test_work_tree_keeps_structure_modes_and_binary_files(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "configs").mkdir(parents=True)
    (root / "train.py").write_text("print(1)\n")
    (root / "configs" / "base.yml").write_text("lr: 1\n")
    (root / "weights.bin").write_bytes(bytes(range(256)))
    script = root / "run me.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    (root / "outside").symlink_to("/etc/hostname")
    (root / "inside").symlink_to(root / "train.py")
    work = collect(root, name="r-work", tree="ab" * 20, max_bytes=1 << 20)
    assert work.skipped == ("outside",)
    items = {i["path"]: i for s in work.volume("odin-work")["projected"]["sources"] for i in s["configMap"]["items"]}
    assert set(items) == {"train.py", "configs/base.yml", "weights.bin", "run me.sh", "inside"}
    assert items["run me.sh"]["mode"] == 0o555 and items["train.py"]["mode"] == 0o444
    [cm] = work.config_maps({"app.kubernetes.io/managed-by": "odin"}, {"odin.dev/tree": "ab" * 20})
    validate_core(cm)
    assert cm["immutable"] is True
    assert cm["data"][items["configs/base.yml"]["key"]] == "lr: 1\n"
    assert items["weights.bin"]["key"] in cm["binaryData"]


def test_work_tree_splits_into_chunks_and_refuses_what_etcd_cannot_carry(tmp_path: Path) -> None:
    root = tmp_path / "big"
    root.mkdir()
    for i in range(3):
        (root / f"part{i}.txt").write_text("x" * 600_000)
    work = collect(root, name="r-work", tree=None, max_bytes=8 << 20)
    assert work.names == ("r-work", "r-work-1", "r-work-2")
    with pytest.raises(WorkTreeError, match="exceeds 1,000,000 bytes"):
        collect(root, name="r-work", tree=None, max_bytes=1_000_000)
    (root / "huge.bin").write_bytes(b"\0" * 1_100_000)
    with pytest.raises(WorkTreeError, match=r"huge\.bin is 1,100,000 bytes"):
        collect(root, name="r-work", tree=None, max_bytes=8 << 20)


@pytest.mark.parametrize("resource_type", ["Pod", "Job", "PyTorchJob"])
def test_the_original_odins_ephemeral_volumes_and_task_path_are_mounted(resource_type: str, tmp_path: Path) -> None:
    spec = rich_task(
        resource_type,
        num_workers=1 if resource_type != "PyTorchJob" else 2,
        args=("--out", "${TASK_PATH}/model"),
        ephem_volumes=(
            EphemeralVolume("dshm", ("/dev/shm",), medium="Memory", size_limit="8Gi"),
            EphemeralVolume("scratch", ("/scratch", "/tmp/scratch")),
        ),
    )
    obj, _ = build(spec, tmp_path)
    validate_manifest(obj)
    for template in pod_templates(obj):
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        assert volumes["ephem-0"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "8Gi"}
        assert volumes["ephem-1"]["emptyDir"] == {}
        mounts = {m["mountPath"]: m for m in template["spec"]["containers"][0]["volumeMounts"]}
        assert mounts["/dev/shm"] == {"name": "ephem-0", "mountPath": "/dev/shm"}
        assert mounts["/scratch"]["name"] == mounts["/tmp/scratch"]["name"] == "ephem-1"
        # ${TASK_PATH} is <RUN_PATH>/<task>: a subPath of the run's volume, which the kubelet creates
        assert mounts["/odin/run/train"] == {"name": "odin-run", "mountPath": "/odin/run/train", "subPath": "train"}
