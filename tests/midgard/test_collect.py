"""One report, in-process: the real "no NVML" path of this machine, and fake multi-GPU nodes."""

from __future__ import annotations

import os
from pathlib import Path

import pynvml
import pytest

from odin.midgard.collect import Collector, collect_report, load_nvml_module
from odin.midgard.nvml import Nvml
from odin.midgard.report import decode_report, encode_report
from odin.testing.nvml import FakeNvml, fake_gpu, fake_mig_device, write_fake_gpus


def _has_nvml() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


@pytest.mark.skipif(_has_nvml(), reason="this machine has an NVIDIA driver: the no-NVML path cannot happen here")
def test_real_pynvml_without_driver_reports_system_and_reason() -> None:
    report = collect_report()  # the real pynvml: nvmlInit raises NVMLError_LibraryNotFound here
    assert report.gpus == []
    assert report.gpu_unavailable_reason is not None
    assert "NVML library not found" in report.gpu_unavailable_reason
    assert report.system.hostname
    assert report.system.cpu_count and report.system.cpu_count >= 1
    assert report.system.memory_total_bytes and report.system.memory_total_bytes > 0
    assert decode_report(encode_report(report)) == report


def test_fake_multi_gpu_node_with_unsupported_fields_mig_and_a_lost_gpu() -> None:
    fake = FakeNvml(
        [
            fake_gpu(0, utilization_gpu=87, memory_used=40 * 1024**3, processes=[{"pid": 999999, "used_memory": 7}]),
            fake_gpu(1, lost=True),
            fake_gpu(
                2,
                ecc_mode=None,
                temperature=None,
                errors={"serial": "NoPermission"},
                mig_mode=[1, 1],
                mig_devices=[fake_mig_device(1), fake_mig_device(2)],
                processes=[{"pid": 999998, "gpu_instance_id": 2, "compute_instance_id": 0}],
            ),
        ]
    )
    report = collect_report(fake)
    assert report.gpu_unavailable_reason is None
    assert (report.driver_version, report.cuda_version) == ("550.54.15", "12.4")
    first, lost, mig = report.gpus
    assert first.utilization_gpu_percent == 87
    assert first.memory_free_bytes == 40 * 1024**3
    assert first.fan_speed_percent is None  # NotSupported on a datacentre board
    assert first.power_draw_watts == 71.0
    assert [(p.pid, p.used_memory_bytes) for p in first.processes] == [(999999, 7)]
    assert lost.lost and lost.error and lost.memory_total_bytes is None
    assert mig.ecc_mode_current is None and mig.ecc_errors_corrected_volatile is None
    assert mig.temperature_c is None and mig.serial is None
    assert mig.utilization_gpu_percent is None  # NVML refuses utilisation in MIG mode
    assert mig.mig_mode_current is True
    assert [m.gpu_instance_id for m in mig.mig_devices] == [1, 2]
    assert mig.processes[0].mig_device_uuid == mig.mig_devices[1].uuid


def test_no_gpu_and_nvml_failing_mid_life_are_reasons_not_errors() -> None:
    fake = FakeNvml([])
    nvml = Nvml(fake)
    assert nvml.read().unavailable_reason == "NVML found no GPU on this node"
    fake.library_missing = True
    nvml.close()
    assert "not found" in (nvml.read().unavailable_reason or "")
    fake.library_missing = False
    fake.gpus = [fake_gpu(0)]
    assert [g.index for g in nvml.read().gpus] == [0]  # a driver that appears later is picked up


def test_fake_from_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    path = write_fake_gpus(tmp_path / "gpus.json", [{}, {"name": "NVIDIA A100-SXM4-40GB"}])
    collector = Collector(load_nvml_module({"MIDGARD_FAKE_NVML": str(path)}))
    try:
        assert [g.name for g in collector.collect().gpus] == ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB"]
        write_fake_gpus(path, [{"processes": [{"pid": os.getpid(), "used_memory": 1}]}])
        (gpu,) = collector.collect().gpus
        assert gpu.processes[0].pid == os.getpid()
        assert gpu.processes[0].name  # /proc/PID/comm of this very process
    finally:
        collector.close()


def test_missing_data_path_is_reported_not_raised(tmp_path: Path) -> None:
    from odin.midgard.collect import CollectorConfig

    report = collect_report(FakeNvml([]), config=CollectorConfig(data_paths=[str(tmp_path), str(tmp_path / "nope")]))
    present, missing = report.system.disks
    assert present.total_bytes and present.free_bytes is not None and present.error is None
    assert missing.total_bytes is None and missing.error and "FileNotFoundError" in missing.error


def test_metrics_escape_label_values_and_skip_missing_readings() -> None:
    from odin.midgard.metrics import render_metrics

    report = collect_report(FakeNvml([fake_gpu(0, name='Odd "GPU"\\ name', power_usage_mw=None)]))
    text = render_metrics(report)
    assert 'modelName="Odd \\"GPU\\"\\\\ name"' in text
    assert "DCGM_FI_DEV_POWER_USAGE{" not in text
    assert "DCGM_FI_DEV_POWER_MGMT_LIMIT{" in text


@pytest.mark.parametrize(
    ("bind", "expected"),
    [("0.0.0.0:9090", ("0.0.0.0", 9090)), (":9091", ("0.0.0.0", 9091)), ("[::1]:9092", ("::1", 9092))],
)
def test_bind_forms(bind: str, expected: tuple[str, int]) -> None:
    from odin.midgard.cli import build_parser

    assert build_parser().parse_args(["serve", "--bind", bind]).bind == expected
