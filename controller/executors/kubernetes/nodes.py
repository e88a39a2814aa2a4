"""The cluster's nodes as GPU admission sees them: allocatable `nvidia.com/gpu` and labels, read from Node objects.

Why Node objects and not Midgard: admission must know what *could* ever hold a task, which is what the kubelet
advertises (`status.allocatable`, set by the NVIDIA device plugin) and what GPU feature discovery labels
(`nvidia.com/gpu.product`), including nodes whose agent is down. It needs `get`/`list` on nodes (a ClusterRole:
deploy/base/rbac.yaml).

Why cached and bounded: every run creation asks, on the API's request thread (or the sync's), so the list is kept
`ttl` seconds (30 by default: a node pool that grows is seen within that), one refresh runs at a time, and a refresh
gives up after `timeout` seconds. When the nodes cannot be read (API down, RBAC missing), the run is admitted and a
warning logged, the same rule as the local executor without NVML: admission only refuses what it *knows* cannot fit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from odin.controller.admission import GpuAsk, NodeGpus, cluster_shortfall
from odin.controller.executors.kubernetes.api import Json, KubeApi
from odin.controller.executors.kubernetes.errors import Forbidden, KubeApiError
from odin.controller.executors.kubernetes.manifests import GPU_RESOURCE

log = logging.getLogger(__name__)

FAILURE_TTL = 5.0
"""Seconds a failed read is remembered: while the API is down, run creation does not wait `timeout` every time."""


def node_gpus(node: Json) -> NodeGpus:
    """One Node object as admission sees it (a pure function: tested without a cluster)."""
    meta = node.get("metadata") or {}
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    return NodeGpus(
        name=str(meta.get("name") or "?"),
        gpus=_count(allocatable.get(GPU_RESOURCE)),
        labels={str(k): str(v) for k, v in (meta.get("labels") or {}).items()},
    )


def _count(quantity: object) -> int:
    """An extended resource's quantity: a whole number ("8"); anything else counts as none."""
    try:
        return max(0, int(str(quantity)))
    except ValueError:
        return 0


class NodeInventory:
    """The nodes, cached `ttl` seconds; `shortfall` is the Kubernetes executor's `gpu_shortfall`."""

    def __init__(
        self,
        api: KubeApi,
        *,
        ttl: float = 30.0,
        timeout: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.ttl = ttl
        self.timeout = timeout
        self.clock = clock
        self._refresh = threading.Lock()  # one read at a time; the others wait for it (bounded by `timeout`)
        self._nodes: list[NodeGpus] | None = None
        self._read_at: float | None = None
        self._failing = False

    def nodes(self) -> list[NodeGpus] | None:
        """The cluster's nodes, at most `ttl` seconds old; None when they cannot be read now."""
        with self._refresh:
            now = self.clock()
            age = None if self._read_at is None else now - self._read_at
            if age is not None and age < (FAILURE_TTL if self._nodes is None else self.ttl):
                return self._nodes
            try:
                listed = [node_gpus(n) for n in self.api.list_nodes(timeout=self.timeout)]
                nodes = sorted(listed, key=lambda n: (-n.gpus, n.name))  # largest first: what `cluster_shortfall` scans
            except KubeApiError as e:
                self._warn(e)
                self._nodes = None
            else:
                if self._failing:
                    log.info("GPU admission: the cluster's nodes are readable again (%d nodes)", len(nodes))
                self._failing = False
                self._nodes = nodes
            self._read_at = self.clock()
            return self._nodes

    def shortfall(self, asks: Sequence[GpuAsk]) -> str | None:
        if not asks:
            return None
        nodes = self.nodes()
        # No node at all is no cluster anyone schedules on today: a view Odin cannot judge from (a virtual or
        # serverless node pool that appears on demand), so admit rather than refuse every GPU task.
        return cluster_shortfall(asks, nodes) if nodes else None

    def _warn(self, error: KubeApiError) -> None:
        """Once per outage: a warning saying runs are admitted unchecked, and what to do about RBAC."""
        if self._failing:
            return
        self._failing = True
        hint = ""
        if isinstance(error, Forbidden):
            hint = " (grant the ClusterRole odin-node-reader of deploy/base/rbac.yaml: get and list nodes)"
        log.warning(
            "GPU admission: cannot read the cluster's nodes (%s)%s; runs are admitted without checking their GPUs",
            error.message,
            hint,
        )
