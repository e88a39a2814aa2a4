"""`GET /v1/nodes` and `GET /v1/gpus`: the cluster's nodes and GPUs, who holds each GPU, and how fresh each reading is.

The agent's own report (`odin.midgard.report`) is carried whole (`report`, `gpu`): it is a published, only-growing
format, so repeating its fields here would only let the two drift. What the API adds is what no single agent knows:
whether the node answered this time, how old its reading is, and which Odin run, task and commit holds each GPU
(pods resolved through their labels).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from odin.midgard.report import GpuReport, NodeReport

Source = Literal["embedded", "static", "kubernetes"]


class NodeOut(msgspec.Struct, kw_only=True):
    """One node: reachable or not, its last good report and that report's age."""

    node: Annotated[str, Meta(description="Node name (the agent's; before its first report, the slice's or URL's)")]
    url: Annotated[str | None, Meta(description="The agent's URL; null for this machine reported in-process")] = None
    reachable: Annotated[bool, Meta(description="Whether the agent answered the latest request in time")]
    error: Annotated[str | None, Meta(description="Why the agent is unreachable (refused, timed out...)")] = None
    observed_at: Annotated[
        datetime | None, Meta(description="When the API received the report shown; null if never")
    ] = None
    age_seconds: Annotated[float | None, Meta(description="Seconds since observed_at; grows while unreachable")] = None
    gpu_count: Annotated[int, Meta(description="GPUs in the report shown")] = 0
    gpus_free: Annotated[int, Meta(description="GPUs without processes or pod allocations")] = 0
    gpu_unavailable_reason: Annotated[
        str | None, Meta(description="Why the node reports no (or partial) GPUs: no driver, no GPU...")
    ] = None
    report: Annotated[NodeReport | None, Meta(description="The agent's last good report, unchanged")] = None


class NodeList(msgspec.Struct, kw_only=True):
    source: Annotated[
        Source,
        Meta(
            description="Where readings come from: `embedded` (this machine, in-process), `static` "
            "(ODIN_MIDGARD_AGENTS) or `kubernetes` (the Midgard Service's EndpointSlices)"
        ),
    ]
    items: list[NodeOut]
    unreachable: Annotated[int, Meta(description="Nodes whose agent did not answer the latest request")] = 0


class Holder(msgspec.Struct, kw_only=True):
    """Who holds a GPU: an Odin task (run, task, commit) and/or a pod, with its processes on the GPU."""

    run: Annotated[str | None, Meta(description="Odin run ID; null for a process or pod Odin did not start")] = None
    task: Annotated[str | None, Meta(description="Odin task name")] = None
    commit: Annotated[str | None, Meta(description="Commit SHA the run was made from")] = None
    attempt: Annotated[int | None, Meta(description="Attempt number of the task")] = None
    pipeline: Annotated[str | None, Meta(description="Pipeline name")] = None
    pod: Annotated[str | None, Meta(description="`namespace/name` of the pod, on Kubernetes")] = None
    pids: Annotated[list[int], Meta(description="Its processes on the GPU (host PIDs)")] = msgspec.field(
        default_factory=list
    )
    used_memory_bytes: Annotated[int | None, Meta(description="GPU memory its processes use, when known")] = None


class GpuOut(msgspec.Struct, kw_only=True):
    """One GPU of the cluster, with its node's freshness and its holders."""

    node: str
    index: Annotated[int, Meta(description="NVML index on its node")]
    uuid: str | None = None
    model: Annotated[str | None, Meta(description="Product name, e.g. `NVIDIA H100 80GB HBM3`")] = None
    free: Annotated[bool, Meta(description="No process on it and no pod assigned it (and not lost)")]
    holders: list[Holder] = msgspec.field(default_factory=list)
    reachable: Annotated[bool, Meta(description="Whether its node answered the latest request")]
    age_seconds: Annotated[float | None, Meta(description="Age of the reading shown")] = None
    gpu: Annotated[GpuReport, Meta(description="The agent's full reading of the GPU")]


class GpuList(msgspec.Struct, kw_only=True):
    source: Source
    items: list[GpuOut]
    total: Annotated[int, Meta(description="GPUs in the cluster before filters")] = 0
    free: Annotated[int, Meta(description="Free GPUs in the cluster before filters")] = 0
    unreachable_nodes: Annotated[
        list[str], Meta(description="Nodes whose agent did not answer; their GPUs are shown from the last reading")
    ] = msgspec.field(default_factory=list)
    gpu_unavailable: Annotated[
        dict[str, str], Meta(description="Node -> why it reports no GPUs (e.g. no NVIDIA driver on this machine)")
    ] = msgspec.field(default_factory=dict)
