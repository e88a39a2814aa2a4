"""The local executor honours a kill that arrives while the attempt is still being launched (a quick cancel)."""

from __future__ import annotations

import threading
from pathlib import Path

from odin.controller.executors.local import LocalExecutor
from odin.controller.vocabulary import Observation, RunContext, TaskLaunch, TaskPaths, TaskStatus
from odin.schema.model import TaskSpec


def test_a_kill_before_the_process_exists_kills_it_when_it_starts(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path, kill_grace=5)
    seen: list[Observation] = []
    ended = threading.Event()

    def report(obs: Observation) -> None:
        seen.append(obs)
        if obs.status in (TaskStatus.SUCCEEDED, TaskStatus.FAILED):
            ended.set()

    executor.bind(report)
    run = RunContext("r-1", "p", None, None, "manual", None, None)
    executor.prepare_run(run)
    paths = executor.paths(run)
    spec = TaskSpec("t", None, ("sleep", "60"))
    launch = TaskLaunch(
        run, spec, 1, ("sleep", "60"), (), {}, TaskPaths(paths.run_path, paths.run_path, paths.root_path)
    )
    try:
        executor.kill("r-1", "t", 1, "Cancelled")  # the engine asked before the launcher thread got to it
        executor.start(launch)
        assert ended.wait(30), "the attempt was killed instead of sleeping for a minute"
        assert seen[-1].status == TaskStatus.FAILED and seen[-1].reason == "Terminated"
    finally:
        executor.shutdown()
