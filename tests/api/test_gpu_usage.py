"""What a task used of its GPUs (issue 10 item 4), end to end: a real `odin serve` over fake NVML sampling a running
local task every 0.2 s, `GET /v1/runs/{id}` showing the summary live and at the end, the idle flag and its event when
utilisation stays at 0, `odinctl show`; and a task found on a GPU only through its process's ODIN_* environment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from odin.testing.nvml import GIB, fake_gpu, write_fake_gpus
from tests.api.conftest import PASSWORD, Served, start_server
from tests.support.server import odinctl
from tests.support.wait import wait_until

# A task that records its pid and holds until the test releases it (the `go-<run>` mark).
_HOLD = "echo $$ > {marks}/pid-$ODIN_RUN; while [ ! -e {marks}/go-$ODIN_RUN ]; do sleep 0.05; done"
PIPELINE = (
    "name: {name}\ntasks:\n  - name: train\n    image: busybox\n    num_gpus: {gpus}\n    command: [sh, -c, {script}]\n"
)


def _gpus(path: Path, *gpus: dict[str, Any]) -> None:
    write_fake_gpus(path, list(gpus))


@pytest.fixture(scope="module")
def gpu_served(module_db: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    backend, url = module_db
    tmp = tmp_path_factory.mktemp(f"gpu-usage-{backend}")
    fake = tmp / "gpus.json"
    _gpus(fake, fake_gpu(0), fake_gpu(1))
    env = {
        "MIDGARD_FAKE_NVML": str(fake),
        "ODIN_GPU_SAMPLE_INTERVAL": "0.2",
        "ODIN_GPU_IDLE_AFTER": "1",
        "ODIN_GPU_IDLE_UTILIZATION": "5",
    }
    served = start_server(tmp, url, backend, env)
    try:
        files = {
            f"{name}/main.yml": PIPELINE.format(name=name, gpus=n, script=json.dumps(_HOLD.format(marks=served.marks)))
            for name, n in (("gpuuse", 1), ("sneaky", 0))
        }
        served.remote.commit(files, message="gpu pipelines")
        for name in ("gpuuse", "sneaky"):
            wait_until(lambda n=name: served.get(f"/v1/pipelines/{n}").status_code == 200, 30, message=f"{name} synced")
        # The commit started both pipelines once (automatic runs): let those end, so each test's run has GPU 0.
        automatic = wait_until(lambda: len(r := served.get("/v1/runs").json()["items"]) >= 2 and r, 30, message="runs")
        served.release_all()
        for r in automatic:
            served.wait_run(r["id"])
        yield served, fake
    finally:
        served.release_all()
        served.server.stop()


def _task(served: Served, run_id: str) -> dict[str, Any]:
    r = served.get(f"/v1/runs/{run_id}")
    assert r.status_code == 200, r.text
    [task] = r.json()["tasks"]
    return dict(task)


def test_a_running_task_shows_its_usage_live_then_idle_then_final(
    gpu_served: tuple[Served, Path], tmp_path: Path
) -> None:
    served, fake = gpu_served
    _gpus(fake, fake_gpu(0, utilization_gpu=80, memory_used=30 * GIB), fake_gpu(1, utilization_gpu=100))
    run = served.start("gpuuse")
    pid_file = served.marks / f"pid-{run['id']}"
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 30, message="the task started")

    def sampled_busy() -> dict[str, Any] | None:
        usage = _task(served, run["id"])["gpu_usage"]
        return usage if usage and usage["samples"] >= 2 and usage["utilization_peak_percent"] == 80 else None

    live = wait_until(sampled_busy, 30, message="the running task's usage is shown")
    assert live["running"] and live["attempt"] == 1 and live["idle"] is None
    assert [(g["index"], g["model"]) for g in live["gpus"]] == [(0, "NVIDIA H100 80GB HBM3")], "the GPU it was given"
    assert live["memory_peak_bytes"] == 30 * GIB and live["gpu_seconds"] > 0

    # Utilisation drops to 0 and stays there: after ODIN_GPU_IDLE_AFTER (1 s) the task is flagged, never killed.
    _gpus(fake, fake_gpu(0, utilization_gpu=0, memory_used=30 * GIB), fake_gpu(1, utilization_gpu=100))
    idle_task = wait_until(lambda: (t := _task(served, run["id"]))["gpu_idle"] and t, 30, message="flagged idle")
    assert idle_task["status"] == "running"
    assert idle_task["gpu_usage"]["idle"]["active"] and idle_task["gpu_usage"]["idle"]["threshold_percent"] == 5
    events = served.get(f"/v1/runs/{run['id']}/events", params={"task": "train"}).json()["items"]
    [idle_event] = [e for e in events if e["kind"] == "task.gpu_idle"]
    assert idle_event["data"]["gpus"] == ["GPU-00000000-0000-0000-0000-000000000000"]
    assert "left running" in idle_event["data"]["message"]

    served.release(run["id"])
    assert served.wait_run(run["id"])["status"] == "succeeded"
    final = wait_until(
        lambda: (u := _task(served, run["id"])["gpu_usage"]) and not u["running"] and u, 30, message="closed"
    )
    assert final["utilization_peak_percent"] == 80 and 0 < final["utilization_mean_percent"] < 80
    assert final["gpu_seconds"] >= 1.0 and final["idle"] is not None

    res = odinctl("login", "--password-stdin", server=served.server, config_dir=tmp_path, stdin=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    shown = odinctl("show", run["id"], server=served.server, config_dir=tmp_path)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "GPU USAGE" in out and "GPU·s" in out, out
    assert "1× H100 80GB HBM3" in out, out  # noqa: RUF001 (the multiplication sign odinctl prints)
    assert "util mean" in out and "peak 80%" in out and "mem peak 30.0 GiB" in out and "IDLE GPU" in out, out


def test_a_task_is_found_on_a_gpu_through_its_process(gpu_served: tuple[Served, Path]) -> None:
    """`num_gpus: 0`, so the executor gave it nothing; its process shows up on GPU 1 (Midgard reads its ODIN_* env
    from /proc): that GPU is its usage, and only for as long as it runs."""
    served, fake = gpu_served
    _gpus(fake, fake_gpu(0), fake_gpu(1))
    run = served.start("sneaky")
    pid_file = served.marks / f"pid-{run['id']}"
    pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 30, message="the task started"))
    _gpus(
        fake,
        fake_gpu(0, utilization_gpu=100),
        fake_gpu(1, utilization_gpu=60, memory_used=5 * GIB, processes=[{"pid": pid, "used_memory": 5 * GIB}]),
    )
    usage = wait_until(lambda: _task(served, run["id"])["gpu_usage"], 30, message="found through its process")
    assert [g["index"] for g in usage["gpus"]] == [1] and usage["utilization_peak_percent"] == 60
    served.release(run["id"])
    assert served.wait_run(run["id"])["status"] == "succeeded"
    final = wait_until(
        lambda: (u := _task(served, run["id"])["gpu_usage"]) and not u["running"] and u, 30, message="closed"
    )
    assert final["memory_peak_bytes"] == 5 * GIB and not _task(served, run["id"])["gpu_idle"]
