"""This machine's GPUs for the controller (`GpuProbe`, `GpuSampleSource`), read by Midgard's in-process collection.

The controller may not import Midgard (they are sibling layers), so the commands that build one (`odin serve`,
`odin run`) hand it this probe, and `odin serve` the source its GPU usage sampler reads. The test-only
`MIDGARD_FAKE_NVML` applies as it does to the agent (docs/midgard.md).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from odin.controller.gpus import GpuHolder, GpuProbe, GpuReading, GpuSample, GpuSampleSource, LocalGpu, LocalGpus

if TYPE_CHECKING:
    from odin.midgard.collect import Collector
    from odin.midgard.report import GpuReport


def local_gpu_probe() -> GpuProbe:
    """Reads NVML once, on first use (building a controller touches no NVML), and answers that for the process's
    life: GPUs do not come and go under a running Odin. Lost or unreadable GPUs are left out (nothing can run on
    them)."""
    answer: list[LocalGpus] = []
    lock = threading.Lock()

    def probe() -> LocalGpus:
        with lock:
            if not answer:
                answer.append(_read())
            return answer[0]

    return probe


def _read() -> LocalGpus:
    from odin.midgard.collect import collect_report

    report = collect_report()
    gpus = tuple(
        LocalGpu(index=g.index, name=g.name or "unknown GPU") for g in report.gpus if not g.lost and g.error is None
    )
    reason = report.gpu_unavailable_reason
    if not gpus and reason is None:
        reason = "NVML reports no usable GPU" if report.gpus else "NVML found no GPU on this node"
    return LocalGpus(gpus=gpus, unavailable_reason=reason if not gpus else None)


def local_gpu_sampler() -> GpuSampleSource:
    """Readings of this machine's GPUs with the Odin tasks whose processes run on each, for the controller's GPU
    usage sampler. One long-lived Midgard `Collector` (NVML initialised once, on the first sample); no system report
    and no pod names (a local task has none), so a sample costs one NVML pass plus a few /proc reads per process."""
    collectors: list[Collector] = []
    lock = threading.Lock()

    def sample() -> GpuSample:
        with lock:
            if not collectors:
                from odin.midgard.collect import Collector, CollectorConfig

                collectors.append(Collector(config=CollectorConfig(pod_log_root=None)))
            reports = collectors[0].collect_gpus()
        return GpuSample(gpus=tuple(_reading(g) for g in reports if not g.lost and g.error is None and g.uuid))

    return sample


def _reading(gpu: GpuReport) -> GpuReading:
    holders: list[GpuHolder] = []
    for process in gpu.processes:
        a = process.attribution
        if a is None or not a.odin_run or not a.odin_task:
            continue
        holder = GpuHolder(a.odin_run, a.odin_task, a.odin_attempt)
        if holder not in holders:
            holders.append(holder)
    return GpuReading(
        index=gpu.index,
        uuid=gpu.uuid or "",
        name=gpu.name or "unknown GPU",
        utilization_percent=gpu.utilization_gpu_percent,
        memory_used_bytes=gpu.memory_used_bytes,
        holders=tuple(holders),
    )
