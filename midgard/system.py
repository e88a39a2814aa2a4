"""The node itself: host name, kernel, CPUs, load, memory and the disks of the data paths (psutil).

`cpu_percent` is utilisation since the previous call in this process (psutil's non-blocking form): the agent samples
every cache period, so it is the node's recent utilisation without a blocking wait inside a request. The first call
of a process has no previous one and measures 0.1 s instead.
"""

from __future__ import annotations

import os
import platform
import socket
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

import psutil

from .report import DiskReport, SystemReport

_cpu_lock = threading.Lock()
_cpu_primed: list[bool] = []  # psutil's first non-blocking call has nothing to compare with


def _cpu_percent() -> float | None:
    with _cpu_lock:
        if not _cpu_primed:
            # The first call of the process has no previous one to compare with: measure a short window once.
            _cpu_primed.append(True)
            return float(psutil.cpu_percent(interval=0.1))
        return float(psutil.cpu_percent(interval=None))


def disk_report(path: str) -> DiskReport:
    try:
        usage = psutil.disk_usage(path)
    except OSError as e:
        return DiskReport(path=path, error=f"{type(e).__name__}: {e.strerror or e}")
    return DiskReport(path=path, total_bytes=usage.total, used_bytes=usage.used, free_bytes=usage.free)


def system_report(data_paths: Sequence[str] = ()) -> SystemReport:
    memory = psutil.virtual_memory()
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    try:
        boot = datetime.fromtimestamp(psutil.boot_time(), UTC)
    except (OSError, RuntimeError):
        boot = None
    uname = platform.uname()
    return SystemReport(
        hostname=socket.gethostname(),
        kernel=uname.release or None,
        os=uname.system or None,
        cpu_count=psutil.cpu_count(logical=True),
        cpu_percent=_cpu_percent(),
        load_1m=load[0] if load else None,
        load_5m=load[1] if load else None,
        load_15m=load[2] if load else None,
        memory_total_bytes=memory.total,
        memory_available_bytes=memory.available,
        memory_used_bytes=memory.total - memory.available,
        boot_time=boot,
        disks=[disk_report(path) for path in data_paths],
    )
