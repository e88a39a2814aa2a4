"""Concurrency per pipeline and the global queue (issue 13 item 5), end to end: a real Controller leading, its engine
running real subprocesses through the local executor, runs started by pushes and by requests, on SQLite and
Postgres. Each blocking task waits for a gate file the test creates, so nothing here waits on a guessed duration."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from odin.controller.launcher import StartRequest
from odin.controller.service import Controller
from odin.controller.settings import Settings
from odin.controller.store.models import EVENTS, RUNS, TASK_RUNS
from tests.support.git import GitRemote
from tests.support.wait import wait_until


def pipeline(name: str, gate: Path | None, head: str = "") -> str:
    """A one-task pipeline; with a gate, its task runs until the gate file exists."""
    script = f"while [ ! -e {gate} ]; do sleep 0.02; done" if gate is not None else "true"
    return f"name: {name}\n{head}tasks:\n  - {{name: t, image: busybox, command: [sh, -c, '{script}']}}\n"


class Odin:
    """A leading controller on the test's repository, and the reads the tests make of its store."""

    def __init__(self, db_url: str, remote: GitRemote, data_dir: Path, **settings: Any) -> None:
        self.controller = Controller(
            Settings(repo=remote.url, data_dir=data_dir, database_url=db_url, poll_interval=3600, **settings)
        )
        self.controller.start()
        assert self.controller.wait_leading(60)

    def start(self, pipeline: str) -> str:
        return self.controller.start_run(StartRequest(pipeline)).run_id

    def run(self, run_id: str) -> sa.Row[Any]:
        with self.controller.db.connect() as conn:
            return conn.execute(sa.select(RUNS).where(RUNS.c.id == run_id)).one()

    def status(self, run_id: str) -> str:
        return str(self.run(run_id).status)

    def task(self, run_id: str) -> sa.Row[Any]:
        with self.controller.db.connect() as conn:
            return conn.execute(sa.select(TASK_RUNS).where(TASK_RUNS.c.run_id == run_id)).one()

    def task_running(self, run_id: str) -> bool:
        with self.controller.db.connect() as conn:
            q = sa.select(TASK_RUNS.c.status).where(TASK_RUNS.c.run_id == run_id)
            return conn.execute(q).scalar_one() == "running"

    def wait_status(self, run_id: str, status: str) -> sa.Row[Any]:
        wait_until(lambda: self.status(run_id) == status, 30, message=f"run {run_id} {status}")
        return self.run(run_id)

    def statuses(self, run_id: str) -> list[str]:
        with self.controller.db.connect() as conn:
            q = sa.select(EVENTS.c.data).where(EVENTS.c.run_id == run_id, EVENTS.c.kind == "run.status")
            return [d["status"] for d in conn.execute(q.order_by(EVENTS.c.id)).scalars()]

    def settle(self) -> None:
        """Wait until every run has ended (their gates open), so that no task outlives the test."""

        def idle() -> bool:
            with self.controller.db.connect() as conn:
                live = RUNS.c.status.in_(("queued", "pending", "running"))
                return conn.execute(sa.select(sa.func.count()).select_from(RUNS).where(live)).scalar_one() == 0

        wait_until(idle, 30, message="every run ended")

    def stop(self) -> None:
        self.controller.stop()

    def reap(self) -> None:
        """After `stop`: collect the exit status of the tasks the stopped executor left running (as a restart does by
        design). A real restart is a new process; here the test process is still their parent."""
        for attempt in list(self.controller.executor._attempts.values()):  # type: ignore[attr-defined]
            if attempt.popen is not None:
                attempt.popen.wait(30)


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    return tmp_path / "gate"


@pytest.fixture
def odin(db_url: str, git_remote: GitRemote, tmp_path: Path, gate: Path) -> Iterator[Odin]:
    git_remote.commit(
        {
            "queue/main.yml": pipeline("queue", gate, "concurrency: {limit: 1}\n"),
            "replace/main.yml": pipeline("replace", gate, "concurrency: {limit: 1, policy: replace}\n"),
            "skip/main.yml": pipeline("skip", gate, "concurrency: {limit: 1, policy: skip}\n"),
        }
    )
    odin = Odin(db_url, git_remote, tmp_path / "data")
    yield odin
    gate.touch()
    try:
        odin.settle()
    finally:
        odin.stop()


