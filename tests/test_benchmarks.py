"""The benchmarks stay runnable: each one's `--help` works (imports resolve, arguments parse).

Their figures are not tested here (they are measurements, printed by the scripts; see DEVELOPMENT.md), only that a
refactor elsewhere has not left a benchmark that no longer starts. `--help` exits before any server, database or
virtual environment is made, so this costs one interpreter start per script, a few at a time."""

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
    # issue 8
    "bench_validate_adversarial.py",
    "bench_webhook_bodies.py",
    "bench_large_blob.py",
    # issue 11
    "bench_outputs.py",
    "bench_artifacts.py",
    "results_query.py",
    "bench_pod_outputs.py",
    # issue 13
    "bench_webhooks_many.py",
    "bench_repo_refresh.py",
    # the others
    "bench_big_run.py",
    "bench_cache.py",
    "bench_console.py",
    "bench_fence.py",
    "bench_git_poll.py",
    "bench_gpu_admission.py",
    "bench_midgard_agent.py",
    "bench_midgard_aggregate.py",
    "bench_queue.py",
    "bench_repos.py",
    "bench_schedules.py",
    "bench_sync.py",
    "bench_tracking.py",
    "bench_validate.py",
    "gpu_sampling.py",
)
SILENT_ON_LOAD = frozenset(
    {
        "bench_big_run.py",
        "bench_cache.py",
        "bench_console.py",
        "bench_fence.py",
        "bench_git_poll.py",
        "bench_gpu_admission.py",
        "bench_midgard_agent.py",
        "bench_midgard_aggregate.py",
        "bench_outputs.py",
        "bench_pod_outputs.py",
        "bench_queue.py",
        "bench_repos.py",
        "bench_schedules.py",
        "bench_sync.py",
        "bench_tracking.py",
        "bench_validate.py",
        "gpu_sampling.py",
    }
)
"""Scripts whose `--help` does not (yet) say that they print the load average; their owners add it. A script leaves
this set when it does, and a new script never joins it."""
AT_ONCE = 4
"""Scripts started side by side: enough to overlap their interpreter starts, few enough for a shared 2-core machine."""


def test_every_benchmark_is_checked() -> None:
    """A new script in benchmarks/ is added to SCRIPTS (issue 8's two were missing for a while, unnoticed)."""
    present = {path.name for path in (ROOT / "benchmarks").glob("*.py") if not path.name.startswith("_")}
    assert present == set(SCRIPTS), (
        f"add to SCRIPTS: {sorted(present - set(SCRIPTS))}; gone: {sorted(set(SCRIPTS) - present)}"
    )
    assert set(SCRIPTS) >= SILENT_ON_LOAD


def test_each_benchmark_prints_its_help() -> None:
    for first in range(0, len(SCRIPTS), AT_ONCE):
        _check_help(SCRIPTS[first : first + AT_ONCE])


def _check_help(names: tuple[str, ...]) -> None:
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / name), "--help"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    }
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, f"{name} --help failed: {err[-2000:]}"
            assert out.startswith("usage: "), f"{name}: {out[:200]}"
            if name not in SILENT_ON_LOAD:
                assert "load average" in out, f"{name} --help does not say it prints the load average"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
