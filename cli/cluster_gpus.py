"""The GPU usage sampler's source when GPUs are read by Midgard agents (a static list, or the agents behind Midgard's
Service on Kubernetes), not by this process.

The controller samples running tasks' GPUs through a `GpuSampleSource` (`controller/gpu_sampler.py`): on the embedded
default that is Midgard's in-process collection (`local_gpus.local_gpu_sampler`); with agents it is this, the API's
own aggregation (`GpuService`: every agent at once, each with a timeout; holders resolved from a process's ODIN_*
environment or its pod's Odin labels). The service is async and the sampler is a thread, so the service lives on one
long-lived event loop of its own (started on the first sample), not on a loop made and torn down per sample.

Only GPUs read just now count: an unreachable node's last good reading is left out, so a dead node adds no
GPU-seconds to the tasks it held. GPUs are told apart by UUID (indices repeat across nodes), and each reading carries
its node, so a task's summary names the node it ran on.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from odin.controller.gpus import GpuHolder, GpuReading, GpuSample, GpuSampleSource
from odin.controller.settings import Settings

if TYPE_CHECKING:
    from odin.api.schemas.gpus import GpuOut
    from odin.api.services.gpus import GpuService

log = logging.getLogger(__name__)

T = TypeVar("T")


class _LoopThread:
    """One event loop on a daemon thread, for calling an async service from synchronous code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="odin-gpu-sampler-loop", daemon=True)
        self.thread.start()

    def call(self, make: Callable[[], Coroutine[Any, Any, T]], timeout: float) -> T:
        return asyncio.run_coroutine_threadsafe(make(), self.loop).result(timeout)


def cluster_gpu_sampler(settings: Settings, *, service: Callable[[], GpuService] | None = None) -> GpuSampleSource:
    """Readings of every reachable agent's GPUs with the Odin task attempts holding each. `service` builds the
    aggregation (default: `GpuService.from_settings`, as the API's)."""
    state: dict[str, Any] = {}
    lock = threading.Lock()
    # Each agent answers within `midgard_timeout` or is left out, so a sample takes about that long at most; the
    # margin covers discovery (Kubernetes) and the attribution lookups of pods.
    timeout = settings.midgard_timeout * 2 + 5

    def sample() -> GpuSample:
        with lock:
            if not state:
                from odin.api.services.gpus import GpuService

                runner = _LoopThread()
                make = service or (lambda: GpuService.from_settings(settings))
                state["runner"], state["service"] = runner, runner.call(_build(make), timeout)
        runner, gpu_service = state["runner"], state["service"]
        listing = runner.call(lambda: gpu_service.gpus(free=False), timeout)
        return GpuSample(gpus=tuple(r for g in listing.items if (r := _reading(g)) is not None))

    return sample


def _build(make: Callable[[], GpuService]) -> Callable[[], Coroutine[Any, Any, GpuService]]:
    async def build() -> GpuService:  # created on the loop that will use it (its HTTP client binds to that loop)
        return make()

    return build


def _reading(gpu: GpuOut) -> GpuReading | None:
    """The sampler's reading of one aggregated GPU, or None when it says nothing about now (an unreachable node's
    last good reading, a lost GPU) or no Odin task attempt holds it."""
    report = gpu.gpu
    if not gpu.reachable or report.lost or report.error is not None or not gpu.uuid:
        return None
    holders: list[GpuHolder] = []
    for h in gpu.holders:
        if h.run and h.task:
            holder = GpuHolder(h.run, h.task, h.attempt)
            if holder not in holders:
                holders.append(holder)
    if not holders:
        return None
    return GpuReading(
        index=gpu.index,
        uuid=gpu.uuid,
        name=gpu.model or "unknown GPU",
        utilization_percent=report.utilization_gpu_percent,
        memory_used_bytes=report.memory_used_bytes,
        holders=tuple(holders),
        node=gpu.node,
    )
