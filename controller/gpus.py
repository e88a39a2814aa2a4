"""This machine's GPUs as the controller sees them: what the local executor allocates and the launcher admits against.

The controller does not read NVML itself (Midgard does, and the controller may not import it): whoever builds the
controller (`odin serve`, `odin run`) hands it a `GpuProbe`, a callable answering `LocalGpus` from Midgard's
in-process collection. No probe means GPU-unaware (tests of the engine, library use): `num_gpus` is then ignored by
the local executor, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from odin.controller.admission import PRODUCT_LABEL, GpuAsk


@dataclass(frozen=True, slots=True)
class LocalGpu:
    index: int  # NVML index: what CUDA_VISIBLE_DEVICES names
    name: str  # product name, e.g. "NVIDIA A100-SXM4-80GB"


@dataclass(frozen=True, slots=True)
class LocalGpus:
    """The GPUs of this machine, or why there are none (`unavailable_reason`: no driver, no NVML...)."""

    gpus: tuple[LocalGpu, ...] = ()
    unavailable_reason: str | None = None

    def describe(self) -> str:
        """What exists, for messages: "2 (NVIDIA A100-SXM4-80GB)", "no GPU: <reason>"."""
        if not self.gpus:
            return f"no GPU: {self.unavailable_reason or 'NVML reports none'}"
        names = sorted({g.name for g in self.gpus})
        return f"{len(self.gpus)} ({', '.join(names)})"


GpuProbe = Callable[[], LocalGpus]


def gpu_shortfall(tasks: dict[str, int], inventory: LocalGpus | None) -> str | None:
    """Why a run whose tasks ask these numbers of GPUs can never start on this machine, or None.

    Only a machine whose GPUs were read is judged: with NVML unreadable the run is admitted and its GPU tasks fail
    at start with the reason (the local executor's PERMANENT failure), so the cause stays visible per task.
    """
    if inventory is None or (inventory.unavailable_reason is not None and not inventory.gpus):
        return None
    largest = len(inventory.gpus)
    for name, wanted in tasks.items():
        if wanted > largest:
            return f"task {name} asks for {wanted} GPUs; the largest node has {inventory.describe()}"
    return None


def product_label(model: str) -> str:
    """NVML's model name as NVIDIA's GPU feature discovery writes it in `nvidia.com/gpu.product` on a node
    ("NVIDIA H100 80GB HBM3" -> "NVIDIA-H100-80GB-HBM3"), so one `node_selector` means the same locally and on a
    cluster."""
    return "-".join(model.split())


def model_shortfall(asks: Sequence[GpuAsk], inventory: LocalGpus | None) -> str | None:
    """Why a task asking for a GPU model (`node_selector: {nvidia.com/gpu.product: ...}`) can never start on this
    machine, or None. Other labels mean nothing here (a machine has none); an unread machine is not judged."""
    if inventory is None or not inventory.gpus:
        return None
    here = {product_label(g.name) for g in inventory.gpus}
    for ask in asks:
        wanted = ask.node_selector.get(PRODUCT_LABEL)
        if wanted is not None and wanted not in here:
            return (
                f"task {ask.task} asks for a {wanted} GPU ({PRODUCT_LABEL} in node_selector); this machine has "
                f"{inventory.describe()}, labelled {', '.join(sorted(here))}"
            )
    return None


# -- sampling what a task uses (docs/midgard.md, "What a task used") --------------------------------------------------


@dataclass(frozen=True, slots=True)
class GpuHolder:
    """An Odin task attempt a process on a GPU belongs to (Midgard's attribution from the process's ODIN_* env)."""

    run_id: str
    task: str
    attempt: int | None = None


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One GPU at one instant: what the usage summary of the tasks on it is built from."""

    index: int
    uuid: str
    name: str
    utilization_percent: int | None  # None: NVML cannot tell (MIG mode)
    memory_used_bytes: int | None
    holders: tuple[GpuHolder, ...] = ()  # tasks whose processes run on it
    node: str | None = None  # the node it is on, when read through Midgard agents (None: this machine)


@dataclass(frozen=True, slots=True)
class GpuSample:
    """Every GPU of this machine at one instant (lost GPUs left out); empty with NVML unreadable."""

    gpus: tuple[GpuReading, ...] = ()


GpuSampleSource = Callable[[], GpuSample]
"""One NVML pass with attribution, given by whoever builds the controller (the controller may not import Midgard)."""


@dataclass(frozen=True, slots=True)
class GpuHolding:
    """GPUs an executor gave a running attempt (the local executor's CUDA_VISIBLE_DEVICES), since `since` (epoch s)."""

    run_id: str
    task: str
    attempt: int
    indices: tuple[int, ...]
    since: float
