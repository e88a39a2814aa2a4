"""`midgard serve` over real HTTP, as a subprocess: token, report, metrics, attribution of a real process."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from odin.midgard.collect import Collector
from odin.midgard.report import decode_report
from odin.midgard.server import ReportCache
from odin.testing.nvml import FakeNvml, fake_gpu, fake_mig_device
from tests.support.midgard import BIN, MidgardAgent
from tests.support.wait import wait_until


def test_token_is_required_and_checked(tmp_path: Path) -> None:
    with MidgardAgent(tmp_path, gpus=[fake_gpu(0)]) as agent:
        assert httpx.get(f"{agent.url}/healthz").text == "ok\n"  # probes need no token
        for path in ("/v1/report", "/metrics"):
            refused = httpx.get(f"{agent.url}{path}")
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("Bearer")
            wrong = httpx.get(f"{agent.url}{path}", headers={"Authorization": "Bearer not-the-token"})
            assert wrong.status_code == 401
            assert httpx.get(f"{agent.url}{path}", headers=agent.headers).status_code == 200
        assert httpx.post(f"{agent.url}/v1/report", headers=agent.headers).status_code == 405
        assert httpx.get(f"{agent.url}/v1/nope", headers=agent.headers).status_code == 404


def test_fake_multi_gpu_node_over_http(tmp_path: Path) -> None:
    gpus = [
        fake_gpu(0, utilization_gpu=93, memory_used=12 * 1024**3),
        fake_gpu(1, lost=True),
        fake_gpu(2, mig_mode=[1, 1], mig_devices=[fake_mig_device(1), fake_mig_device(2)], fan_speed=None),
        fake_gpu(3, name="NVIDIA A100-SXM4-40GB", temperature=None),
    ]
    with MidgardAgent(tmp_path, gpus=gpus) as agent:
        report = decode_report(httpx.get(f"{agent.url}/v1/report", headers=agent.headers).content)
        assert [g.index for g in report.gpus] == [0, 1, 2, 3]
        assert report.gpus[0].utilization_gpu_percent == 93
        assert report.gpus[1].lost
        assert len(report.gpus[2].mig_devices) == 2
        assert report.gpus[3].temperature_c is None
        assert report.gpu_unavailable_reason is None

        metrics = httpx.get(f"{agent.url}/metrics", headers=agent.headers)
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = metrics.text
        assert "# TYPE DCGM_FI_DEV_GPU_UTIL gauge" in text
        line = next(x for x in text.splitlines() if x.startswith("DCGM_FI_DEV_GPU_UTIL{") and 'gpu="0"' in x)
        assert 'UUID="GPU-00000000-0000-0000-0000-000000000000"' in line
        assert 'modelName="NVIDIA H100 80GB HBM3"' in line and 'device="nvidia0"' in line
        assert 'Hostname="' in line and 'odin_run=""' in line
        assert line.endswith(" 93")
        assert any(x.startswith("DCGM_FI_DEV_FB_USED{") and x.endswith(" 12288") for x in text.splitlines())
        assert not any(x.startswith("DCGM_FI_DEV_GPU_TEMP{") and 'gpu="3"' in x for x in text.splitlines())
        assert any(x.startswith("midgard_gpu_lost{") and 'gpu="1"' in x and x.endswith(" 1") for x in text.splitlines())


def test_this_machine_over_http_reports_its_system(tmp_path: Path) -> None:
    with MidgardAgent(tmp_path, gpus=None) as agent:  # the real pynvml
        report = decode_report(httpx.get(f"{agent.url}/v1/report", headers=agent.headers).content)
    assert report.system.hostname and report.system.cpu_count
    if report.nvml_version is None:  # no NVIDIA driver here (the usual CI machine)
        assert report.gpus == []
        assert report.gpu_unavailable_reason


def test_midgard_report_prints_system_and_reason() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIDGARD_")}
    done = subprocess.run([str(BIN / "midgard"), "report"], env=env, capture_output=True, timeout=60, check=True)
    report = decode_report(done.stdout)
    assert report.system.disks and report.system.disks[0].path == "/"
    if report.nvml_version is None:
        assert report.gpus == [] and "NVML" in (report.gpu_unavailable_reason or "")


def test_serve_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIDGARD_")}
    done = subprocess.run(
        [str(BIN / "midgard"), "serve", "--bind", "127.0.0.1:0"], env=env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode != 0 and b"no token" in done.stderr


def test_a_process_on_a_fake_gpu_is_attributed_to_its_odin_run(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ODIN_RUN": "r-42",
        "ODIN_TASK": "train",
        "ODIN_TASK_ID": "r-42--train",
        "ODIN_ATTEMPT": "2",
        "ODIN_COMMIT_SHA": "abc123",
        "ODIN_PIPELINE": "demo",
    }
    # The task's shell forks a worker without the variables: the worker is found through its parent.
    script = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import time; time.sleep(60)'], env={})"
    task = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        worker_pid = wait_until(lambda: _child_of(task.pid), 30, message="worker started")
        gpus = [fake_gpu(0, processes=[{"pid": task.pid, "used_memory": 1 << 30}, {"pid": worker_pid}])]
        with MidgardAgent(tmp_path, gpus=gpus) as agent:
            report = decode_report(httpx.get(f"{agent.url}/v1/report", headers=agent.headers).content)
            metrics = httpx.get(f"{agent.url}/metrics", headers=agent.headers).text
    finally:
        task.kill()
        task.wait(10)
    own, worker = report.gpus[0].processes
    assert own.attribution is not None and own.attribution.source == "environ"
    assert (own.attribution.odin_run, own.attribution.odin_task, own.attribution.odin_commit) == (
        "r-42",
        "train",
        "abc123",
    )
    assert own.attribution.odin_attempt == 2 and own.attribution.odin_task_id == "r-42--train"
    assert worker.attribution is not None and worker.attribution.source == "parent-environ"
    assert worker.attribution.odin_run == "r-42"
    assert 'odin_run="r-42",odin_task="train",odin_commit="abc123"' in metrics
    assert f'pid="{task.pid}"' in metrics


def _child_of(pid: int) -> int | None:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


@pytest.mark.timeout(60)
def test_a_burst_costs_one_nvml_pass() -> None:
    fake = FakeNvml([fake_gpu(i) for i in range(8)])
    cache = ReportCache(Collector(fake), ttl=60)

    async def burst() -> None:
        results = await asyncio.gather(*(cache.get() for _ in range(200)))
        assert len({id(r) for r in results}) == 1

    asyncio.run(burst())
    assert cache.passes == 1 and fake.calls == 1
    cache.ttl = 0
    asyncio.run(burst())
    assert fake.calls == 2  # expired: the next burst makes exactly one more pass
