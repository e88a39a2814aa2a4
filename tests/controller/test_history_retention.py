"""Retention of events and logs (`ODIN_EVENTS_KEEP_DAYS`, `ODIN_LOGS_KEEP_DAYS`) on SQLite and Postgres, with the
clock injected: old history goes in small batches, runs and their provenance stay, active runs keep everything, and a
run's page says what is gone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine as DbEngine

from odin.api.console import views
from odin.api.services import runs as run_service
from odin.controller import history_retention
from odin.controller.artifacts.retention import RetentionPolicy
from odin.controller.history_retention import HistoryPolicy, prune_once
from odin.controller.retention import RetentionSweeper
from odin.controller.store import history
from odin.controller.store.db import transaction
from odin.controller.store.models import COMMITS, EVENTS, REPOSITORIES, RUNS, TASK_RUNS
from odin.controller.store.runs import NewRun, WriteBatch, create_run, write_batch
from odin.controller.vocabulary import RunStatus, Trigger
from odin.schema import load_pipeline
from odin.schema.model import PipelineSpec, TaskSpec
from tests.engine.test_engine_local import Harness
from tests.support.wait import wait_until

SPEC = PipelineSpec(
    name="p",
    tasks=(TaskSpec(name="a", image="x", command=("true",)), TaskSpec("b", "x", ("true",), depends=("a",))),
)
NOW = datetime.now(UTC)


def new_run(db: DbEngine, sha: str, *, finished: datetime | None) -> str:
    """A run with its tasks and events as the engine records them; ended at `finished` (None: still running)."""
    with transaction(db) as conn:
        repo_id = conn.execute(sa.select(REPOSITORIES.c.id)).scalar()
        if repo_id is None:
            repo_id = conn.execute(
                REPOSITORIES.insert().values(name="r", url="file:///r", branch="main").returning(REPOSITORIES.c.id)
            ).scalar_one()
        conn.execute(COMMITS.insert().values(repo_id=repo_id, sha=sha, message="change"))
        new = NewRun(
            pipeline="p", spec=SPEC, trigger=Trigger.MANUAL, params={"k": "v"}, commit_sha=sha, repo_id=repo_id
        )
        run_id = create_run(conn, new).run_id
    batch = WriteBatch()
    batch.run(run_id, status=RunStatus.RUNNING.value, started_at=NOW)
    for task in ("a", "b"):
        batch.task(run_id, task, status="running")
        batch.event("task.status", run_id=run_id, task=task, status="running")
    write_batch(db, batch)
    if finished is not None:
        batch = WriteBatch()
        batch.run(run_id, status=RunStatus.SUCCEEDED.value, finished_at=finished)
        for task in ("a", "b"):
            batch.task(run_id, task, status="succeeded")
        batch.event("run.status", run_id=run_id, status="succeeded")
        write_batch(db, batch)
    return run_id


def events_of(db: DbEngine, run_id: str | None) -> int:
    with db.connect() as conn:
        where = EVENTS.c.run_id.is_(None) if run_id is None else EVENTS.c.run_id == run_id
        return int(conn.execute(sa.select(sa.func.count()).select_from(EVENTS).where(where)).scalar_one())


def later_event(db: DbEngine, run_id: str, when: datetime) -> None:
    """An event recorded at `when` (the engine stamps events with the time they are written)."""
    with transaction(db) as conn:
        conn.execute(EVENTS.insert().values(kind="run.warning", run_id=run_id, time=when, data={"m": "late"}))


def test_old_events_go_in_batches_and_runs_tasks_and_commits_stay(db: DbEngine) -> None:
    old = [new_run(db, f"{i:040x}", finished=NOW) for i in range(1, 4)]
    active = new_run(db, "a" * 40, finished=None)
    with transaction(db) as conn:
        conn.execute(EVENTS.insert().values(kind="commit.seen", commit_sha="1" * 40, time=NOW, data={}))
    later_event(db, old[0], NOW + timedelta(days=5))
    counts = {r: events_of(db, r) for r in (*old, active)}
    assert all(n >= 2 for n in counts.values())

    # Ten days on, keeping seven: everything recorded at NOW is past the horizon, the event at NOW + 5 days is not.
    report = prune_once(db, HistoryPolicy(events_keep_days=7), tasks_dir=None, now=NOW + timedelta(days=10), batch=2)
    assert not report.more
    late, commit_seen = 1, 1
    assert report.events_deleted == sum(counts[r] for r in old) - late + commit_seen
    assert [events_of(db, r) for r in old] == [1, 0, 0], "the event younger than the horizon is kept"
    assert events_of(db, active) == counts[active], "an active run keeps its whole history"
    assert events_of(db, None) == 0
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(RUNS)).scalar_one() == 4
        assert conn.execute(sa.select(sa.func.count()).select_from(TASK_RUNS)).scalar_one() == 8
        assert conn.execute(sa.select(sa.func.count()).select_from(COMMITS)).scalar_one() == 4
    # The run's page says its events were deleted, and still shows what it ran.
    detail = run_service.get_run(db, old[1])
    assert detail.events_pruned_at is not None and detail.logs_pruned_at is None
    assert (detail.params, detail.commit_sha, detail.status) == ({"k": "v"}, f"{2:040x}", "succeeded")
    assert [t.status for t in detail.tasks] == ["succeeded", "succeeded"]
    assert run_service.run_events(db, old[1], task=None, after=None, limit=10).items == []
    assert run_service.get_run(db, active).events_pruned_at is None
    page = views.run_view(db, old[1], NOW)
    assert page.run.events_pruned_at is not None

    # Nothing left to delete: a second sweep changes nothing.
    again = prune_once(db, HistoryPolicy(events_keep_days=7), tasks_dir=None, now=NOW + timedelta(days=10), batch=2)
    assert again.events_deleted == 0


def test_a_sweep_stops_at_its_budget_and_the_next_one_goes_on(db: DbEngine) -> None:
    runs = [new_run(db, f"{i:040x}", finished=NOW) for i in range(1, 4)]
    total = sum(events_of(db, r) for r in runs)
    ticks = iter(range(1000))

    def clock() -> float:  # every batch takes a second
        return float(next(ticks))

    policy = HistoryPolicy(events_keep_days=1)
    first = prune_once(db, policy, tasks_dir=None, now=NOW + timedelta(days=2), batch=2, budget=2.5, clock=clock)
    assert first.more and 0 < first.events_deleted < total
    rest = prune_once(
        db,
        policy,
        tasks_dir=None,
        now=NOW + timedelta(days=2),
        batch=2,
        clock=clock,
        budget=1000,
        resume=first.progress,
    )
    assert not rest.more and first.events_deleted + rest.events_deleted == total


def test_a_log_pass_goes_on_where_the_last_tick_stopped(
    db: DbEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Directories of young runs are not looked at again and again: the next tick starts after the last one seen."""
    monkeypatch.setattr(history_retention, "LOG_CHUNK", 1)
    tasks_dir = tmp_path / "tasks"
    young = new_run(db, "1" * 40, finished=NOW + timedelta(days=9))
    old = [new_run(db, f"{c}" * 40, finished=NOW) for c in "234"]
    for run_id in (young, *old):
        (tasks_dir / run_id).mkdir(parents=True)
    ticks = iter(range(1000))
    policy = HistoryPolicy(logs_keep_days=7)
    later = NOW + timedelta(days=10)
    reports = [prune_once(db, policy, tasks_dir=tasks_dir, now=later, budget=0.5, clock=lambda: float(next(ticks)))]
    while reports[-1].more:
        reports.append(
            prune_once(
                db, policy, tasks_dir=tasks_dir, now=later, budget=0.5, clock=lambda: float(next(ticks)),
                resume=reports[-1].progress,
            )
        )  # fmt: skip
    assert len(reports) == 4, "one directory a tick, each looked at once"
    assert sorted(r for report in reports for r in report.runs_with_logs_pruned) == sorted(old)
    assert [p.name for p in tasks_dir.iterdir()] == [young]


