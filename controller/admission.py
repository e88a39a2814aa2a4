"""GPU-aware admission: can a run's GPU tasks ever be placed on the nodes that exist, and if not, why.

One rule for every way a run is created (the API, `odinctl run`, reruns, and runs a push starts through sync): a
task asking for more GPUs than any node has, or for a GPU model (through `node_selector`) that no node offers, would
wait Pending for ever, so it is refused when the run is created, with a message naming what exists. The executor
answers (`Executor.gpu_shortfall`): the local one from this machine's GPUs, the Kubernetes one from the cluster's
Node objects. What the nodes *are* is judged here, as a pure function, so both paths and both executors say the
same thing in the same words.

Admission judges what can *never* fit (allocatable GPUs, labels), not what is free now: a task that fits a busy node
is admitted and waits its turn. Only GPU tasks are judged (`num_gpus > 0`, or a GPU product in `node_selector`):
CPU tasks with other selectors are left to the scheduler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from odin.schema.model import PipelineSpec

log = logging.getLogger(__name__)

PRODUCT_LABEL = "nvidia.com/gpu.product"
"""The GPU model label of NVIDIA's GPU feature discovery (e.g. NVIDIA-H100-80GB-HBM3)."""
TIMES = "\u00d7"  # "8x H100" in messages, as a multiplication sign (escaped: ruff flags the character itself)


@dataclass(frozen=True, slots=True)
class GpuAsk:
    """What one task needs from one node (a pod: distributed tasks ask this per replica)."""

    task: str
    gpus: int
    node_selector: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NodeGpus:
    """One node as admission sees it: its allocatable GPUs and its labels."""

    name: str
    gpus: int
    labels: Mapping[str, str] = field(default_factory=dict)

    def matches(self, selector: Mapping[str, str]) -> bool:
        return all(self.labels.get(k) == v for k, v in selector.items())

    def describe(self) -> str:
        """`node-a: 8\u00d7 NVIDIA-H100-80GB-HBM3` (a multiplication sign)."""
        return f"{self.name}: {self.gpus}{TIMES} {self.labels.get(PRODUCT_LABEL, 'GPU (no product label)')}"


GpuCheck = Callable[[Sequence[GpuAsk]], str | None]
"""Why one of these asks can never be placed, or None (also when the nodes cannot be read: admit)."""


def gpu_asks(spec: PipelineSpec, *, skip: Collection[str] = ()) -> list[GpuAsk]:
    """The GPU tasks of a pipeline, less those a rerun reuses (they are not run again, so not judged)."""
    return [
        GpuAsk(t.name, t.num_gpus, dict(t.node_selector))
        for t in spec.tasks
        if t.name not in skip and (t.num_gpus > 0 or PRODUCT_LABEL in t.node_selector)
    ]


def judge(check: GpuCheck | None, spec: PipelineSpec, *, skip: Collection[str] = ()) -> str | None:
    """Why a run of `spec` can never start, or None: THE admission step of every run creation (launcher and sync).

    A check that fails unexpectedly admits the run (logged): admission may only refuse what it knows cannot fit."""
    if check is None:
        return None
    asks = gpu_asks(spec, skip=skip)
    if not asks:
        return None
    try:
        return check(asks)
    except Exception:
        log.exception("GPU admission failed; admitting the run without checking its GPUs")
        return None


def cluster_shortfall(asks: Sequence[GpuAsk], nodes: Sequence[NodeGpus]) -> str | None:
    """Why the first ask that can never be placed on these nodes cannot, naming what exists; None when all can.

    Nodes are scanned largest first, so an ask that fits stops at the first large enough node matching its selector:
    a 50-task pipeline on 5,000 nodes costs microseconds, not a full scan per task (benchmarks/bench_gpu_admission.py).
    Only a refusal scans everything, to say what exists."""
    largest_first = sorted(nodes, key=lambda n: -n.gpus)  # the inventory keeps them so: linear on sorted input
    for ask in asks:
        if not _fits(ask, largest_first):
            return _why_not(ask, largest_first)
    return None


def _fits(ask: GpuAsk, largest_first: Sequence[NodeGpus]) -> bool:
    for node in largest_first:
        if node.gpus < ask.gpus:
            return False
        if node.matches(ask.node_selector):
            return True
    return False


def _why_not(ask: GpuAsk, nodes: Sequence[NodeGpus]) -> str:
    candidates = [n for n in nodes if n.matches(ask.node_selector)]
    wanted = f"task {ask.task} asks for {_gpus(ask.gpus)}" if ask.gpus else f"task {ask.task} asks for a node"
    largest = _largest(nodes)
    if not ask.node_selector:
        return f"{wanted}; {largest}"
    selector = ", ".join(f"{k}={v}" for k, v in sorted(ask.node_selector.items()))
    wanted += f" on nodes with {selector}" if ask.gpus else f" with {selector}"
    if not candidates:
        return f"{wanted}; nodes with {selector}: none; {largest}; {_products(nodes)}"
    return f"{wanted}; the largest of them has {_largest_of(candidates)}; {largest}"


def _gpus(n: int) -> str:
    return f"{n} GPU" if n == 1 else f"{n} GPUs"


def _largest_of(nodes: Sequence[NodeGpus]) -> str:
    """`8 (node-a: 8\u00d7 X)`: the most GPUs one node has, and the first nodes that have that many."""
    most = max(n.gpus for n in nodes)
    if most == 0:
        return f"no GPU ({len(nodes)} node{'s' if len(nodes) != 1 else ''})"
    top = sorted((n for n in nodes if n.gpus == most), key=lambda n: n.name)
    shown = ", ".join(n.describe() for n in top[:3]) + (f", and {len(top) - 3} more" if len(top) > 3 else "")
    return f"{most} ({shown})"


def _largest(nodes: Sequence[NodeGpus]) -> str:
    if not nodes:
        return "the cluster has no node"
    if all(n.gpus == 0 for n in nodes):
        return f"no node has a GPU ({len(nodes)} node{'s' if len(nodes) != 1 else ''}, none with allocatable GPUs)"
    return f"the largest node has {_largest_of(nodes)}"


def _products(nodes: Sequence[NodeGpus]) -> str:
    """`products present: NVIDIA-A100-SXM4-80GB (2 nodes, up to 8 GPUs), Tesla-T4 (1 node, 1 GPU)`."""
    by_product: dict[str, list[NodeGpus]] = {}
    for n in nodes:
        if n.gpus > 0:
            by_product.setdefault(n.labels.get(PRODUCT_LABEL, "(no product label)"), []).append(n)
    if not by_product:
        return "products present: none"
    parts = []
    for product, group in sorted(by_product.items()):
        count, most = len(group), max(n.gpus for n in group)
        nodes_text = f"{count} node{'s' if count != 1 else ''}"
        parts.append(f"{product} ({nodes_text}, {'up to ' if count > 1 else ''}{_gpus(most)})")
    return "products present: " + ", ".join(parts)
