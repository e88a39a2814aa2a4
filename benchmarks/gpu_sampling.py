"""What sampling a running task's GPUs costs the controller: process CPU time per second of wall.

Target (issue 10, "Speed"): sampling a running task costs <= 1 % of a core, at the default interval (5 s) and at 1 s.

What runs is what `odin serve` runs, minus the HTTP server: the controller's `GpuSampler` thread over
`odin.cli.local_gpus.local_gpu_sampler()` (Midgard's in-process `Collector`: the real NVML adapter over
odin.testing.nvml's fake, 8 GPUs, re-read from its MIDGARD_FAKE_NVML file on every pass as the fake does), with
a real task process (a `sleep` carrying the ODIN_* variables) on every GPU, so each pass attributes it through
/proc, and the summary written to a real SQLite store at every sample. The executor is a stand-in that reports the
task holding all 8 GPUs. The main thread only sleeps, so the process's CPU time over the window is the sampler's
(plus the interpreter's idle housekeeping, which is counted against it).

    .venv/bin/python benchmarks/gpu_sampling.py [--seconds-default 30] [--seconds-fast 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from odin.cli.local_gpus import local_gpu_sampler
from odin.controller.executors.base import Executor
from odin.controller.gpu_sampler import GpuSampler
from odin.controller.gpu_usage import IdlePolicy
from odin.controller.gpus import GpuHolding
from odin.controller.store.db import create_db_engine, migrate
from odin.controller.store.runs import NewRun, create_run
from odin.controller.store.tables import TASK_RUNS
from odin.controller.vocabulary import Trigger
from odin.schema.model import PipelineSpec
from odin.testing.nvml import GIB, fake_gpu, write_fake_gpus

GPUS = 8
TARGET_PERCENT = 1.0


class _Holding(Executor):
    def __init__(self, holding: GpuHolding) -> None:
        super().__init__()
        self.holding = holding

    def gpu_holdings(self) -> list[GpuHolding]:
        return [self.holding]

    def paths(self, run: Any) -> Any:
        raise NotImplementedError

    def start(self, launch: Any) -> None:
        raise NotImplementedError

    def kill(self, run_id: str, task: str, attempt: int, reason: str) -> None:
        raise NotImplementedError

    def recover(self, attempts: Any) -> None:
        raise NotImplementedError


def measure(interval: float, seconds: float, tmp: Path) -> tuple[float, int]:
    """CPU seconds per wall second (as a percent of one core) and the samples taken, over `seconds` of sampling."""
    db = create_db_engine(f"sqlite:///{tmp / f'odin-{interval}.db'}")
    migrate(db)
    spec = PipelineSpec.from_dict({"name": "bench", "tasks": [{"name": "train", "image": "x", "command": ["true"]}]})
    with db.begin() as conn:
        run_id = create_run(conn, NewRun(pipeline="bench", spec=spec, trigger=Trigger.MANUAL, params={})).run_id
        conn.execute(TASK_RUNS.update().where(TASK_RUNS.c.run_id == run_id).values(attempt=1, status="running"))
    env = {"PATH": "/usr/bin:/bin", "ODIN_RUN": run_id, "ODIN_TASK": "train", "ODIN_ATTEMPT": "1"}
    task = subprocess.Popen(["sleep", str(seconds + 30)], env=env)
    try:
        write_fake_gpus(
            tmp / "gpus.json",
            [
                fake_gpu(i, utilization_gpu=70 + i, memory_used=(i + 20) * GIB, processes=[{"pid": task.pid}])
                for i in range(GPUS)
            ],
        )
        executor = _Holding(GpuHolding(run_id, "train", 1, tuple(range(GPUS)), since=time.time()))
        sampler = GpuSampler(db, executor, local_gpu_sampler(), interval=interval, policy=IdlePolicy(), node="bench")
        sampler.sample_once()  # NVML initialised, statements compiled: the steady state is what is measured
        cpu0, wall0 = time.process_time(), time.monotonic()
        sampler.start()
        time.sleep(seconds)
        sampler.stop()
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        with db.connect() as conn:
            usage = conn.execute(TASK_RUNS.select().where(TASK_RUNS.c.run_id == run_id)).first()
        assert usage is not None and usage.gpu_usage is not None
        samples = int(usage.gpu_usage["samples"]) - 1
        assert len(usage.gpu_usage["gpus"]) == GPUS, usage.gpu_usage
        return 100 * cpu / wall, samples
    finally:
        task.kill()
        task.wait()
        db.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds-default", type=float, default=30.0, help="wall seconds sampled at 5 s")
    parser.add_argument("--seconds-fast", type=float, default=10.0, help="wall seconds sampled at 1 s")
    args = parser.parse_args()
    failed = False
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ["MIDGARD_FAKE_NVML"] = str(tmp / "gpus.json")
        for interval, seconds in ((5.0, args.seconds_default), (1.0, args.seconds_fast)):
            percent, samples = measure(interval, seconds, tmp)
            ok = percent <= TARGET_PERCENT
            failed |= not ok
            print(
                f"sampling 1 running task on {GPUS} fake GPUs every {interval:g} s: {percent:.3f} % of a core "
                f"({samples} samples in {seconds:g} s wall)  target <= {TARGET_PERCENT:g} %  {'OK' if ok else 'MISSED'}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
