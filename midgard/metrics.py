"""A report in the Prometheus text format, under DCGM-exporter's metric names, so existing dashboards work unchanged.

DCGM-exporter names each series after its DCGM field (`DCGM_FI_DEV_GPU_UTIL`, ...) and labels it `gpu`, `UUID`,
`device`, `modelName`, `Hostname` (plus `pci_bus_id`, and `namespace`/`pod`/`container` with its Kubernetes mapping
on); the Grafana dashboard NVIDIA publishes (ID 12239) and most in-house copies select on those. Midgard emits the
same names, units and labels for every reading it has, and adds `odin_run`, `odin_task`, `odin_commit`. Units follow
DCGM, not the report: framebuffer in MiB, power in W, clocks in MHz. Readings NVML did not give (`null` in the report)
are left out rather than written as 0, as DCGM-exporter does for blank fields.

What has no DCGM name is `midgard_*`: whether NVML answered, lost GPUs, per-process GPU memory, the node's CPU and
memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .report import Attribution, GpuReport, NodeReport

MIB = 1024 * 1024

# (metric, type, help, reading). Help texts are DCGM-exporter's default-counters.csv wording where it exists.
_GPU_METRICS: list[tuple[str, str, str, Callable[[GpuReport], Any]]] = [
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", lambda g: g.clock_sm_mhz),
    ("DCGM_FI_DEV_MEM_CLOCK", "gauge", "Memory clock frequency (in MHz).", lambda g: g.clock_memory_mhz),
    ("DCGM_FI_DEV_MAX_SM_CLOCK", "gauge", "Maximum SM clock frequency (in MHz).", lambda g: g.clock_sm_max_mhz),
    (
        "DCGM_FI_DEV_MAX_MEM_CLOCK",
        "gauge",
        "Maximum memory clock frequency (in MHz).",
        lambda g: g.clock_memory_max_mhz,
    ),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", lambda g: g.temperature_c),
    ("DCGM_FI_DEV_SLOWDOWN_TEMP", "gauge", "Slowdown temperature (in C).", lambda g: g.temperature_slowdown_c),
    ("DCGM_FI_DEV_SHUTDOWN_TEMP", "gauge", "Shutdown temperature (in C).", lambda g: g.temperature_shutdown_c),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", lambda g: g.power_draw_watts),
    ("DCGM_FI_DEV_POWER_MGMT_LIMIT", "gauge", "Power management limit (in W).", lambda g: g.power_limit_watts),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", lambda g: g.utilization_gpu_percent),
    ("DCGM_FI_DEV_MEM_COPY_UTIL", "gauge", "Memory utilization (in %).", lambda g: g.utilization_memory_percent),
    ("DCGM_FI_DEV_FAN_SPEED", "gauge", "Fan speed (in %).", lambda g: g.fan_speed_percent),
    ("DCGM_FI_DEV_PSTATE", "gauge", "Performance state (0 = P0).", lambda g: g.performance_state),
    ("DCGM_FI_DEV_FB_TOTAL", "gauge", "Total framebuffer memory (in MiB).", lambda g: _mib(g.memory_total_bytes)),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", lambda g: _mib(g.memory_free_bytes)),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", lambda g: _mib(g.memory_used_bytes)),
    (
        "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
        "counter",
        "Total number of single-bit volatile ECC errors.",
        lambda g: g.ecc_errors_corrected_volatile,
    ),
    (
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "counter",
        "Total number of double-bit volatile ECC errors.",
        lambda g: g.ecc_errors_uncorrected_volatile,
    ),
    (
        "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL",
        "counter",
        "Total number of single-bit persistent ECC errors.",
        lambda g: g.ecc_errors_corrected_aggregate,
    ),
    (
        "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL",
        "counter",
        "Total number of double-bit persistent ECC errors.",
        lambda g: g.ecc_errors_uncorrected_aggregate,
    ),
    ("midgard_gpu_lost", "gauge", "1 if the GPU fell off the bus (NVML_ERROR_GPU_IS_LOST).", lambda g: int(g.lost)),
    ("midgard_gpu_processes", "gauge", "Processes with a context on the GPU.", lambda g: len(g.processes)),
]


def _mib(value: int | None) -> int | None:
    return None if value is None else value // MIB


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: list[tuple[str, str | None]]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v or "")}"' for k, v in pairs) + "}"


def _holder(gpu: GpuReport) -> Attribution | None:
    """The one pod/run holding the GPU, for DCGM-style labels: the kubelet's allocation, else a process's."""
    if gpu.allocations:
        return gpu.allocations[0]
    for process in gpu.processes:
        if process.attribution is not None:
            return process.attribution
    return None


def _attribution_labels(a: Attribution | None) -> list[tuple[str, str | None]]:
    if a is None:
        a = Attribution(source="environ")
    return [
        ("namespace", a.pod_namespace),
        ("pod", a.pod_name),
        ("container", a.container),
        ("odin_run", a.odin_run),
        ("odin_task", a.odin_task),
        ("odin_commit", a.odin_commit),
    ]


def render_metrics(report: NodeReport) -> str:
    """The whole exposition for one report (text format 0.0.4)."""
    host = report.system.hostname
    gpu_labels: list[tuple[GpuReport, list[tuple[str, str | None]]]] = []
    for gpu in report.gpus:
        labels: list[tuple[str, str | None]] = [
            ("gpu", str(gpu.index)),
            ("UUID", gpu.uuid),
            ("pci_bus_id", gpu.pci_bus_id),
            ("device", f"nvidia{gpu.index}"),
            ("modelName", gpu.name),
            ("Hostname", host),
        ]
        gpu_labels.append((gpu, labels + _attribution_labels(_holder(gpu))))
    out: list[str] = []
    for name, kind, help_text, reading in _GPU_METRICS:
        samples = []
        for gpu, labels in gpu_labels:
            value = reading(gpu)
            if value is not None:
                samples.append(f"{name}{_labels(labels)} {_number(value)}")
        if samples:
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *samples]

    process_samples = []
    for gpu, _ in gpu_labels:
        for p in gpu.processes:
            if p.used_memory_bytes is None:
                continue
            labels = [("gpu", str(gpu.index)), ("UUID", gpu.uuid), ("Hostname", host), ("pid", str(p.pid))]
            process_samples.append(
                f"midgard_process_gpu_memory_bytes{_labels(labels + _attribution_labels(p.attribution))} "
                f"{p.used_memory_bytes}"
            )
    if process_samples:
        out += [
            "# HELP midgard_process_gpu_memory_bytes GPU memory used by one process.",
            "# TYPE midgard_process_gpu_memory_bytes gauge",
            *process_samples,
        ]

    node = _labels([("Hostname", host), ("node", report.node)])
    system = report.system
    node_values: list[tuple[str, str, Any]] = [
        (
            "midgard_nvml_up",
            "1 if NVML answered (0: see gpu_unavailable_reason in /v1/report).",
            int(report.nvml_version is not None),
        ),
        ("midgard_gpus", "GPUs NVML lists on the node.", len(report.gpus)),
        ("midgard_node_cpu_count", "Logical CPUs.", system.cpu_count),
        ("midgard_node_cpu_percent", "CPU utilisation since the previous sample (in %).", system.cpu_percent),
        ("midgard_node_load1", "Load average over 1 minute.", system.load_1m),
        ("midgard_node_memory_total_bytes", "Physical memory.", system.memory_total_bytes),
        ("midgard_node_memory_available_bytes", "Memory available without swapping.", system.memory_available_bytes),
    ]
    for name, help_text, value in node_values:
        if value is not None:
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name}{node} {_number(value)}"]
    return "\n".join(out) + "\n"


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    return str(value)
