"""The agent's report: one node, its system and its GPUs, as the agent serves it on `GET /v1/report`.

This is the contract between the per-node agent and everything that reads it (the API's `/v1/nodes` and `/v1/gpus`,
`odinctl nodes/gpus`, the embedded self-report). It only grows: a field once published keeps its name, type and
meaning; new fields are optional (a default) so an older agent's report still decodes, and readers ignore fields they
do not know (no `forbid_unknown_fields`).

Conventions, the same for every field:
- a reading NVML does not support on this device (or refuses: no permission, not ready) is `null`, never an error;
- sizes are bytes, clocks MHz, temperatures degrees Celsius, power watts, utilisation percent (0-100);
- times are RFC 3339 in UTC.

Each field carries its description (`msgspec.Meta`), so the API's OpenAPI document explains it too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

REPORT_VERSION = 1
"""Bumped only if a field ever had to change meaning (so far never); additions do not bump it."""

AttributionSource = Literal["pod-resources", "cgroup", "environ", "parent-environ"]


class Attribution(msgspec.Struct, kw_only=True):
    """Who a GPU process (or an allocated GPU) belongs to: the Kubernetes pod and the Odin run, task and commit.

    Kubernetes fields come from the kubelet's pod-resources API or the process's cgroup; Odin fields from the
    `ODIN_*` variables in the process's environment (or an ancestor's). Any of them may be unknown (`null`).
    """

    source: Annotated[
        AttributionSource,
        Meta(
            description="How the pod was found: `pod-resources` (kubelet socket, by device ID), `cgroup` "
            "(/proc/PID/cgroup -> pod UID), `environ` (the process's own ODIN_* variables) or `parent-environ` "
            "(an ancestor process's ODIN_* variables)"
        ),
    ]
    pod_namespace: Annotated[str | None, Meta(description="Kubernetes namespace of the pod")] = None
    pod_name: Annotated[str | None, Meta(description="Kubernetes pod name")] = None
    pod_uid: Annotated[str | None, Meta(description="Kubernetes pod UID")] = None
    container: Annotated[str | None, Meta(description="Container name within the pod")] = None
    odin_run: Annotated[str | None, Meta(description="Odin run ID (ODIN_RUN)")] = None
    odin_task: Annotated[str | None, Meta(description="Odin task name (ODIN_TASK)")] = None
    odin_task_id: Annotated[str | None, Meta(description="Odin task ID, `RUN--TASK` (ODIN_TASK_ID)")] = None
    odin_attempt: Annotated[int | None, Meta(description="Attempt number of the task (ODIN_ATTEMPT)")] = None
    odin_commit: Annotated[str | None, Meta(description="Commit SHA the run was made from (ODIN_COMMIT_SHA)")] = None
    odin_pipeline: Annotated[str | None, Meta(description="Pipeline name (ODIN_PIPELINE)")] = None


class ProcessReport(msgspec.Struct, kw_only=True):
    """A process with a context on a GPU (NVML's running compute and graphics processes)."""

    pid: Annotated[int, Meta(description="Process ID as NVML reports it (the host's PID namespace)")]
    type: Annotated[Literal["compute", "graphics"], Meta(description="NVML's list the process came from")] = "compute"
    used_memory_bytes: Annotated[
        int | None, Meta(description="GPU memory the process uses; null when NVML cannot tell (e.g. under MIG)")
    ] = None
    name: Annotated[str | None, Meta(description="Process name (/proc/PID/comm); null if not visible")] = None
    mig_device_uuid: Annotated[
        str | None, Meta(description="UUID of the MIG device the process runs on, when the GPU is partitioned")
    ] = None
    attribution: Annotated[
        Attribution | None, Meta(description="Pod and Odin run/task/commit of the process; null if nothing found")
    ] = None


class MigDeviceReport(msgspec.Struct, kw_only=True):
    """One MIG device (a GPU instance + compute instance) of a GPU in MIG mode."""

    index: Annotated[int, Meta(description="Index of the MIG device within its parent GPU")]
    uuid: Annotated[str | None, Meta(description="MIG device UUID (`MIG-...`), what device plugins advertise")] = None
    name: Annotated[str | None, Meta(description="Product name, e.g. `NVIDIA A100-SXM4-40GB MIG 1g.5gb`")] = None
    gpu_instance_id: Annotated[int | None, Meta(description="GPU instance ID")] = None
    compute_instance_id: Annotated[int | None, Meta(description="Compute instance ID")] = None
    memory_total_bytes: Annotated[int | None, Meta(description="Memory of the MIG device")] = None
    memory_used_bytes: Annotated[int | None, Meta(description="Memory in use")] = None
    memory_free_bytes: Annotated[int | None, Meta(description="Memory free")] = None
    multiprocessor_count: Annotated[int | None, Meta(description="Streaming multiprocessors of the slice")] = None
    allocations: Annotated[
        list[Attribution],
        Meta(description="Pods the kubelet assigned this MIG device to (pod-resources), with or without processes"),
    ] = msgspec.field(default_factory=list)


class GpuReport(msgspec.Struct, kw_only=True):
    """One physical GPU: identity, memory, utilisation, thermals, power, clocks, ECC, MIG and processes."""

    index: Annotated[int, Meta(description="NVML index on this node (nvidia-smi's GPU number)")]
    uuid: Annotated[str | None, Meta(description="GPU UUID (`GPU-...`); null only if the GPU is lost")] = None
    lost: Annotated[
        bool, Meta(description="The GPU fell off the bus or failed (NVML_ERROR_GPU_IS_LOST); readings are null")
    ] = False
    error: Annotated[
        str | None, Meta(description="Why the GPU could not be read at all (lost, no permission...); null if fine")
    ] = None
    name: Annotated[str | None, Meta(description="Product name, e.g. `NVIDIA H100 80GB HBM3`")] = None
    serial: Annotated[str | None, Meta(description="Board serial number")] = None
    pci_bus_id: Annotated[str | None, Meta(description="PCI bus ID, e.g. `00000000:3B:00.0`")] = None
    driver_version: Annotated[str | None, Meta(description="NVIDIA driver version, e.g. `550.54.15`")] = None
    cuda_version: Annotated[str | None, Meta(description="Highest CUDA version the driver supports, e.g. `12.4`")] = (
        None
    )
    memory_total_bytes: Annotated[int | None, Meta(description="Framebuffer memory, total")] = None
    memory_used_bytes: Annotated[int | None, Meta(description="Framebuffer memory in use")] = None
    memory_free_bytes: Annotated[int | None, Meta(description="Framebuffer memory free")] = None
    utilization_gpu_percent: Annotated[
        int | None, Meta(description="Percent of the last sample period a kernel was running")
    ] = None
    utilization_memory_percent: Annotated[
        int | None, Meta(description="Percent of the last sample period device memory was read or written")
    ] = None
    temperature_c: Annotated[int | None, Meta(description="GPU core temperature")] = None
    temperature_slowdown_c: Annotated[int | None, Meta(description="Temperature at which the GPU slows down")] = None
    temperature_shutdown_c: Annotated[int | None, Meta(description="Temperature at which the GPU shuts down")] = None
    fan_speed_percent: Annotated[
        int | None, Meta(description="Intended fan speed; null on passively cooled (datacentre) boards")
    ] = None
    power_draw_watts: Annotated[float | None, Meta(description="Power draw of the board")] = None
    power_limit_watts: Annotated[float | None, Meta(description="Enforced power limit")] = None
    performance_state: Annotated[
        int | None, Meta(description="Performance state, 0 (P0, maximum) to 15 (P15, minimum)")
    ] = None
    clock_sm_mhz: Annotated[int | None, Meta(description="Current SM clock")] = None
    clock_memory_mhz: Annotated[int | None, Meta(description="Current memory clock")] = None
    clock_sm_max_mhz: Annotated[int | None, Meta(description="Maximum SM clock")] = None
    clock_memory_max_mhz: Annotated[int | None, Meta(description="Maximum memory clock")] = None
    ecc_mode_current: Annotated[bool | None, Meta(description="ECC enabled now")] = None
    ecc_mode_pending: Annotated[bool | None, Meta(description="ECC enabled after the next reboot")] = None
    ecc_errors_corrected_volatile: Annotated[
        int | None, Meta(description="Corrected (single-bit) ECC errors since the driver loaded")
    ] = None
    ecc_errors_uncorrected_volatile: Annotated[
        int | None, Meta(description="Uncorrected (double-bit) ECC errors since the driver loaded")
    ] = None
    ecc_errors_corrected_aggregate: Annotated[
        int | None, Meta(description="Corrected ECC errors over the GPU's lifetime")
    ] = None
    ecc_errors_uncorrected_aggregate: Annotated[
        int | None, Meta(description="Uncorrected ECC errors over the GPU's lifetime")
    ] = None
    mig_mode_current: Annotated[bool | None, Meta(description="MIG mode enabled now; null if the GPU has no MIG")] = (
        None
    )
    mig_mode_pending: Annotated[bool | None, Meta(description="MIG mode after the next GPU reset")] = None
    mig_devices: Annotated[list[MigDeviceReport], Meta(description="MIG devices, when MIG mode is enabled")] = (
        msgspec.field(default_factory=list)
    )
    processes: Annotated[
        list[ProcessReport], Meta(description="Processes with a context on this GPU or one of its MIG devices")
    ] = msgspec.field(default_factory=list)
    allocations: Annotated[
        list[Attribution],
        Meta(description="Pods the kubelet assigned this GPU to (pod-resources), with or without processes"),
    ] = msgspec.field(default_factory=list)


class DiskReport(msgspec.Struct, kw_only=True):
    """Usage of the filesystem holding one configured data path."""

    path: Annotated[str, Meta(description="The configured path")]
    total_bytes: Annotated[int | None, Meta(description="Size of its filesystem; null if the path is missing")] = None
    used_bytes: Annotated[int | None, Meta(description="Used")] = None
    free_bytes: Annotated[int | None, Meta(description="Free for unprivileged users")] = None
    error: Annotated[str | None, Meta(description="Why the path could not be measured")] = None


class SystemReport(msgspec.Struct, kw_only=True):
    """The node itself (psutil)."""

    hostname: Annotated[str, Meta(description="Host name of the machine")]
    kernel: Annotated[str | None, Meta(description="Kernel release (uname -r)")] = None
    os: Annotated[str | None, Meta(description="Operating system, e.g. `Linux`")] = None
    cpu_count: Annotated[int | None, Meta(description="Logical CPUs")] = None
    cpu_percent: Annotated[
        float | None, Meta(description="CPU utilisation over all CPUs since the previous report (0-100)")
    ] = None
    load_1m: Annotated[float | None, Meta(description="Load average over 1 minute")] = None
    load_5m: Annotated[float | None, Meta(description="Load average over 5 minutes")] = None
    load_15m: Annotated[float | None, Meta(description="Load average over 15 minutes")] = None
    memory_total_bytes: Annotated[int | None, Meta(description="Physical memory")] = None
    memory_available_bytes: Annotated[
        int | None, Meta(description="Memory available to new processes without swapping")
    ] = None
    memory_used_bytes: Annotated[int | None, Meta(description="Memory in use (total - available)")] = None
    boot_time: Annotated[datetime | None, Meta(description="When the machine booted")] = None
    disks: Annotated[list[DiskReport], Meta(description="Disks of the configured data paths")] = msgspec.field(
        default_factory=list
    )


class NodeReport(msgspec.Struct, kw_only=True):
    """Everything one agent knows about its node at `sampled_at`."""

    node: Annotated[str, Meta(description="Node name: the Kubernetes node (NODE_NAME) when set, else the host name")]
    sampled_at: Annotated[datetime, Meta(description="When the readings were taken (UTC)")]
    system: Annotated[SystemReport, Meta(description="CPU, memory, load and disks of the node")]
    gpus: Annotated[list[GpuReport], Meta(description="The node's GPUs, by index; empty when there are none")] = (
        msgspec.field(default_factory=list)
    )
    gpu_unavailable_reason: Annotated[
        str | None,
        Meta(
            description="Why `gpus` is empty or partial: no NVIDIA driver/library, NVML failed to start, no GPU; "
            "null when NVML answered"
        ),
    ] = None
    driver_version: Annotated[str | None, Meta(description="NVIDIA driver version of the node")] = None
    cuda_version: Annotated[str | None, Meta(description="Highest CUDA version the driver supports")] = None
    nvml_version: Annotated[str | None, Meta(description="NVML library version")] = None
    warnings: Annotated[
        list[str], Meta(description="Problems that did not stop the report (attribution failed, a path missing...)")
    ] = msgspec.field(default_factory=list)
    agent_version: Annotated[str | None, Meta(description="Version of the Odin distribution the agent runs")] = None
    report_version: Annotated[int, Meta(description="Version of this format (see midgard/report.py)")] = REPORT_VERSION


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(NodeReport)


def encode_report(report: NodeReport) -> bytes:
    """The report as JSON bytes (what `GET /v1/report` returns)."""
    return _encoder.encode(report)


def decode_report(data: bytes | str) -> NodeReport:
    """Parse an agent's JSON; raises `msgspec.ValidationError`/`DecodeError` on a malformed report."""
    return _decoder.decode(data)
