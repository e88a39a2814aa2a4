"""GPU-aware local executor and admission (issue 10 item 5): real `odin run` processes over fake NVML."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from odin.cli.local_gpus import local_gpu_probe
from odin.controller.executors.local import LocalExecutor
from odin.controller.launcher import RunLauncher, RunRejected
from odin.schema.model import PipelineSpec
from odin.testing.nvml import fake_gpu, write_fake_gpus
from tests.support.server import BIN

# Each task records its GPU variables, and holds a directory while it runs: a second task in it at the same time
# (two tasks on one GPU) fails.
_TASK = (
    'mkdir "$ODIN_RUN_PATH/holding-$CUDA_VISIBLE_DEVICES" || exit 9; '
    'env | grep -E "^(CUDA|NVIDIA)_VISIBLE_DEVICES=" | sort > "$ODIN_RUN_PATH/$ODIN_TASK.env"; '
    'sleep 0.3; rmdir "$ODIN_RUN_PATH/holding-$CUDA_VISIBLE_DEVICES"'
)


def _pipeline(directory: Path, tasks: dict[str, int]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    spec = {
        "name": "gpus",
        "tasks": [
            {"name": name, "image": "busybox", "command": ["sh", "-c"], "args": [_TASK], "num_gpus": n}
            for name, n in tasks.items()
        ],
    }
    (directory / "main.yml").write_text(json.dumps(spec))
    return directory


def _odin_run(pipeline: Path, data: Path, fake: Path | None) -> subprocess.CompletedProcess[str]:
    env = {"NO_COLOR": "1", "PATH": "/usr/bin:/bin"}
    if fake is not None:
        env["MIDGARD_FAKE_NVML"] = str(fake)
    return subprocess.run(
        [str(BIN / "odin"), "run", str(pipeline), "--data-dir", str(data), "--parallelism", "4"],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip


def _fake(tmp_path: Path, count: int) -> Path:
    return write_fake_gpus(tmp_path / "gpus.json", [fake_gpu(i, name="NVIDIA A100-SXM4-80GB") for i in range(count)])


def _env(data: Path, task: str) -> dict[str, str]:
    text = (data / "runs" / "gpus-local-1" / f"{task}.env").read_text()
    return dict(line.split("=", 1) for line in text.splitlines())


def test_two_one_gpu_tasks_on_a_one_gpu_machine_run_one_after_the_other(tmp_path: Path) -> None:
    data = tmp_path / "data"
    res = _odin_run(_pipeline(tmp_path / "gpus", {"a": 1, "b": 1}), data, _fake(tmp_path, 1))
    assert res.returncode == 0, res.stdout + res.stderr
    for task in ("a", "b"):
        assert _env(data, task) == {"CUDA_VISIBLE_DEVICES": "0", "NVIDIA_VISIBLE_DEVICES": "0"}
    # Neither was failed nor retried: the second waited for the GPU.
    assert (data / "tasks" / "gpus-local-1" / "a.1.gpus").read_text().strip() == "0"
    assert not list((data / "tasks" / "gpus-local-1").glob("*.2.*"))


def test_a_two_gpu_task_gets_both(tmp_path: Path) -> None:
    data = tmp_path / "data"
    res = _odin_run(_pipeline(tmp_path / "gpus", {"train": 2}), data, _fake(tmp_path, 2))
    assert res.returncode == 0, res.stdout + res.stderr
    assert _env(data, "train") == {"CUDA_VISIBLE_DEVICES": "0,1", "NVIDIA_VISIBLE_DEVICES": "0,1"}


def test_cpu_tasks_get_no_gpu_variables(tmp_path: Path) -> None:
    data = tmp_path / "data"
    pipeline = _pipeline(tmp_path / "gpus", {"cpu": 0})
    res = _odin_run(pipeline, data, _fake(tmp_path, 1))
    assert res.returncode == 0, res.stdout + res.stderr
    assert _env(data, "cpu") == {}


def test_no_nvml_fails_a_gpu_task_permanently_with_the_reason(tmp_path: Path) -> None:
    data = tmp_path / "data"
    fake = tmp_path / "gpus.json"
    fake.write_text(json.dumps({"library_missing": True}))
    res = _odin_run(_pipeline(tmp_path / "gpus", {"train": 1, "cpu": 0}), data, fake)
    assert res.returncode == 1, res.stdout + res.stderr
    line = next(x for x in res.stdout.splitlines() if " train " in x)
    assert "failed" in line and "this machine has no GPU:" in line, res.stdout
    assert not (data / "runs" / "gpus-local-1" / "train.env").exists()  # it never ran
    assert _env(data, "cpu") == {}
    assert not list((data / "tasks" / "gpus-local-1").glob("train.2.*"))  # PERMANENT: not retried


def test_admission_rejects_more_gpus_than_the_largest_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(os.environ, "MIDGARD_FAKE_NVML", str(_fake(tmp_path, 2)))
    executor = LocalExecutor(tmp_path / "data", gpus=local_gpu_probe())
    try:
        launcher = RunLauncher.__new__(RunLauncher)
        launcher.admission = executor.gpu_shortfall
        spec = PipelineSpec.from_dict(
            {"name": "p", "tasks": [{"name": "train", "image": "x", "command": ["true"], "num_gpus": 4}]}
        )
        with pytest.raises(RunRejected) as e:
            launcher.admit(spec)
        assert e.value.message == "task train asks for 4 GPUs; the largest node has 2 (NVIDIA A100-SXM4-80GB)"
        assert e.value.status == 422
        launcher.admit(spec, skip={"train"})  # a rerun reusing it does not run it again

        def asking_for(product: str) -> PipelineSpec:
            task = {"name": "train", "image": "x", "command": ["true"], "num_gpus": 1,
                    "node_selector": {"nvidia.com/gpu.product": product}}  # fmt: skip
            return PipelineSpec.from_dict({"name": "p", "tasks": [task]})

        # A GPU model is named as GPU feature discovery labels a node: the same selector works on a cluster.
        launcher.admit(asking_for("NVIDIA-A100-SXM4-80GB"))
        with pytest.raises(RunRejected) as e:
            launcher.admit(asking_for("NVIDIA-H100-80GB-HBM3"))
        assert e.value.message == (
            "task train asks for a NVIDIA-H100-80GB-HBM3 GPU (nvidia.com/gpu.product in node_selector); this machine "
            "has 2 (NVIDIA A100-SXM4-80GB), labelled NVIDIA-A100-SXM4-80GB"
        )
    finally:
        executor.shutdown()
