"""The run queue in the store (issue 13 item 5): a pipeline's `concurrency` and the controller's limit of active runs,
decided inside the transaction that creates a run, race-free across threads, on SQLite and Postgres."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from odin.controller.store import queueing
from odin.controller.store.db import transaction
from odin.controller.store.models import EVENTS, REPOSITORIES, RUNS, TASK_RUNS
from odin.controller.store.runs import NewRun, create_run, request_cancel
from odin.controller.vocabulary import RunStatus, Trigger
from odin.schema.model import Concurrency, PipelineSpec, TaskSpec


def spec(name: str = "p", *, limit: int | None = None, policy: str = "queue", priority: int = 0) -> PipelineSpec:
    concurrency = Concurrency(limit, policy) if limit is not None else None
    task = TaskSpec(name="t", image="busybox", command=("true",))
    return PipelineSpec(name=name, tasks=(task,), concurrency=concurrency, priority=priority)


@pytest.fixture
def repo_id(db: Engine) -> Iterator[int]:
    with transaction(db) as conn:
        rid = conn.execute(
            REPOSITORIES.insert().values(name="r", url="u", branch="main", conditions=[]).returning(REPOSITORIES.c.id)
        ).scalar_one()
    yield int(rid)
    queueing.configure(db, max_active_runs=None)


def create(db: Engine, repo_id: int, pipeline: PipelineSpec) -> str:
    new = NewRun(pipeline=pipeline.name, spec=pipeline, trigger=Trigger.MANUAL, params={}, repo_id=repo_id)
    with transaction(db) as conn:
        return create_run(conn, new).run_id


def row(db: Engine, run_id: str) -> sa.Row[tuple[object, ...]]:
    with db.connect() as conn:
        return conn.execute(sa.select(RUNS).where(RUNS.c.id == run_id)).one()


def events(db: Engine, run_id: str) -> list[str]:
    with db.connect() as conn:
        q = sa.select(EVENTS.c.kind).where(EVENTS.c.run_id == run_id).order_by(EVENTS.c.id)
        return list(conn.execute(q).scalars())


def finish(db: Engine, run_id: str) -> None:
    with transaction(db) as conn:
        conn.execute(RUNS.update().where(RUNS.c.id == run_id).values(status=RunStatus.SUCCEEDED.value))


def create_at_once(db: Engine, repo_id: int, pipeline: PipelineSpec, count: int) -> list[str]:
    """`count` threads creating a run of the pipeline at the same moment."""
    barrier = threading.Barrier(count)
    created: list[str] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            barrier.wait(10)
            created.append(create(db, repo_id, pipeline))
        except BaseException as e:  # reported below: a thread's failure must fail the test
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return created


def test_runs_created_at_once_never_exceed_the_limit(db: Engine, repo_id: int) -> None:
    queued = create_at_once(db, repo_id, spec(limit=2), 8)
    statuses = Counter(row(db, r).status for r in queued)
    assert statuses == {"pending": 2, "queued": 6}
    waiting = next(row(db, r) for r in queued if row(db, r).status == "queued")
    assert waiting.reason == queueing.PIPELINE_LIMIT
    assert waiting.message == "waiting: 2 of 2 run(s) of pipeline p active"


def test_skip_records_the_new_run_skipped_naming_the_run_holding_the_slot(db: Engine, repo_id: int) -> None:
    runs = create_at_once(db, repo_id, spec(limit=1, policy="skip"), 6)
    statuses = Counter(row(db, r).status for r in runs)
    assert statuses == {"pending": 1, "skipped": 5}
    (holder,) = [r for r in runs if row(db, r).status == "pending"]
    skipped = row(db, next(r for r in runs if r != holder))
    assert (skipped.reason, skipped.message) == (queueing.PIPELINE_LIMIT, f"pipeline already running: run {holder}")
    assert skipped.finished_at is not None
    with db.connect() as conn:
        tasks = conn.execute(sa.select(TASK_RUNS.c.status).where(TASK_RUNS.c.run_id == skipped.id)).scalars().all()
    assert tasks == ["skipped"]


def test_replace_cancels_the_oldest_and_starts_the_new_run(db: Engine, repo_id: int) -> None:
    older = create(db, repo_id, spec(limit=1, policy="replace"))
    newer = create(db, repo_id, spec(limit=1, policy="replace"))
    replaced = row(db, older)
    assert replaced.cancel_requested and (replaced.reason, replaced.message) == ("Replaced", f"replaced by run {newer}")
    assert row(db, newer).status == "pending", "the run being cancelled no longer holds the pipeline's slot"


def test_the_global_limit_starts_the_highest_priority_first_then_the_oldest(db: Engine, repo_id: int) -> None:
    queueing.configure(db, max_active_runs=1)
    first = create(db, repo_id, spec("a"))
    low_old, low_new = create(db, repo_id, spec("b")), create(db, repo_id, spec("c"))
    high = create(db, repo_id, spec("d", priority=5))
    assert [row(db, r).status for r in (first, low_old, low_new, high)] == ["pending", "queued", "queued", "queued"]
    assert row(db, high).reason == queueing.GLOBAL_LIMIT
    assert events(db, first) == ["run.created"], "a run that starts at once was never queued"
    assert events(db, high) == ["run.created", "run.status"]
    order = []
    current = first
    for _ in range(3):
        finish(db, current)
        (current,) = queueing.promote_queued(db)
        order.append(current)
    assert order == [high, low_old, low_new]
    assert queueing.promote_queued(db) == []


def test_a_pipeline_waiting_on_its_own_limit_does_not_hold_up_others(db: Engine, repo_id: int) -> None:
    queueing.configure(db, max_active_runs=2)
    busy = create(db, repo_id, spec("p", limit=1))
    blocked = create(db, repo_id, spec("p", limit=1, priority=9))
    other = create(db, repo_id, spec("q"))
    assert [row(db, r).status for r in (busy, blocked, other)] == ["pending", "queued", "pending"]
    assert row(db, blocked).reason == queueing.PIPELINE_LIMIT


def test_a_queued_run_is_cancelled_at_once(db: Engine, repo_id: int) -> None:
    create(db, repo_id, spec(limit=1))
    waiting = create(db, repo_id, spec(limit=1))
    assert request_cancel(db, waiting, by="alice")
    cancelled = row(db, waiting)
    assert (cancelled.status, cancelled.message) == ("cancelled", "cancelled by alice while queued")
    assert not request_cancel(db, waiting), "a finished run cannot be cancelled again"


def test_replace_ends_an_older_run_still_queued_at_once(db: Engine, repo_id: int) -> None:
    queueing.configure(db, max_active_runs=1)
    create(db, repo_id, spec("other"))
    older = create(db, repo_id, spec(limit=1, policy="replace"))
    assert row(db, older).status == "queued"
    newer = create(db, repo_id, spec(limit=1, policy="replace"))
    replaced = row(db, older)
    assert (replaced.status, replaced.reason, replaced.message) == ("cancelled", "Replaced", f"replaced by run {newer}")
    assert (row(db, newer).status, row(db, newer).reason) == ("queued", queueing.GLOBAL_LIMIT)
