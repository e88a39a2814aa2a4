"""The engine under a fence (issue 14 item 4): once another leadership begins, its commits are refused and nothing
it decided after them happens; started again for a new leadership, it reads the store afresh and finishes the run.

Real parts: the local executor running shell tasks, SQLite and Postgres stores, epochs advanced as a new leader's
acquisition advances them.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine as DbEngine

from odin.controller.engine.decide import RetryPolicy
from odin.controller.engine.loop import Engine
from odin.controller.store.leadership import SCHEDULER, Fence, advance_epoch
from odin.controller.vocabulary import RunStatus
from tests.engine.test_engine_local import Harness, sh, spec
from tests.support.wait import wait_until


def test_a_refused_commit_starts_nothing_and_a_new_leadership_finishes_the_run(db: DbEngine, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    harness = Harness(db, tmp_path / "data")
    fence = Fence(SCHEDULER, advance_epoch(db, SCHEDULER, holder="old"))
    engine = Engine(
        db,
        harness.executor(),
        policy=RetryPolicy(base=0.05, maximum=0.2, jitter=0.0),
        rescan_interval=0.5,
        fence=lambda: fence,
    )
    harness.engine = engine
    engine.start()
    try:
        assert engine.wait_ready(10)
        run_id = harness.create(
            spec(
                sh("a", f'touch "{marks}/a"; while [ ! -e "{marks}/go" ]; do sleep 0.05; done'),
                sh("b", f'touch "{marks}/b"', depends=("a",)),
            )
        )
        wait_until(lambda: harness.tasks(run_id)["a"].status == "running", 30, message="`a` runs, recorded")
        advance_epoch(db, SCHEDULER, holder="new")  # another replica leads from here on
        (marks / "go").touch()  # `a` ends: the engine would record it and start `b`
        wait_until(lambda: engine.fenced, 30, message="the engine's commit is refused")
        assert not (marks / "b").exists(), "no start follows a refused commit"
        assert harness.tasks(run_id)["a"].status == "running", "the refused commit wrote nothing"
        assert engine.wait(run_id, 0) is None
        exit_file = harness.data_dir / "tasks" / run_id / "a.1.exit"
        wait_until(exit_file.exists, 30, message="`a` has ended")

        fence = Fence(SCHEDULER, advance_epoch(db, SCHEDULER, holder="old-again"))  # it leads once more
        engine.stop()
        engine.start()
        assert engine.wait_ready(10)
        assert not engine.fenced
        assert engine.wait(run_id, 30) == RunStatus.SUCCEEDED, "the new leadership adopts `a`'s outcome, runs `b`"
        assert (marks / "b").exists()
        tasks = harness.tasks(run_id)
        assert (tasks["a"].attempt, tasks["b"].attempt) == (1, 1)
    finally:
        (marks / "go").touch()
        harness.close()