def test_a_batch_resumes_after_the_events_it_kept(db: DbEngine) -> None:
    """The events of an active run are skipped, not stopped at: the batch goes on past them."""
    active = new_run(db, "a" * 40, finished=None)
    done = new_run(db, "b" * 40, finished=NOW)
    kept = events_of(db, active)
    batch = history.prune_events(db, NOW + timedelta(days=1), NOW, after=0, batch=kept)
    assert batch.deleted == 0 and batch.resume_after is not None
    batch = history.prune_events(db, NOW + timedelta(days=1), NOW, after=batch.resume_after, batch=100)
    assert batch.resume_after is None and events_of(db, done) == 0 and events_of(db, active) == kept


@pytest.fixture
def harness(db: DbEngine, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(db, tmp_path / "data")
    yield h
    h.close()


def test_logs_of_runs_ended_before_the_horizon_are_deleted_and_the_page_says_so(harness: Harness) -> None:
    """Real logs written by the local executor; a run still active, a recent one and a directory the store does not
    know are left alone."""
    engine = harness.start()
    loaded = load_pipeline(
        b"tasks:\n  - {name: hello, image: busybox, command: [sh, -c, 'echo hello from the task']}\n",
        file="main.yml",
        default_name="p",
    )
    assert loaded.spec is not None
    old = harness.create(loaded.spec)
    assert engine.wait(old, 30) == RunStatus.SUCCEEDED
    engine.stop()  # the runs below are made by hand: no engine may adopt them
    harness.engine = None
    tasks_dir = harness.data_dir / "tasks"
    assert any((tasks_dir / old).glob("hello.*.log"))
    recent = new_run(harness.db, "c" * 40, finished=NOW + timedelta(days=9))
    active = new_run(harness.db, "d" * 40, finished=None)
    for run_id in (recent, active, "not-a-run"):
        (tasks_dir / run_id).mkdir(parents=True)
        (tasks_dir / run_id / "a.1.log").write_text("kept\n")

    report = prune_once(harness.db, HistoryPolicy(logs_keep_days=7), tasks_dir=tasks_dir, now=NOW + timedelta(days=10))
    assert report.runs_with_logs_pruned == [old]
    assert not (tasks_dir / old).exists()
    assert all((tasks_dir / r / "a.1.log").exists() for r in (recent, active, "not-a-run"))
    detail = run_service.get_run(harness.db, old)
    assert detail.logs_pruned_at is not None and detail.status == "succeeded"
    row = run_service.task_row(harness.db, old, "hello")
    assert row.logs_pruned_at is not None
    assert "deleted by retention" in run_service.logs_pruned_note(row.logs_pruned_at)


def test_the_leaders_retention_worker_prunes_history(db: DbEngine) -> None:
    """The sweeper the leader starts applies the history policy on its ticks (artifacts keep everything here)."""
    run_id = new_run(db, "e" * 40, finished=NOW - timedelta(days=30))
    with transaction(db) as conn:  # recorded a month ago
        conn.execute(EVENTS.update().where(EVENTS.c.run_id == run_id).values(time=NOW - timedelta(days=30)))
    sweeper = RetentionSweeper(
        db, lambda: None, RetentionPolicy(), interval=0.05, history=HistoryPolicy(events_keep_days=7)
    )
    sweeper.start()
    try:
        wait_until(lambda: events_of(db, run_id) == 0, timeout=10)
    finally:
        sweeper.stop()
    assert run_service.get_run(db, run_id).events_pruned_at is not None
