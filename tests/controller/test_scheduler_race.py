"""Two replicas' schedulers racing for one slot at the same instant: one run per (schedule, slot), nothing wrong left.

Fencing keeps a stale leader from writing (test_scheduler.py); here both replicas believe they may fire (around a
leadership handover, or with no fence at all), so the slot's unique key in `scheduled_slots` is what decides. Each
replica has its own engine on the one database (its own pool, and on SQLite its own writer lock, as two processes
would), its own git cache and its own work trees; both are released into the claiming transaction at once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from odin.controller.git.mirror import Mirror
from odin.controller.launcher import RunLauncher, ScheduledStart
from odin.controller.scheduler import Due, Scheduler
from odin.controller.store.db import IMMEDIATE_OPTION, _sqlite_begin, create_db_engine, transaction
from odin.controller.store.models import EVENTS, REPOSITORIES, RUNS, SCHEDULED_SLOTS
from tests.controller.test_scheduler import FakeClock, at, pipe
from tests.support.git import GitRemote

RACE_TIMEOUT = 20.0  # seconds a replica waits for the other at the rendezvous before the test fails


@dataclass
class Replica:
    engine: Engine
    launcher: RunLauncher
    scheduler: Scheduler
    submitted: list[str]


@pytest.fixture
def repo_id(db: Engine) -> int:
    with transaction(db) as conn:
        return int(
            conn.execute(
                REPOSITORIES.insert()
                .values(name="r", url="u", branch="main", conditions=[])
                .returning(REPOSITORIES.c.id)
            ).scalar_one()
        )


@pytest.fixture
def replicas(
    db_url: str, db: Engine, repo_id: int, git_remote: GitRemote, tmp_path: Path
) -> Iterator[Callable[[FakeClock], Replica]]:
    """Make replicas of one controller following `main` of `git_remote`, each with its own engine and caches."""
    made: list[Engine] = []

    def make(clock: FakeClock) -> Replica:
        root = tmp_path / f"replica-{len(made)}"
        engine = create_db_engine(db_url)
        made.append(engine)
        mirror = Mirror(git_remote.url, root / "cache", branch="main")
        mirror.fetch()
        submitted: list[str] = []
        launcher = RunLauncher(engine, repo_id, mirror, branch="main", trees_dir=root / "trees",
                               submit=submitted.append)  # fmt: skip
        scheduler = Scheduler(engine, repo_id, mirror, launcher, branch="main", clock=clock)
        return Replica(engine, launcher, scheduler, submitted)

    yield make
    for engine in made:
        engine.dispose()


def meet_at_the_claim(engine: Engine, barrier: threading.Barrier) -> None:
    """Hold this replica at its claim until the other one is there too (once).

    On Postgres both are then inside their write transactions and claim together: the second INSERT waits on the
    first's uncommitted row and finds it taken once that commits. SQLite has one writer at a time, so the two meet
    just before BEGIN IMMEDIATE and race for the write lock instead."""
    met = threading.Event()

    def meet() -> None:
        if not met.is_set():
            met.set()
            barrier.wait(RACE_TIMEOUT)

    if engine.dialect.name == "postgresql":

        def before_execute(_c: Any, _cur: Any, statement: str, _p: Any, _ctx: Any, _many: bool) -> None:
            if statement.lstrip().startswith(f"INSERT INTO {SCHEDULED_SLOTS.name}"):
                meet()

        event.listen(engine, "before_cursor_execute", before_execute)
    else:

        def before_begin(conn: sa.Connection) -> None:
            if conn.get_execution_options().get(IMMEDIATE_OPTION):
                meet()

        # Before the listener that sends BEGIN IMMEDIATE (`insert=True` does not reorder an engine's listeners).
        event.remove(engine, "begin", _sqlite_begin)
        event.listen(engine, "begin", before_begin)
        event.listen(engine, "begin", _sqlite_begin)


@contextlib.contextmanager
def slow_claims(db: Engine, *, seconds: float) -> Iterator[None]:
    """A Postgres trigger that sleeps before each row inserted into `scheduled_slots` (dropped afterwards: the
    database is the session's)."""
    table = SCHEDULED_SLOTS.name
    with db.begin() as conn:
        conn.execute(sa.text(f"""
            CREATE FUNCTION test_slow_claim() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_sleep({float(seconds)}); RETURN NEW; END $$;
            CREATE TRIGGER test_slow_claim BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION test_slow_claim();
        """))  # fmt: skip
    try:
        yield
    finally:
        with db.begin() as conn:
            conn.execute(sa.text(f"DROP TRIGGER test_slow_claim ON {table}; DROP FUNCTION test_slow_claim()"))


def race(*ticks: Callable[[], Due]) -> list[Due]:
    """Run the ticks on threads started together; each tick's result, in order (a tick that raised fails the test)."""
    results: list[Due | None] = [None] * len(ticks)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = ticks[i]()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,), name=f"replica-{i}") for i in range(len(ticks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(RACE_TIMEOUT * 2)
    assert not any(t.is_alive() for t in threads), "a replica's tick never finished"
    assert not errors, f"a replica's tick raised: {errors!r}"
    return [r for r in results if r is not None]


def problems_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [f"{r.levelname} {r.name}: {r.getMessage()}" for r in caplog.records
            if r.levelno >= logging.WARNING or r.exc_info is not None]  # fmt: skip


def test_two_schedulers_racing_for_one_slot_start_one_run(
    db: Engine,
    replicas: Callable[[FakeClock], Replica],
    git_remote: GitRemote,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 13 item 4, "exactly once per slot across replicas": both replicas tick at 03:00:00.2 and both find the
    slot due; one claims it and starts its run, the other learns it is taken, creates nothing, logs no problem and
    does not try the slot again."""
    sha = git_remote.commit({"nightly/main.yml": pipe('"0 3 * * *"'), "hourly/main.yml": pipe('"0 * * * *"')})
    clock = FakeClock(at("2026-01-05T02:59:00"))
    one, two = replicas(clock), replicas(clock)
    assert one.scheduler.tick().starts == () and two.scheduler.tick().starts == ()  # both have read the tip
    barrier = threading.Barrier(2)
    meet_at_the_claim(one.engine, barrier)
    meet_at_the_claim(two.engine, barrier)
    clock.now = at("2026-01-05T03:00:00.200")
    with caplog.at_level(logging.DEBUG, logger="odin"):
        first, second = race(one.scheduler.tick, two.scheduler.tick)
        for due in (first, second):
            assert sorted((s.pipeline, s.slot) for s in due.starts) == [
                ("hourly", at("2026-01-05T03:00:00")),
                ("nightly", at("2026-01-05T03:00:00")),
            ], "both replicas found both slots due"
        winner, loser = (first, second) if first.created else (second, first)
        assert len(winner.created) == 2 and loser.created == (), "one replica started both runs, the other none"
        assert sorted([*one.submitted, *two.submitted]) == sorted(r.run_id for r in winner.created)
        clock.now = at("2026-01-05T03:00:30")
        assert one.scheduler.tick().starts == () and two.scheduler.tick().starts == (), "the slot is not retried"
    assert problems_logged(caplog) == []

    with db.connect() as conn:
        rows = conn.execute(sa.select(RUNS.c.id, RUNS.c.pipeline, RUNS.c.commit_sha, RUNS.c.trigger)).all()
        slots = conn.execute(sa.select(SCHEDULED_SLOTS.c.pipeline, SCHEDULED_SLOTS.c.slot, SCHEDULED_SLOTS.c.run_id))
        slot_runs = {(s.pipeline, s.slot): s.run_id for s in slots}
        created = conn.execute(sa.select(EVENTS.c.run_id).where(EVENTS.c.kind == "run.created")).scalars().all()
    assert sorted((r.pipeline, r.commit_sha, r.trigger) for r in rows) == [
        ("hourly", sha, "schedule"),
        ("nightly", sha, "schedule"),
    ]
    by_pipeline = {r.pipeline: r.id for r in rows}
    assert slot_runs == {(p, at("2026-01-05T03:00:00")): run_id for p, run_id in by_pipeline.items()}, (
        "each slot names the run that started it"
    )
    assert sorted(created) == sorted(by_pipeline.values()), "one run.created event per run"


def test_replicas_claiming_the_same_slots_in_opposite_orders_both_finish(
    db: Engine, replicas: Callable[[FakeClock], Replica], git_remote: GitRemote, caplog: pytest.LogCaptureFixture
) -> None:
    with contextlib.ExitStack() as stack:
        _opposite_orders(db, replicas, git_remote, caplog, stack)


def _opposite_orders(
    db: Engine,
    replicas: Callable[[FakeClock], Replica],
    git_remote: GitRemote,
    caplog: pytest.LogCaptureFixture,
    stack: contextlib.ExitStack,
) -> None:
    """Two replicas whose ticks list the same due slots in a different order (their pollers have fetched different
    tips, whose schedules are listed differently) claim them at the same time: each slot is started once and neither
    transaction fails. Without a common order, on Postgres each INSERT waited on a row the other had claimed: a
    deadlock that aborted one replica's claim."""
    sha = git_remote.commit({f"p{i}/main.yml": pipe('"0 3 * * *"') for i in range(4)})
    if db.dialect.name == "postgresql":
        # Each claimed row takes a while, so that the two multi-row INSERTs interleave row by row every time.
        stack.enter_context(slow_claims(db, seconds=0.05))
    clock = FakeClock(at("2026-01-05T03:00:00.100"))
    one, two = replicas(clock), replicas(clock)
    slot = at("2026-01-05T03:00:00")
    starts = [ScheduledStart(f"p{i}", "0 3 * * *@UTC", slot) for i in range(4)]
    barrier = threading.Barrier(2)
    meet_at_the_claim(one.engine, barrier)
    meet_at_the_claim(two.engine, barrier)

    def tick(replica: Replica, order: list[ScheduledStart]) -> Callable[[], Due]:
        def claim() -> Due:
            created = replica.launcher.start_slots(sha, order)
            return Due(tuple(due for due, _ in created), tuple(run for _, run in created))

        return claim

    with caplog.at_level(logging.DEBUG, logger="odin"):
        first, second = race(tick(one, starts), tick(two, starts[::-1]))
    started = sorted([*(s.pipeline for s in first.starts), *(s.pipeline for s in second.starts)])
    assert started == ["p0", "p1", "p2", "p3"], "each slot started once, by one replica or the other"
    assert problems_logged(caplog) == []
    with db.connect() as conn:
        runs = conn.execute(sa.select(sa.func.count()).select_from(RUNS)).scalar_one()
        attached = sa.select(sa.func.count()).select_from(SCHEDULED_SLOTS).where(SCHEDULED_SLOTS.c.run_id.is_not(None))
        slots = conn.execute(attached).scalar_one()
    assert (runs, slots) == (4, 4), "four runs, each slot naming its run"
