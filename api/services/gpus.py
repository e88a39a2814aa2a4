"""Nodes and GPUs of the cluster for `/v1/nodes` and `/v1/gpus`: the Midgard fan-out, attribution and filters.

Built once per app from `Settings` (`from_settings`):

- no Midgard configured: this machine, read in-process by the agent's own collection code (the embedded default);
- `ODIN_MIDGARD_AGENTS`: that static list of agent URLs;
- `ODIN_MIDGARD_SERVICE`: the agents behind the Service, listed through its EndpointSlices (the Kubernetes adapter),
  re-listed every `midgard_discovery_interval`; a failed listing keeps the previous list.

Attribution: an agent names the Odin run, task and commit of a GPU process when it can read them from the process
(the `ODIN_*` environment, local executor); on Kubernetes it names the pod, and the pod's `odin.dev/*` labels give the
run, task and commit (one cached `get pod` per pod).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import anyio.to_thread

from odin.api.schemas.gpus import GpuList, GpuOut, Holder, NodeList, NodeOut, Source
from odin.controller.settings import Settings
from odin.midgard.aggregate import Agent, Aggregator, Collect, Discover, NodeReading, static
from odin.midgard.report import Attribution, GpuReport, NodeReport

if TYPE_CHECKING:
    from odin.controller.executors.kubernetes.discovery import MidgardDiscovery, PodProvenance

log = logging.getLogger(__name__)

PodLookup = Callable[[str, str], "PodProvenance | None"]


def is_free(gpu: GpuReport) -> bool:
    """Free: readable, no process on it and no pod assigned it (MIG devices' processes and allocations count)."""
    if gpu.lost or gpu.error is not None:
        return False
    if gpu.processes or gpu.allocations:
        return False
    return not any(m.allocations for m in gpu.mig_devices)


class GpuService:
    def __init__(self, aggregator: Aggregator, source: Source, *, pods: PodLookup | None = None) -> None:
        self.aggregator = aggregator
        self.source = source
        self._pods = pods
        self._closers: list[Callable[[], None]] = []

    @classmethod
    def from_settings(cls, settings: Settings, *, local: Collect | None = None) -> GpuService:
        """The service `odin serve` uses. `local` replaces the agent's in-process collection (tests, tools)."""
        mode = settings.midgard_mode()
        timeout, ttl = settings.midgard_timeout, settings.midgard_cache_ttl
        if mode == "embedded":
            return cls(
                Aggregator(None, local=local or local_collector(settings), timeout=timeout, cache_ttl=ttl), "embedded"
            )
        token = _token_reader(settings)
        if mode == "static":
            agents = [Agent(url=u.rstrip("/")) for u in settings.midgard_agents]
            return cls(Aggregator(static(agents), token=token, timeout=timeout, cache_ttl=ttl), "static")
        from odin.controller.executors.kubernetes.discovery import MidgardDiscovery

        discovery = MidgardDiscovery.from_settings(settings)
        service = cls(
            Aggregator(
                _discovered(discovery, settings.midgard_discovery_interval), token=token, timeout=timeout, cache_ttl=ttl
            ),
            "kubernetes",
            pods=discovery.pod,
        )
        service._closers.append(discovery.close)
        return service

    async def aclose(self) -> None:
        await self.aggregator.aclose()
        for close in self._closers:
            close()

    # -- views ----------------------------------------------------------------------------------------------------
    async def nodes(self, *, node: str | None = None) -> NodeList:
        readings = await self.aggregator.readings()
        items = [_node_out(r) for r in readings if node is None or r.node == node]
        return NodeList(source=self.source, items=items, unreachable=sum(1 for r in readings if not r.reachable))

    async def gpus(
        self, *, free: bool | None = None, node: str | None = None, model: str | None = None, run: str | None = None
    ) -> GpuList:
        readings = await self.aggregator.readings()
        everything: list[GpuOut] = []
        for reading in readings:
            if reading.report is None:
                continue
            for gpu in reading.report.gpus:
                everything.append(
                    GpuOut(
                        node=reading.node,
                        index=gpu.index,
                        uuid=gpu.uuid,
                        model=gpu.name,
                        free=is_free(gpu),
                        holders=[],
                        reachable=reading.reachable,
                        age_seconds=reading.age_seconds,
                        gpu=gpu,
                    )
                )
        wanted = [
            g
            for g in everything
            if (free is None or g.free == free)
            and (node is None or g.node == node)
            and (model is None or model.lower() in (g.model or "").lower())
        ]
        if wanted and any(not g.free for g in wanted):
            wanted = await anyio.to_thread.run_sync(self._attribute, wanted) if self._pods else self._attribute(wanted)
        if run is not None:
            wanted = [g for g in wanted if any(h.run == run for h in g.holders)]
        return GpuList(
            source=self.source,
            items=wanted,
            total=len(everything),
            free=sum(1 for g in everything if g.free),
            unreachable_nodes=[r.node for r in readings if not r.reachable],
            gpu_unavailable={
                r.node: r.report.gpu_unavailable_reason
                for r in readings
                if r.report is not None and r.report.gpu_unavailable_reason
            },
        )

    def _attribute(self, gpus: list[GpuOut]) -> list[GpuOut]:
        for g in gpus:
            g.holders = holders_of(g.gpu, self._pods)
        return gpus


def holders_of(gpu: GpuReport, pods: PodLookup | None = None) -> list[Holder]:
    """Who holds `gpu`: its processes grouped by run/task (or pod), then pods assigned it without a process."""
    found: dict[tuple[str | int | None, ...], Holder] = {}

    def holder_for(attribution: Attribution | None) -> Holder:
        h = _holder(attribution, pods)
        key: tuple[str | int | None, ...] = (h.run, h.task, h.attempt, h.pod) if (h.run or h.pod) else ("?",)
        return found.setdefault(key, h)

    for process in gpu.processes:
        h = holder_for(process.attribution)
        h.pids.append(process.pid)
        if process.used_memory_bytes is not None:
            h.used_memory_bytes = (h.used_memory_bytes or 0) + process.used_memory_bytes
    for allocation in [*gpu.allocations, *(a for m in gpu.mig_devices for a in m.allocations)]:
        holder_for(allocation)
    return list(found.values())


def _holder(a: Attribution | None, pods: PodLookup | None) -> Holder:
    if a is None:
        return Holder()
    pod = f"{a.pod_namespace}/{a.pod_name}" if a.pod_namespace and a.pod_name else None
    holder = Holder(
        run=a.odin_run,
        task=a.odin_task,
        commit=a.odin_commit,
        attempt=a.odin_attempt,
        pipeline=a.odin_pipeline,
        pod=pod,
    )
    if holder.run is None and pods is not None and a.pod_namespace and a.pod_name:
        labels = pods(a.pod_namespace, a.pod_name)
        if labels is not None:
            holder.run, holder.task, holder.commit = labels.run, labels.task, labels.commit
            holder.attempt, holder.pipeline = labels.attempt, labels.pipeline
    return holder


def _node_out(r: NodeReading) -> NodeOut:
    report = r.report
    return NodeOut(
        node=r.node,
        url=r.url,
        reachable=r.reachable,
        error=r.error,
        observed_at=r.observed_at,
        age_seconds=r.age_seconds,
        gpu_count=len(report.gpus) if report else 0,
        gpus_free=sum(1 for g in report.gpus if is_free(g)) if report else 0,
        gpu_unavailable_reason=report.gpu_unavailable_reason if report else None,
        report=report,
    )


def _token_reader(settings: Settings) -> Callable[[], str | None]:
    """The agents' token, re-read at most every 10 s when it is a reference (a rotated Secret needs no restart)."""
    secret = settings.midgard_token
    if secret is None:
        return lambda: None
    value = secret.get_secret_value()
    if not value.startswith(("env:", "file:")):
        return lambda: value
    from odin.controller.git.credentials import resolve_secret_ref
    from odin.controller.git.errors import SecretUnavailable

    cached: list[tuple[float, str | None]] = []

    def read() -> str | None:
        now = time.monotonic()
        if cached and now - cached[0][0] < 10.0:
            return cached[0][1]
        try:
            token: str | None = resolve_secret_ref(value)
        except SecretUnavailable as e:  # names the reference, never a value
            log.warning("Midgard token: %s; asking agents without one", e)
            token = None
        cached[:] = [(now, token)]
        return token

    return read


def _discovered(discovery: MidgardDiscovery, interval: float) -> Discover:
    """The Service's agents, re-listed every `interval` seconds in a worker thread; the last list on failure."""
    from odin.controller.executors.kubernetes.errors import KubeApiError

    last: list[Sequence[Agent]] = []
    listed_at = [float("-inf")]

    async def discover() -> Sequence[Agent]:
        if last and time.monotonic() - listed_at[0] < interval:
            return last[0]
        try:
            endpoints = await anyio.to_thread.run_sync(discovery.agents)
        except KubeApiError as e:
            log.warning("listing Midgard agents (Service %s/%s): %s", discovery.namespace, discovery.service, e)
            # Keep the last list; without one, try again within a few seconds rather than a whole interval.
            listed_at[0] = time.monotonic() - (0 if last else max(0.0, interval - 5.0))
            return last[0] if last else ()
        agents = tuple(Agent(url=e.url, node=e.node, ready=e.ready) for e in endpoints)
        last[:] = [agents]
        listed_at[0] = time.monotonic()
        return agents

    return discover


def local_collector(settings: Settings) -> Collect:
    """The agent's own collection (`odin.midgard.collect.Collector`) for this machine: the embedded default.

    Created on first use, so building an app (tests, `odin openapi`) touches neither NVML nor psutil; kept for the
    process's life (NVML initialised once, CPU utilisation measured between reports). One collection at a time: a
    call abandoned by the timeout may still be running when the next one comes."""
    from odin.midgard.collect import Collector, CollectorConfig

    collector: list[Collector] = []
    lock = threading.Lock()

    def run() -> NodeReport:
        with lock:
            if not collector:
                collector.append(Collector(config=CollectorConfig(data_paths=[str(settings.data_dir)])))
            return collector[0].collect()

    return run
