"""This machine's GPUs for the controller (`odin.controller.gpus.GpuProbe`), read by Midgard's in-process collection.

The controller may not import Midgard (they are sibling layers), so the commands that build one (`odin serve`,
`odin run`) hand it this probe. The test-only `MIDGARD_FAKE_NVML` applies as it does to the agent (docs/midgard.md).
"""

from __future__ import annotations

import threading

from odin.controller.gpus import GpuProbe, LocalGpu, LocalGpus


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