def test_pushes_beyond_the_limit_wait_queued_and_start_in_order(odin: Odin, git_remote: GitRemote, gate: Path) -> None:
    repo = odin.controller.repo()
    repo.sync.sync()  # the baseline (the poller may have taken it already)
    runs = []
    for i in range(3):
        git_remote.commit({f"queue/data{i}.txt": str(i)})
        (run_id,) = repo.sync.sync().runs
        runs.append(run_id)
    first, second, third = runs
    wait_until(lambda: odin.task_running(first), 30, message="the first run's task running")
    for waiting in (second, third):
        row = odin.run(waiting)
        assert (row.status, row.reason) == ("queued", "ConcurrencyLimit")
        assert row.message == "waiting: 1 of 1 run(s) of pipeline queue active"
    gate.touch()
    ended = [odin.wait_status(r, "succeeded") for r in runs]
    assert ended[0].finished_at <= ended[1].started_at and ended[1].finished_at <= ended[2].started_at, "one at a time"
    assert odin.statuses(second)[:2] == ["queued", "pending"], "visible as queued, then left the queue"


def test_replace_cancels_the_older_run_and_starts_the_newer(odin: Odin, gate: Path) -> None:
    older = odin.start("replace")
    wait_until(lambda: odin.task_running(older), 30, message="the older run's task running")
    newer = odin.start("replace")
    replaced = odin.wait_status(older, "cancelled")
    assert (replaced.reason, replaced.message) == ("Replaced", f"replaced by run {newer}")
    wait_until(lambda: odin.task_running(newer), 30, message="the newer run's task running")
    gate.touch()
    odin.wait_status(newer, "succeeded")


def test_skip_records_the_new_run_skipped_and_never_starts_it(odin: Odin, gate: Path) -> None:
    running = odin.start("skip")
    wait_until(lambda: odin.task_running(running), 30, message="the first run's task running")
    skipped = odin.run(odin.start("skip"))
    assert (skipped.status, skipped.message) == ("skipped", f"pipeline already running: run {running}")
    assert skipped.started_at is None
    gate.touch()
    odin.wait_status(running, "succeeded")
    assert odin.status(skipped.id) == "skipped"


def test_a_queued_run_is_cancelled_without_starting(odin: Odin) -> None:
    running = odin.start("queue")
    waiting = odin.start("queue")
    assert odin.status(waiting) == "queued"
    assert odin.controller.cancel(waiting, by="alice")
    assert odin.status(waiting) == "cancelled"
    assert odin.run(waiting).started_at is None
    assert odin.status(running) in ("pending", "running")


def test_the_global_limit_starts_queued_runs_by_priority_then_age(
    db_url: str, git_remote: GitRemote, tmp_path: Path, gate: Path
) -> None:
    git_remote.commit(
        {
            "blocker/main.yml": pipeline("blocker", gate),
            "low/main.yml": pipeline("low", None),
            "high/main.yml": pipeline("high", None, "priority: 5\n"),
        }
    )
    odin = Odin(db_url, git_remote, tmp_path / "data", max_active_runs=1)
    try:
        blocker = odin.start("blocker")
        low, high = odin.start("low"), odin.start("high")
        for waiting in (low, high):
            row = odin.run(waiting)
            assert (row.status, row.reason) == ("queued", "MaxActiveRuns")
        gate.touch()
        high_run, low_run = odin.wait_status(high, "succeeded"), odin.wait_status(low, "succeeded")
        assert odin.run(blocker).finished_at <= high_run.started_at
        assert high_run.finished_at <= low_run.started_at, "the higher priority first, one at a time"
    finally:
        gate.touch()
        odin.settle()
        odin.stop()


def test_a_queued_run_survives_a_restart_and_starts_afterwards(
    db_url: str, git_remote: GitRemote, tmp_path: Path, gate: Path
) -> None:
    git_remote.commit({"queue/main.yml": pipeline("queue", gate, "concurrency: {limit: 1}\n")})
    odin = Odin(db_url, git_remote, tmp_path / "data")
    try:
        running = odin.start("queue")
        waiting = odin.start("queue")
        wait_until(lambda: odin.task_running(running), 30, message="the first run's task running")
    finally:
        odin.stop()
    assert odin.status(waiting) == "queued"
    gate.touch()  # the first run's task ends while no controller runs
    exit_file = tmp_path / "data" / "tasks" / running / "t.1.exit"
    wait_until(exit_file.exists, 30, message="the first run's task ended")
    odin.reap()
    again = Odin(db_url, git_remote, tmp_path / "data")
    try:
        first = again.wait_status(running, "succeeded")
        second = again.wait_status(waiting, "succeeded")
        assert first.finished_at <= second.started_at
        assert "finished while the controller was down" in (again.task(running).message or "")
    finally:
        gate.touch()
        again.settle()
        again.stop()
