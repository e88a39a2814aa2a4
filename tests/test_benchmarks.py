"""The benchmarks stay runnable: each one's `--help` works (imports resolve, arguments parse).

Their figures are not tested here (they are measurements, printed by the scripts; see DEVELOPMENT.md), only that a
refactor elsewhere has not left a benchmark that no longer starts. `--help` exits before any server, database or
virtual environment is made, so this costs one interpreter start per script, run side by side."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = (
    "bench_api.py",
    "bench_webhooks.py",
    "bench_kube_fanout.py",
    "bench_ws.py",
    "peers.py",
    "bench_store_scale.py",
    "bench_sandbox.py",
    "bench_kube_scale.py",
    "bench_local_executor.py",
    "bench_wrappers.py",
    "bench_startup.py",
)


def test_each_benchmark_prints_its_help() -> None:
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / name), "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in SCRIPTS
    }
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, f"{name} --help failed: {err[-2000:]}"
            assert out.startswith("usage: "), f"{name}: {out[:200]}"
            assert "load average" in out, f"{name} --help does not say it prints the load average"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
