"""The GPU usage sampler fed by Midgard agents instead of this machine's NVML (static agents here; the Service's on
Kubernetes goes through the same `GpuService`): real agent processes over HTTP, a real store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from odin.api.services.runs import get_run
from odin.cli.cluster_gpus import cluster_gpu_sampler
from odin.cli.server import gpu_sample_source
from odin.controller.gpu_sampler import GpuSampler
from odin.controller.gpu_usage import IdlePolicy
from odin.controller.gpus import GpuHolder
from odin.controller.settings import Settings
from tests.gpus.test_gpu_usage import GIB, _Executor, _run
from tests.support.agents import agent_group


def settings_for(tmp_path: Path, urls: list[str]) -> Settings:
    return Settings(data_dir=tmp_path, midgard_agents=urls, midgard_timeout=2.0, midgard_cache_ttl=0)


def test_agents_readings_become_samples_of_the_attempts_holding_them(tmp_path: Path) -> None:
    with agent_group(2, run="run-a") as group:
        source = cluster_gpu_sampler(settings_for(tmp_path, group.urls))
        sample = source()
        # only held GPUs of answering nodes: GPU 0 of each agent, told apart by node and UUID (indices repeat)
        assert sorted((r.node, r.index, r.uuid) for r in sample.gpus) == sorted(
            (f"agent-{p}", 0, f"GPU-{p}-0") for p in group.ports
        )
        for r in sample.gpus:
            assert r.holders == (GpuHolder("run-a", "train", 1),)
            assert (r.utilization_percent, r.memory_used_bytes, r.name) == (97, 30 * GIB, "NVIDIA H100 80GB HBM3")
        group.kill()
        assert source().gpus == ()  # a dead node's last good reading adds nothing


def test_a_task_spread_over_nodes_is_summed_and_closed_when_its_nodes_go(db: Engine, tmp_path: Path) -> None:
    run_id = _run(db)
    now = [100.0]
    with agent_group(2, run=run_id) as group:
        sampler = GpuSampler(
            db, _Executor(), cluster_gpu_sampler(settings_for(tmp_path, group.urls)), interval=5.0,
            policy=IdlePolicy(5, 600), node="controller-host", clock=lambda: now[0],
        )  # fmt: skip
        sampler.sample_once()
        now[0] = 105.0
        sampler.sample_once()
        train = _usage(db, run_id)
        assert train is not None and train.running
        assert sorted(g.uuid for g in train.gpus) == sorted(f"GPU-{p}-0" for p in group.ports)
        assert train.gpu_seconds == 2 * (5.0 + 5.0)  # two GPUs, each counted from the first sample's interval
        assert train.node in {f"agent-{p}" for p in group.ports}  # the GPUs' node, not the controller's
        assert train.utilization_peak_percent == 97 and train.memory_peak_bytes == 30 * GIB
        group.kill()
        for _ in range(3):  # attribution-only: closed after the grace of unseen samples
            now[0] += 5.0
            sampler.sample_once()
    closed = _usage(db, run_id)
    assert closed is not None and not closed.running and closed.gpu_seconds == 20.0


def test_the_sampler_reads_agents_when_they_are_configured(tmp_path: Path) -> None:
    from odin.cli import local_gpus

    embedded = gpu_sample_source(Settings(data_dir=tmp_path))
    assert embedded.__qualname__.startswith(local_gpus.local_gpu_sampler.__name__)
    agents = gpu_sample_source(settings_for(tmp_path, ["http://127.0.0.1:9"]))
    assert agents.__qualname__.startswith(cluster_gpu_sampler.__name__)


def _usage(db: Engine, run_id: str) -> Any:
    return {t.name: t for t in get_run(db, run_id).tasks}["train"].gpu_usage
