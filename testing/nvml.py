"""A fake NVML: pynvml's functions, constants and exception classes over GPUs described in data.

No GPU is needed to test Midgard: `FakeNvml` answers the calls `odin.midgard.nvml` makes, raising pynvml's own
exception classes (`NVMLError_NotSupported`, `NVMLError_GpuIsLost`, `NVMLError_LibraryNotFound`, ...) exactly where the
real library would. A GPU is a dict (see `fake_gpu` for every key and its default):

- a key set to `None` (JSON `null`) makes its NVML call raise `NVMLError_NotSupported`, as on a board without that
  sensor; `"errors": {"temperature": "NoPermission"}` raises another pynvml class (`NVMLError_<name>`);
- `"lost": true` makes every call on the GPU raise `NVMLError_GpuIsLost` (fallen off the bus);
- `"mig_mode": [1, 1]` with `"mig_devices": [...]` gives MIG devices; processes name their `gpu_instance_id` and
  `compute_instance_id` to sit on one;
- `"processes": [{"pid": 1234, "used_memory": 1073741824}]` are the running compute processes.

Agent subprocesses load it from a JSON file named by `MIDGARD_FAKE_NVML` (test-only; see docs/midgard.md). The file is
re-read when it changes, so a test can start a process, then put it on a fake GPU while the agent runs. The JSON
document is `{"driver_version": ..., "cuda_version": 12040, "gpus": [GPU, ...]}`, or `{"library_missing": true}`.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml

# pynvml's exception classes and constants, re-exported so code written against pynvml runs unchanged on the fake.
NVMLError = pynvml.NVMLError
NVMLError_NotSupported = pynvml.NVMLError_NotSupported
NVMLError_GpuIsLost = pynvml.NVMLError_GpuIsLost
NVMLError_LibraryNotFound = pynvml.NVMLError_LibraryNotFound
NVMLError_NotFound = pynvml.NVMLError_NotFound
NVMLError_InvalidArgument = pynvml.NVMLError_InvalidArgument
NVMLError_Uninitialized = pynvml.NVMLError_Uninitialized

GIB = 1024**3


def fake_gpu(index: int, **overrides: Any) -> dict[str, Any]:
    """An H100-like GPU with every reading set; `overrides` replace keys (`None` = not supported)."""
    gpu: dict[str, Any] = {
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": f"GPU-00000000-0000-0000-0000-{index:012d}",
        "serial": f"165432100{index:04d}",
        "pci_bus_id": f"00000000:{0x18 + index:02X}:00.0",
        "memory_total": 80 * GIB,
        "memory_used": 0,
        "utilization_gpu": 0,
        "utilization_memory": 0,
        "temperature": 34,
        "temperature_slowdown": 87,
        "temperature_shutdown": 92,
        "fan_speed": None,  # datacentre boards are passively cooled: NVML answers NotSupported
        "power_usage_mw": 71_000,
        "power_limit_mw": 700_000,
        "performance_state": 0,
        "clock_sm": 345,
        "clock_mem": 2619,
        "clock_sm_max": 1980,
        "clock_mem_max": 2619,
        "ecc_mode": [1, 1],
        "ecc_errors": {
            "corrected_volatile": 0,
            "uncorrected_volatile": 0,
            "corrected_aggregate": 0,
            "uncorrected_aggregate": 0,
        },
        "mig_mode": [0, 0],
        "mig_devices": [],
        "processes": [],
        "graphics_processes": [],
        "lost": False,
        "errors": {},
    }
    gpu.update(overrides)
    return gpu


def fake_mig_device(gpu_instance_id: int, compute_instance_id: int = 0, **overrides: Any) -> dict[str, Any]:
    """A 1g.10gb slice of an H100; `overrides` replace keys."""
    device: dict[str, Any] = {
        "uuid": f"MIG-00000000-0000-0000-0000-{gpu_instance_id:06d}{compute_instance_id:06d}",
        "name": "NVIDIA H100 80GB HBM3 MIG 1g.10gb",
        "gpu_instance_id": gpu_instance_id,
        "compute_instance_id": compute_instance_id,
        "memory_total": 10 * GIB,
        "memory_used": 0,
        "multiprocessor_count": 16,
    }
    device.update(overrides)
    return device


class _Handle:
    __slots__ = ("gpu", "mig")

    def __init__(self, gpu: dict[str, Any], mig: dict[str, Any] | None = None) -> None:
        self.gpu = gpu
        self.mig = mig


_MAX_MIG_DEVICES = 7
_DEFAULT_DRIVER = "550.54.15"
_DEFAULT_CUDA = 12040


class FakeNvml:
    """A stand-in for the `pynvml` module; pass it wherever the module would go (`Nvml(FakeNvml(...))`).

    `gpus` is a list of `fake_gpu` dicts; `path` instead reads them from a JSON file, re-read when it changes.
    `library_missing=True` behaves like a machine without the driver (`nvmlInit` raises `NVMLError_LibraryNotFound`).
    `calls` counts NVML passes (`nvmlDeviceGetCount` calls), for tests of the agent's cache.
    """

    def __init__(
        self,
        gpus: list[dict[str, Any]] | None = None,
        *,
        path: str | os.PathLike[str] | None = None,
        library_missing: bool = False,
        driver_version: str = _DEFAULT_DRIVER,
        cuda_version: int = _DEFAULT_CUDA,
    ) -> None:
        self._lock = threading.Lock()
        self._path = Path(path) if path is not None else None
        self._mtime: tuple[int, int, int] | None = None
        self.gpus: list[dict[str, Any]] = list(gpus or [])
        self.library_missing = library_missing
        self.driver_version = driver_version
        self.cuda_version = cuda_version
        self.initialised = 0
        self.calls = 0
        # Every pynvml constant (NVML_TEMPERATURE_GPU, NVML_CLOCK_SM, ...) and NVMLError_* class, by the same name.
        for name in dir(pynvml):
            if name.startswith(("NVML_", "NVMLError")):
                setattr(self, name, getattr(pynvml, name))
        if self._path is not None:
            self._reload()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> FakeNvml:
        return cls(path=path)

    # -- data ---------------------------------------------------------------------------------------------------------

    def _reload(self) -> None:
        assert self._path is not None
        try:
            stat = self._path.stat()
        except FileNotFoundError:
            return
        # The inode changes on each atomic replace (`write_fake_gpus`), even within one mtime tick.
        mtime = (stat.st_mtime_ns, stat.st_ino, stat.st_size)
        with self._lock:
            if mtime == self._mtime:
                return
            data = json.loads(self._path.read_text())
            self._mtime = mtime
            self.library_missing = bool(data.get("library_missing", False))
            self.driver_version = str(data.get("driver_version", _DEFAULT_DRIVER))
            self.cuda_version = int(data.get("cuda_version", _DEFAULT_CUDA))
            self.gpus = [fake_gpu(i, **gpu) for i, gpu in enumerate(data.get("gpus", []))]

    def _get(self, handle: _Handle, key: str) -> Any:
        data = handle.mig if handle.mig is not None else handle.gpu
        if handle.gpu.get("lost"):
            raise pynvml.NVMLError_GpuIsLost()
        error = data.get("errors", {}).get(key)
        if error:
            raise getattr(pynvml, f"NVMLError_{error}")()
        if key not in data or data[key] is None:
            raise pynvml.NVMLError_NotSupported()
        return data[key]

    def _check(self) -> None:
        if not self.initialised:
            raise pynvml.NVMLError_Uninitialized()

    # -- library ------------------------------------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        if self._path is not None:
            self._reload()
        if self.library_missing:
            raise pynvml.NVMLError_LibraryNotFound()
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._check()
        self.initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._check()
        return self.driver_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._check()
        return self.cuda_version

    nvmlSystemGetCudaDriverVersion_v2 = nvmlSystemGetCudaDriverVersion

    def nvmlSystemGetNVMLVersion(self) -> str:
        self._check()
        return f"12.{self.driver_version}"

    def nvmlDeviceGetCount(self) -> int:
        self._check()
        if self._path is not None:
            self._reload()
        self.calls += 1
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._check()
        if not 0 <= index < len(self.gpus):
            raise pynvml.NVMLError_InvalidArgument()
        return _Handle(self.gpus[index])

    # -- device -------------------------------------------------------------------------------------------------------

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:
        return str(self._get(handle, "uuid"))

    def nvmlDeviceGetName(self, handle: _Handle) -> str:
        return str(self._get(handle, "name"))

    def nvmlDeviceGetSerial(self, handle: _Handle) -> str:
        return str(self._get(handle, "serial"))

    def nvmlDeviceGetPciInfo(self, handle: _Handle) -> SimpleNamespace:
        return SimpleNamespace(busId=self._get(handle, "pci_bus_id"))

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle) -> SimpleNamespace:
        total, used = int(self._get(handle, "memory_total")), int(self._get(handle, "memory_used"))
        return SimpleNamespace(total=total, used=used, free=total - used)

    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> SimpleNamespace:
        if handle.gpu.get("mig_mode", [0, 0])[0]:  # NVML refuses utilisation on a GPU in MIG mode
            raise pynvml.NVMLError_NotSupported()
        return SimpleNamespace(gpu=self._get(handle, "utilization_gpu"), memory=self._get(handle, "utilization_memory"))

    def nvmlDeviceGetTemperature(self, handle: _Handle, sensor: int) -> int:
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise pynvml.NVMLError_InvalidArgument()
        return int(self._get(handle, "temperature"))

    def nvmlDeviceGetTemperatureThreshold(self, handle: _Handle, threshold: int) -> int:
        keys = {
            pynvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN: "temperature_slowdown",
            pynvml.NVML_TEMPERATURE_THRESHOLD_SHUTDOWN: "temperature_shutdown",
        }
        if threshold not in keys:
            raise pynvml.NVMLError_NotSupported()
        return int(self._get(handle, keys[threshold]))

    def nvmlDeviceGetFanSpeed(self, handle: _Handle) -> int:
        return int(self._get(handle, "fan_speed"))

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        return int(self._get(handle, "power_usage_mw"))

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: _Handle) -> int:
        return int(self._get(handle, "power_limit_mw"))

    def nvmlDeviceGetPerformanceState(self, handle: _Handle) -> int:
        return int(self._get(handle, "performance_state"))

    def nvmlDeviceGetClockInfo(self, handle: _Handle, clock: int) -> int:
        return int(self._get(handle, {pynvml.NVML_CLOCK_SM: "clock_sm", pynvml.NVML_CLOCK_MEM: "clock_mem"}[clock]))

    def nvmlDeviceGetMaxClockInfo(self, handle: _Handle, clock: int) -> int:
        keys = {pynvml.NVML_CLOCK_SM: "clock_sm_max", pynvml.NVML_CLOCK_MEM: "clock_mem_max"}
        return int(self._get(handle, keys[clock]))

    def nvmlDeviceGetEccMode(self, handle: _Handle) -> list[int]:
        return list(self._get(handle, "ecc_mode"))

    def nvmlDeviceGetTotalEccErrors(self, handle: _Handle, error_type: int, counter_type: int) -> int:
        self._get(handle, "ecc_mode")  # no ECC, no counters
        kind = "corrected" if error_type == pynvml.NVML_MEMORY_ERROR_TYPE_CORRECTED else "uncorrected"
        counter = "volatile" if counter_type == pynvml.NVML_VOLATILE_ECC else "aggregate"
        counts = self._get(handle, "ecc_errors")
        value = counts.get(f"{kind}_{counter}")
        if value is None:
            raise pynvml.NVMLError_NotSupported()
        return int(value)

    def nvmlDeviceGetMigMode(self, handle: _Handle) -> list[int]:
        return list(self._get(handle, "mig_mode"))

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: _Handle) -> int:
        self._get(handle, "mig_mode")
        return _MAX_MIG_DEVICES

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: _Handle, index: int) -> _Handle:
        devices = self._get(handle, "mig_devices")
        if not handle.gpu["mig_mode"][0] or index >= len(devices):
            raise pynvml.NVMLError_NotFound()
        return _Handle(handle.gpu, devices[index])

    def nvmlDeviceGetGpuInstanceId(self, handle: _Handle) -> int:
        if handle.mig is None:
            raise pynvml.NVMLError_InvalidArgument()
        return int(self._get(handle, "gpu_instance_id"))

    def nvmlDeviceGetComputeInstanceId(self, handle: _Handle) -> int:
        if handle.mig is None:
            raise pynvml.NVMLError_InvalidArgument()
        return int(self._get(handle, "compute_instance_id"))

    def nvmlDeviceGetAttributes(self, handle: _Handle) -> SimpleNamespace:
        return SimpleNamespace(multiprocessorCount=self._get(handle, "multiprocessor_count"))

    def nvmlDeviceGetComputeRunningProcesses(self, handle: _Handle) -> list[SimpleNamespace]:
        return [self._process(p) for p in self._get(handle, "processes")]

    def nvmlDeviceGetGraphicsRunningProcesses(self, handle: _Handle) -> list[SimpleNamespace]:
        return [self._process(p) for p in self._get(handle, "graphics_processes")]

    @staticmethod
    def _process(p: dict[str, Any]) -> SimpleNamespace:
        # pynvml's process objects: pid, usedGpuMemory (None when not available), gpuInstanceId, computeInstanceId
        # (0xFFFFFFFF outside MIG).
        return SimpleNamespace(
            pid=int(p["pid"]),
            usedGpuMemory=p.get("used_memory"),
            gpuInstanceId=p.get("gpu_instance_id", 0xFFFFFFFF),
            computeInstanceId=p.get("compute_instance_id", 0xFFFFFFFF),
        )


def write_fake_gpus(path: str | os.PathLike[str], gpus: list[dict[str, Any]], **extra: Any) -> Path:
    """Write the `MIDGARD_FAKE_NVML` file atomically (an agent re-reading it never sees half a file)."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps({**extra, "gpus": gpus}))
    tmp.replace(target)
    return target
