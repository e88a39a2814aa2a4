"""The one adapter over NVML: a pass over every GPU of the node, as report structs.

NVML (through `pynvml`, NVIDIA's `nvidia-ml-py`) answers each reading with a separate call, and any call may refuse:
a consumer board has no ECC, a datacentre board no fan, MIG hides utilisation, a container lacks permission. Each
reading is therefore guarded on its own, and an NVML error gives `None` for that field only. Two errors are wider:
- `NVMLError_GpuIsLost` (the GPU fell off the bus): that GPU is reported `lost`, the others as usual;
- no library / no driver at `nvmlInit` (this is what happens on a machine without NVIDIA's driver): no GPUs, with the
  reason, and the next pass tries again (a driver installed later is picked up without a restart).

The NVML module is a parameter (`Nvml(pynvml)`): tests and the agent's test mode pass the fake in `odin.testing.nvml`,
which has the same function names, constants and exception classes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .report import GpuReport, MigDeviceReport, ProcessReport

log = logging.getLogger(__name__)

T = TypeVar("T")

# pynvml's constants, by value: the adapter reads them from the module it is given when present (a fake may not
# define every one), falling back to the documented NVML values.
_CONSTANTS = {
    "NVML_TEMPERATURE_GPU": 0,
    "NVML_TEMPERATURE_THRESHOLD_SHUTDOWN": 0,
    "NVML_TEMPERATURE_THRESHOLD_SLOWDOWN": 1,
    "NVML_CLOCK_SM": 1,
    "NVML_CLOCK_MEM": 2,
    "NVML_MEMORY_ERROR_TYPE_CORRECTED": 0,
    "NVML_MEMORY_ERROR_TYPE_UNCORRECTED": 1,
    "NVML_VOLATILE_ECC": 0,
    "NVML_AGGREGATE_ECC": 1,
}


@dataclass(frozen=True)
class GpuPass:
    """One pass over the node's GPUs."""

    gpus: list[GpuReport] = field(default_factory=list)
    unavailable_reason: str | None = None
    driver_version: str | None = None
    cuda_version: str | None = None
    nvml_version: str | None = None


