"""The scheduler's own thread: it sleeps until the next slot and starts it when the clock gets there, and a schedule
that a new commit adds while it waits for a later slot is picked up.

The clock is injected but runs: it starts where the test puts it (a second before a slot) and advances with real
time, so the real thread really waits and the test waits only on conditions, each with a deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from odin.controller.git.mirror import Mirror
from odin.controller.launcher import RunLauncher
from odin.controller.scheduler import Scheduler
from odin.controller.store.db import transaction
from odin.controller.store.models import REPOSITORIES, RUNS
from tests.controller.test_scheduler import at, pipe
from tests.support.git import GitRemote
from tests.support.wait import wait_until

DEADLINE = 20.0  # seconds any condition gets before the test fails (the waits below end far sooner)


class RunningClock:
    """Now = a chosen instant plus the real time elapsed since; `set` moves it (the thread sees it at its next tick)."""

    def __init__(self, now: datetime) -> None:
        self._lock = threading.Lock()
        self.set(now)

    def set(self, now: datetime) -> None:
        with self._lock:
            self._base, self._since = now, time.monotonic()

    def __call__(self) -> datetime:
        with self._lock:
            return self._base + timedelta(seconds=time.monotonic() - self._since)


class Fired:
    """The runs handed over by the scheduler, each with the injected clock's time when it was handed over."""

    def __init__(self, clock: RunningClock) -> None:
        self.clock = clock
        self.runs: list[tuple[str, datetime]] = []

    def __call__(self, run_id: str) -> None:
        self.runs.append((run_id, self.clock()))


@pytest.fixture
def repo(db: Engine, git_remote: GitRemote, tmp_path: Path) -> tuple[int, Mirror]:
    with transaction(db) as conn:
        repo_id = conn.execute(
            REPOSITORIES.insert().values(name="r", url="u", branch="main", conditions=[]).returning(REPOSITORIES.c.id)
        ).scalar_one()
    git_remote.commit({"readme": "x"})
    return int(repo_id), Mirror(git_remote.url, tmp_path / "cache", branch="main")


@pytest.fixture
def started() -> Iterator[list[tuple[Scheduler, Fired]]]:
    """Schedulers the test starts; each is stopped afterwards."""
    made: list[tuple[Scheduler, Fired]] = []
    yield made
    for scheduler, _ in made:
        assert scheduler.stop(), "the scheduler's thread stopped"


def start(
    db: Engine, repo: tuple[int, Mirror], tmp_path: Path, clock: RunningClock, made: list[tuple[Scheduler, Fired]],
    *, interval: float,
) -> tuple[Scheduler, Fired]:  # fmt: skip
    repo_id, mirror = repo
    fired = Fired(clock)
    launcher = RunLauncher(db, repo_id, mirror, branch="main", trees_dir=tmp_path / "trees", submit=fired)
    scheduler = Scheduler(db, repo_id, mirror, launcher, branch="main", clock=clock, interval=interval)
    made.append((scheduler, fired))
    scheduler.start()
    return scheduler, fired


def scheduled_runs(db: Engine) -> list[tuple[str, str]]:
    with db.connect() as conn:
        rows = conn.execute(sa.select(RUNS.c.pipeline, RUNS.c.conditions).order_by(RUNS.c.created_at)).all()
    return [(row.pipeline, row.conditions[0]["slot"]) for row in rows]


def test_the_thread_sleeps_until_the_slot_and_starts_it_when_the_clock_gets_there(
    db: Engine,
    repo: tuple[int, Mirror],
    git_remote: GitRemote,
    tmp_path: Path,
    started: list[tuple[Scheduler, Fired]],
) -> None:
    """The thread's wait is the time to the next slot, not its interval: with an interval of an hour, the slot two
    seconds away starts at its instant (within the margin a loaded machine needs), after a handful of ticks: the
    thread slept, it did not poll the clock."""
    _, mirror = repo
    git_remote.commit({"nightly/main.yml": pipe('"0 3 * * *"')})
    mirror.fetch()
    slot = at("2026-01-05T03:00:00")
    clock = RunningClock(slot - timedelta(seconds=2))
    scheduler, fired = start(db, repo, tmp_path, clock, started, interval=3600)
    wait_until(lambda: scheduler.upcoming().get("nightly"), DEADLINE, message="the first tick read the schedule")
    assert fired.runs == [] and clock() < slot, "nothing starts before its slot"
    wait_until(lambda: fired.runs, DEADLINE, message="the slot started by the thread")
    ((_, when),) = fired.runs
    # Seconds, not the hour a thread that ignored the slot would sleep (slack for a loaded CI machine).
    assert slot <= when < slot + timedelta(seconds=10), f"started at {when}, its slot is {slot}"
    assert scheduler.ticks <= 5, f"{scheduler.ticks} ticks for one slot: the thread should sleep until it"
    assert scheduled_runs(db) == [("nightly", slot.isoformat())]
    assert scheduler.upcoming()["nightly"] == [("0 3 * * *@UTC", slot + timedelta(days=1))]


def test_a_schedule_a_new_commit_adds_is_picked_up_while_the_thread_waits_for_a_later_slot(
    db: Engine,
    repo: tuple[int, Mirror],
    git_remote: GitRemote,
    tmp_path: Path,
    started: list[tuple[Scheduler, Fired]],
) -> None:
    """The thread waits for 04:00 (the only schedule), at most its interval at a time as the controller runs it, so a
    commit the poller fetches meanwhile, with a schedule at 03:00, is read within that interval and its slot starts
    on time; the 04:00 schedule is kept."""
    _, mirror = repo
    git_remote.commit({"late/main.yml": pipe('"0 4 * * *"')})
    mirror.fetch()
    clock = RunningClock(at("2026-01-05T02:00:00"))
    scheduler, fired = start(db, repo, tmp_path, clock, started, interval=Scheduler.DEFAULT_INTERVAL)
    wait_until(lambda: scheduler.upcoming().get("late"), DEADLINE, message="the first tick read the schedule")
    git_remote.commit({"early/main.yml": pipe('"0 3 * * *"')})
    mirror.fetch()  # what the poller does after a push
    fetched = time.monotonic()
    wait_until(lambda: scheduler.upcoming().get("early"), DEADLINE, message="the new commit's schedule picked up")
    took = time.monotonic() - fetched
    assert took < Scheduler.DEFAULT_INTERVAL + 10, f"picked up after {took:.1f} s: the wait for 04:00 is not bounded"
    slot = at("2026-01-05T03:00:00")
    clock.set(slot - timedelta(milliseconds=300))
    wait_until(lambda: fired.runs, DEADLINE, message="the new schedule's slot started")
    ((_, when),) = fired.runs
    assert slot <= when < slot + timedelta(seconds=Scheduler.DEFAULT_INTERVAL + 10), f"started at {when}"
    assert scheduled_runs(db) == [("early", slot.isoformat())]
    assert scheduler.upcoming()["late"] == [("0 4 * * *@UTC", at("2026-01-05T04:00:00"))]
