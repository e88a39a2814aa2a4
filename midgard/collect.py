"""One report of this node: NVML's GPUs, who holds them, and the system -- the agent's only work, callable in-process.

`Collector` is long-lived (NVML initialised once, CPU utilisation measured between reports); `collect_report` is the
one-shot form for `midgard report` and tests. Both the HTTP agent (`server.py`) and Odin's embedded self-report (the
API reporting its own machine with no separate agent) call these, so the two cannot drift.

Which NVML: `nvml_module` if given (tests pass `odin.testing.nvml.FakeNvml`), else the fake named by the test-only
`MIDGARD_FAKE_NVML=/path/to/gpus.json` (see `load_nvml_module`), else the real `pynvml`.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

import msgspec

from .attribution import ProcAttributor
from .nvml import Nvml
from .report import Attribution, GpuReport, NodeReport
from .system import system_report

log = logging.getLogger(__name__)

FAKE_NVML_ENV = "MIDGARD_FAKE_NVML"
# The fake lives with the other test tools (odin.testing, the top import layer that nothing in Odin may import). The
# agent loads it by name, at run time, only when the test-only variable asks for it: a production agent never does.
_FAKE_MODULE = "odin.testing.nvml"


def load_nvml_module(environ: Mapping[str, str] | None = None) -> Any:
    """`pynvml`, or -- when `MIDGARD_FAKE_NVML` names a JSON file (tests only) -- the fake NVML reading it."""
    environ = os.environ if environ is None else environ
    path = environ.get(FAKE_NVML_ENV)
    if path:
        log.warning("%s=%s: reporting FAKE GPUs (test mode)", FAKE_NVML_ENV, path)
        return importlib.import_module(_FAKE_MODULE).FakeNvml.from_file(path)
    import pynvml

    return pynvml


class Allocations(Protocol):
    """Device ID (GPU or MIG UUID) -> the pods the kubelet assigned it to (`podresources.PodResources`)."""

    def allocations(self) -> dict[str, list[Attribution]]: ...


@dataclass
class CollectorConfig:
    """What a report covers. Defaults suit a bare machine; the agent's flags and env fill them on a node."""

    node_name: str | None = None  # NODE_NAME (downward API) or the host name
    data_paths: Sequence[str] = ()  # disks to report
    proc_root: str = "/proc"  # the host's /proc (hostPID, or a hostPath mount)
    pod_log_root: str | None = "/var/log/pods"  # pod UID -> namespace/name, when mounted
    extra_warnings: list[str] = field(default_factory=list)


class Collector:
    def __init__(
        self,
        nvml_module: Any = None,
        config: CollectorConfig | None = None,
        pod_resources: Allocations | None = None,
    ) -> None:
        self.config = config or CollectorConfig()
        self.nvml = Nvml(nvml_module if nvml_module is not None else load_nvml_module())
        self.attributor = ProcAttributor(self.config.proc_root, self.config.pod_log_root)
        self.pod_resources = pod_resources
        self.node = self.config.node_name or os.environ.get("NODE_NAME") or socket.gethostname()

    def close(self) -> None:
        self.nvml.close()

    def collect(self) -> NodeReport:
        """One report; never raises for a reason of the node (no driver, a lost GPU, an unreadable process)."""
        sampled_at = datetime.now(UTC)
        warnings = list(self.config.extra_warnings)
        gpu_pass = self.nvml.read()
        allocations: dict[str, list[Attribution]] = {}
        if self.pod_resources is not None:
            try:
                allocations = self.pod_resources.allocations()
            except Exception as e:  # the kubelet restarting, a socket gone: the rest of the report still stands
                warnings.append(f"pod-resources: {e}")
        gpus = [self._attribute(gpu, allocations) for gpu in gpu_pass.gpus]
        return NodeReport(
            node=self.node,
            sampled_at=sampled_at,
            system=system_report(self.config.data_paths),
            gpus=gpus,
            gpu_unavailable_reason=gpu_pass.unavailable_reason,
            driver_version=gpu_pass.driver_version,
            cuda_version=gpu_pass.cuda_version,
            nvml_version=gpu_pass.nvml_version,
            warnings=warnings,
            agent_version=_agent_version(),
        )

    def collect_gpus(self) -> list[GpuReport]:
        """Only the GPUs with their processes' attribution: what sampling a running task needs, without the system
        report's disk and CPU readings (the controller's GPU usage sampler calls this every few seconds)."""
        return [self._attribute(gpu, {}) for gpu in self.nvml.read().gpus]

    def _attribute(self, gpu: GpuReport, allocations: Mapping[str, list[Attribution]]) -> GpuReport:
        if not gpu.processes and not allocations:
            return gpu
        found = self.attributor.attribute(p.pid for p in gpu.processes)
        processes = []
        for process in gpu.processes:
            device = process.mig_device_uuid or gpu.uuid
            held_by = allocations.get(device or "", [])
            processes.append(
                msgspec.structs.replace(
                    process,
                    name=self.attributor.process_name(process.pid),
                    attribution=_merge(found.get(process.pid), held_by),
                )
            )
        mig_devices = [
            msgspec.structs.replace(m, allocations=list(allocations.get(m.uuid or "", []))) for m in gpu.mig_devices
        ]
        return msgspec.structs.replace(
            gpu,
            processes=processes,
            mig_devices=mig_devices,
            allocations=list(allocations.get(gpu.uuid or "", [])),
        )


def _merge(own: Attribution | None, held_by: list[Attribution]) -> Attribution | None:
    """The process's own attribution, completed from the kubelet's allocation of its device.

    The kubelet says which pod a device was given to; when one pod holds it (the usual case), that pod is this
    process's pod unless the process's own cgroup says otherwise (a device shared by time-slicing).
    """
    if len(held_by) != 1:
        return own
    pod = held_by[0]
    if own is None:
        return pod
    if own.pod_uid is not None and pod.pod_uid is not None and own.pod_uid != pod.pod_uid:
        return own
    return msgspec.structs.replace(
        own,
        source="pod-resources",
        pod_namespace=pod.pod_namespace,
        pod_name=pod.pod_name,
        container=pod.container or own.container,
    )


def collect_report(
    nvml_module: Any = None,
    *,
    config: CollectorConfig | None = None,
    pod_resources: Allocations | None = None,
) -> NodeReport:
    """One report from a fresh `Collector` (`midgard report`; tests). Long-lived callers keep a `Collector`."""
    collector = Collector(nvml_module, config, pod_resources)
    try:
        return collector.collect()
    finally:
        collector.close()


@functools.cache
def _agent_version() -> str | None:
    try:
        return version("odin")
    except PackageNotFoundError:
        return None