class Nvml:
    """NVML for the agent's lifetime: initialised once on first use, then one `read()` per sample.

    `read()` is safe from several threads (NVML is; the initialisation is locked).
    """

    def __init__(self, module: Any) -> None:
        self._nvml = module
        self._lock = threading.Lock()
        self._initialised = False
        self._c = {name: getattr(module, name, default) for name, default in _CONSTANTS.items()}
        self._error: type[BaseException] = getattr(module, "NVMLError", Exception)
        lost = getattr(module, "NVMLError_GpuIsLost", None)
        self._lost: tuple[type[BaseException], ...] = (lost,) if lost is not None else ()

    def close(self) -> None:
        """`nvmlShutdown` if it was started."""
        with self._lock:
            if self._initialised:
                self._initialised = False
                with contextlib.suppress(self._error):
                    self._nvml.nvmlShutdown()

    def read(self) -> GpuPass:
        """Every GPU, never raising for an NVML reason: a failure is the pass's `unavailable_reason`."""
        reason = self._init()
        if reason is not None:
            return GpuPass(unavailable_reason=reason)
        try:
            count = int(self._nvml.nvmlDeviceGetCount())
        except self._error as e:
            # The driver went away under us (unloaded, reset): start over on the next pass.
            with self._lock:
                self._initialised = False
            return GpuPass(unavailable_reason=f"NVML failed: {e}")
        driver = self._field(self._nvml.nvmlSystemGetDriverVersion)
        cuda = self._field(self._cuda_version)
        gpus = [self._gpu(i, driver, cuda) for i in range(count)]
        return GpuPass(
            gpus=gpus,
            unavailable_reason=None if count else "NVML found no GPU on this node",
            driver_version=_text(driver),
            cuda_version=cuda,
            nvml_version=_text(self._field(self._nvml.nvmlSystemGetNVMLVersion)),
        )

    def _init(self) -> str | None:
        with self._lock:
            if self._initialised:
                return None
            try:
                self._nvml.nvmlInit()
            except self._error as e:
                return _init_reason(e)
            except OSError as e:  # a broken libnvidia-ml.so that the loader refuses
                return f"NVML library could not be loaded: {e}"
            self._initialised = True
            return None

    def _cuda_version(self) -> str:
        raw = int(self._nvml.nvmlSystemGetCudaDriverVersion())
        return f"{raw // 1000}.{raw % 1000 // 10}"

    def _field(self, fn: Callable[..., T], *args: Any) -> T | None:
        """One reading; `None` if NVML refuses it (not supported, no permission, missing function...)."""
        try:
            return fn(*args)
        except self._lost:
            raise
        except self._error:
            return None
        except AttributeError:  # an older pynvml without this function
            return None

    def _gpu(self, index: int, driver: Any, cuda: str | None) -> GpuReport:
        nvml, c, f = self._nvml, self._c, self._field
        uuid: str | None = None
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = _text(f(nvml.nvmlDeviceGetUUID, handle))
            memory = f(nvml.nvmlDeviceGetMemoryInfo, handle)
            rates = f(nvml.nvmlDeviceGetUtilizationRates, handle)
            pci = f(nvml.nvmlDeviceGetPciInfo, handle)
            ecc = f(nvml.nvmlDeviceGetEccMode, handle)
            mig = f(nvml.nvmlDeviceGetMigMode, handle)
            power = f(nvml.nvmlDeviceGetPowerUsage, handle)
            limit = f(nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
            mig_enabled = bool(mig[0]) if mig is not None else False
            mig_devices = self._mig_devices(handle) if mig_enabled else []
            return GpuReport(
                index=index,
                uuid=uuid,
                name=_text(f(nvml.nvmlDeviceGetName, handle)),
                serial=_text(f(nvml.nvmlDeviceGetSerial, handle)),
                pci_bus_id=_text(getattr(pci, "busId", None)),
                driver_version=_text(driver),
                cuda_version=cuda,
                memory_total_bytes=_int(getattr(memory, "total", None)),
                memory_used_bytes=_int(getattr(memory, "used", None)),
                memory_free_bytes=_int(getattr(memory, "free", None)),
                utilization_gpu_percent=_int(getattr(rates, "gpu", None)),
                utilization_memory_percent=_int(getattr(rates, "memory", None)),
                temperature_c=_int(f(nvml.nvmlDeviceGetTemperature, handle, c["NVML_TEMPERATURE_GPU"])),
                temperature_slowdown_c=_int(
                    f(nvml.nvmlDeviceGetTemperatureThreshold, handle, c["NVML_TEMPERATURE_THRESHOLD_SLOWDOWN"])
                ),
                temperature_shutdown_c=_int(
                    f(nvml.nvmlDeviceGetTemperatureThreshold, handle, c["NVML_TEMPERATURE_THRESHOLD_SHUTDOWN"])
                ),
                fan_speed_percent=_int(f(nvml.nvmlDeviceGetFanSpeed, handle)),
                power_draw_watts=power / 1000 if power is not None else None,
                power_limit_watts=limit / 1000 if limit is not None else None,
                performance_state=_int(f(nvml.nvmlDeviceGetPerformanceState, handle)),
                clock_sm_mhz=_int(f(nvml.nvmlDeviceGetClockInfo, handle, c["NVML_CLOCK_SM"])),
                clock_memory_mhz=_int(f(nvml.nvmlDeviceGetClockInfo, handle, c["NVML_CLOCK_MEM"])),
                clock_sm_max_mhz=_int(f(nvml.nvmlDeviceGetMaxClockInfo, handle, c["NVML_CLOCK_SM"])),
                clock_memory_max_mhz=_int(f(nvml.nvmlDeviceGetMaxClockInfo, handle, c["NVML_CLOCK_MEM"])),
                ecc_mode_current=bool(ecc[0]) if ecc is not None else None,
                ecc_mode_pending=bool(ecc[1]) if ecc is not None else None,
                ecc_errors_corrected_volatile=self._ecc(handle, "CORRECTED", "VOLATILE"),
                ecc_errors_uncorrected_volatile=self._ecc(handle, "UNCORRECTED", "VOLATILE"),
                ecc_errors_corrected_aggregate=self._ecc(handle, "CORRECTED", "AGGREGATE"),
                ecc_errors_uncorrected_aggregate=self._ecc(handle, "UNCORRECTED", "AGGREGATE"),
                mig_mode_current=mig_enabled if mig is not None else None,
                mig_mode_pending=bool(mig[1]) if mig is not None else None,
                mig_devices=mig_devices,
                processes=self._processes(handle, mig_devices),
            )
        except self._lost as e:
            log.warning("GPU %d (%s) is lost: %s", index, uuid or "unknown UUID", e)
            return GpuReport(index=index, uuid=uuid, lost=True, error=f"GPU is lost: {e}")
        except self._error as e:  # the handle itself refused (no permission on this device...)
            return GpuReport(index=index, uuid=uuid, error=f"NVML: {e}")

    def _ecc(self, handle: Any, kind: str, counter: str) -> int | None:
        c = self._c
        return _int(
            self._field(
                self._nvml.nvmlDeviceGetTotalEccErrors,
                handle,
                c[f"NVML_MEMORY_ERROR_TYPE_{kind}"],
                c[f"NVML_{counter}_ECC"],
            )
        )

    def _mig_devices(self, handle: Any) -> list[MigDeviceReport]:
        nvml, f = self._nvml, self._field
        slots = f(nvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0
        devices = []
        for slot in range(int(slots)):
            mig = f(nvml.nvmlDeviceGetMigDeviceHandleByIndex, handle, slot)
            if mig is None:  # NVML_ERROR_NOT_FOUND: an empty slot
                continue
            memory = f(nvml.nvmlDeviceGetMemoryInfo, mig)
            attributes = f(nvml.nvmlDeviceGetAttributes, mig)
            devices.append(
                MigDeviceReport(
                    index=slot,
                    uuid=_text(f(nvml.nvmlDeviceGetUUID, mig)),
                    name=_text(f(nvml.nvmlDeviceGetName, mig)),
                    gpu_instance_id=_int(f(nvml.nvmlDeviceGetGpuInstanceId, mig)),
                    compute_instance_id=_int(f(nvml.nvmlDeviceGetComputeInstanceId, mig)),
                    memory_total_bytes=_int(getattr(memory, "total", None)),
                    memory_used_bytes=_int(getattr(memory, "used", None)),
                    memory_free_bytes=_int(getattr(memory, "free", None)),
                    multiprocessor_count=_int(getattr(attributes, "multiprocessorCount", None)),
                )
            )
        return devices

    def _processes(self, handle: Any, mig_devices: list[MigDeviceReport]) -> list[ProcessReport]:
        """Compute and graphics processes; on a MIG GPU each is placed on its MIG device by instance IDs."""
        nvml, f = self._nvml, self._field
        by_instance = {(m.gpu_instance_id, m.compute_instance_id): m.uuid for m in mig_devices}
        out: list[ProcessReport] = []
        seen: set[int] = set()
        for kind, fn_name in (
            ("compute", "nvmlDeviceGetComputeRunningProcesses"),
            ("graphics", "nvmlDeviceGetGraphicsRunningProcesses"),
        ):
            fn = getattr(nvml, fn_name, None)
            infos = f(fn, handle) if fn is not None else None
            for info in infos or []:
                pid = int(info.pid)
                if pid in seen:  # a process with both a compute and a graphics context is listed once
                    continue
                seen.add(pid)
                gi, ci = getattr(info, "gpuInstanceId", None), getattr(info, "computeInstanceId", None)
                out.append(
                    ProcessReport(
                        pid=pid,
                        type="compute" if kind == "compute" else "graphics",
                        used_memory_bytes=_int(getattr(info, "usedGpuMemory", None)),
                        mig_device_uuid=by_instance.get((_int(gi), _int(ci))) if mig_devices else None,
                    )
                )
        return out


def _init_reason(e: BaseException) -> str:
    name = type(e).__name__
    if name == "NVMLError_LibraryNotFound":
        return "NVML library not found (libnvidia-ml.so): no NVIDIA driver on this node"
    if name == "NVMLError_DriverNotLoaded":
        return "NVIDIA driver not loaded"
    if name == "NVMLError_NoPermission":
        return "no permission to use NVML (device files /dev/nvidia*)"
    return f"NVML could not start: {e}"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _int(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
