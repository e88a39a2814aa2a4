"""A pipeline's `timeout` counts from when its run started running, not from its creation (issue 13 item 5, audit
gap 9): a run that waited in its pipeline's concurrency queue longer than its timeout still gets all of it once it
runs, while a run that runs past its timeout is still ended `TimedOut`.

A real leading Controller drives real subprocesses (test_concurrency.py's `Odin`). The pipeline's spec is frozen per
commit, so its run at an older commit, without a timeout, holds the pipeline's one slot while its runs at newer
commits, with `timeout: 3`, wait queued. Each task waits for a gate file the test creates, and every wait is on a
condition with a deadline.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from odin.controller.launcher import StartRequest
from tests.controller.test_concurrency import Odin, pipeline
from tests.support.git import GitRemote
from tests.support.wait import wait_until

TIMEOUT = 3.0
"""The newer commits' `timeout`, seconds: long enough for the test to open the gate of a run that runs."""
QUEUE = "concurrency: {limit: 1, policy: queue}\n"


def test_a_run_queued_past_its_timeout_gets_all_of_it_once_it_runs(
    db_url: str, git_remote: GitRemote, tmp_path: Path
) -> None:
    holder_gate, queued_gate, never = tmp_path / "holder", tmp_path / "queued", tmp_path / "never"
    holder_sha = git_remote.commit({"train/main.yml": pipeline("train", holder_gate, QUEUE)})
    odin = Odin(db_url, git_remote, tmp_path / "data")

    def push(files: dict[str, str]) -> str:
        git_remote.commit(files)
        (run_id,) = odin.controller.repo().sync.sync().runs  # the pipeline changed: one run at the new commit
        return run_id

    try:
        odin.controller.repo().sync.sync()  # the baseline (the poller may have taken it already)
        holder = odin.controller.start_run(StartRequest("train", ref=holder_sha)).run_id
        wait_until(lambda: odin.task_running(holder), 30, message="the run holding the slot running")
        timed = f"{QUEUE}timeout: {TIMEOUT}\n"
        queued = push({"train/main.yml": pipeline("train", queued_gate, timed)})
        assert odin.status(queued) == "queued"

        def waited_past_timeout() -> bool:
            return (datetime.now(UTC) - odin.run(queued).created_at).total_seconds() > TIMEOUT + 0.5

        wait_until(waited_past_timeout, 30, message="the queued run waiting longer than its timeout")
        assert odin.status(queued) == "queued"
        holder_gate.touch()
        odin.wait_status(holder, "succeeded")

        # Once it runs, the queued run has its whole timeout: its task runs until the test opens its gate.
        wait_until(lambda: odin.task_running(queued), 30, message="the formerly queued run's task running")
        assert odin.status(queued) == "running"
        queued_gate.touch()
        done = odin.wait_status(queued, "succeeded")
        assert (done.reason, odin.task(queued).status) == (None, "succeeded")
        assert (done.started_at - done.created_at).total_seconds() > TIMEOUT, "it waited queued past its timeout"

        # A run that runs past its timeout is still ended by it, counted from its start.
        stuck = push({"train/main.yml": pipeline("train", never, timed)})
        ended = odin.wait_status(stuck, "failed")
        assert (ended.reason, ended.message) == ("TimedOut", "timed out after 3s")
        assert odin.task(stuck).reason == "RunTimedOut"
        assert (ended.finished_at - ended.started_at).total_seconds() >= TIMEOUT
    finally:
        holder_gate.touch()
        queued_gate.touch()
        never.touch()
        odin.settle()
        odin.stop()
