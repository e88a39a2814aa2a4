"""Runs created in bulk (`create_runs`, a schedule tick's thousand slots): the same rows, tasks and `run.created`
events as one `create_run` each, on SQLite and Postgres; a collision falls back to `create_run` without losing or
doubling a run; runs the queue governs keep their queue decisions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from odin.controller.store import queueing
from odin.controller.store.db import transaction
from odin.controller.store.models import EVENTS, REPOSITORIES, RUNS, TASK_RUNS
from odin.controller.store.runs import NewRun, create_run, create_runs
from odin.controller.vocabulary import RunStatus, Trigger
from odin.schema.model import Concurrency, PipelineSpec, TaskSpec

SHA = "ab" * 20


def spec(name: str, *, tasks: int = 2, limit: int | None = None, policy: str = "queue") -> PipelineSpec:
    steps = tuple(TaskSpec(name=f"t{i}", image="busybox", command=("true",)) for i in range(tasks))
    return PipelineSpec(name=name, tasks=steps, concurrency=Concurrency(limit, policy) if limit else None)


@pytest.fixture
def repo_id(db: Engine) -> Iterator[int]:
    with transaction(db) as conn:
        rid = conn.execute(
            REPOSITORIES.insert().values(name="r", url="u", branch="main", conditions=[]).returning(REPOSITORIES.c.id)
        ).scalar_one()
    yield int(rid)
    queueing.configure(db, max_active_runs=None)


def new(repo_id: int, pipeline: str, *, trigger: Trigger = Trigger.SCHEDULE, **kw: object) -> NewRun:
    return NewRun(pipeline=pipeline, spec=spec(pipeline, **kw), trigger=trigger, params={"x": "1"},  # type: ignore[arg-type]
                  commit_sha=SHA, branch="main", repo_id=repo_id, triggered_by="schedule")  # fmt: skip


def table(db: Engine) -> tuple[dict[str, sa.Row[tuple[object, ...]]], dict[str, int], dict[str, list[str]]]:
    with db.connect() as conn:
        runs = {r.id: r for r in conn.execute(sa.select(RUNS))}
        tasks: dict[str, int] = {}
        for t in conn.execute(sa.select(TASK_RUNS.c.run_id)):
            tasks[t.run_id] = tasks.get(t.run_id, 0) + 1
        events: dict[str, list[str]] = {}
        for e in conn.execute(sa.select(EVENTS.c.run_id, EVENTS.c.kind).order_by(EVENTS.c.id)):
            events.setdefault(e.run_id, []).append(e.kind)
    return runs, tasks, events


def test_bulk_creation_writes_what_one_at_a_time_writes(db: Engine, repo_id: int) -> None:
    with transaction(db) as conn:
        single = create_run(conn, new(repo_id, "a"))
    with transaction(db) as conn:
        bulk = create_runs(conn, [new(repo_id, "a"), new(repo_id, "b", tasks=3), new(repo_id, "a")])
    assert [c.run_id for c in bulk] == [f"a-{SHA[:7]}-2", f"b-{SHA[:7]}-1", f"a-{SHA[:7]}-3"]
    assert all(c.created for c in bulk)
    runs, tasks, events = table(db)
    reference = runs[single.run_id]._mapping
    for created in bulk:
        row = runs[created.run_id]._mapping
        differs = {k for k in reference if k not in ("id", "created_at", "pipeline", "spec") and row[k] != reference[k]}
        assert differs == set(), differs
        assert events[created.run_id] == ["run.created"]
    assert (tasks[bulk[0].run_id], tasks[bulk[1].run_id]) == (2, 3)
    assert runs[bulk[1].run_id].status == RunStatus.PENDING.value


def test_a_colliding_batch_falls_back_to_one_at_a_time(db: Engine, repo_id: int) -> None:
    """A run id the count did not foresee (here: -1 deleted, -2 kept, so the count says 2 is next) makes the
    multi-row INSERT fail; the batch is rolled back to its savepoint and each run is created by `create_run`, which
    moves past the taken id."""
    with transaction(db) as conn:
        gone = create_run(conn, new(repo_id, "a")).run_id
        kept = create_run(conn, new(repo_id, "a")).run_id
        for t, column in ((EVENTS, EVENTS.c.run_id), (TASK_RUNS, TASK_RUNS.c.run_id), (RUNS, RUNS.c.id)):
            conn.execute(t.delete().where(column == gone))
    assert kept == f"a-{SHA[:7]}-2"
    with transaction(db) as conn:
        bulk = create_runs(conn, [new(repo_id, "a"), new(repo_id, "a"), new(repo_id, "b")])
    assert [c.run_id for c in bulk] == [f"a-{SHA[:7]}-3", f"a-{SHA[:7]}-4", f"b-{SHA[:7]}-1"]
    runs, tasks, events = table(db)
    assert len(runs) == 4 and all(tasks[c.run_id] == 2 and events[c.run_id] == ["run.created"] for c in bulk)


def test_automatic_runs_already_there_are_returned_not_doubled(db: Engine, repo_id: int) -> None:
    with transaction(db) as conn:
        first = create_run(conn, new(repo_id, "a", trigger=Trigger.POLL))
    with transaction(db) as conn:
        again = create_runs(conn, [new(repo_id, "a", trigger=Trigger.WEBHOOK), new(repo_id, "b", trigger=Trigger.POLL)])
    assert again[0].run_id == first.run_id and not again[0].created and again[1].created
    assert len(table(db)[0]) == 2


def test_runs_the_queue_governs_keep_their_policies(db: Engine, repo_id: int) -> None:
    """`concurrency: {limit: 1}` with queue and skip, beside plain runs in the same call."""
    with transaction(db) as conn:
        created = create_runs(conn, [
            new(repo_id, "q", limit=1), new(repo_id, "q", limit=1), new(repo_id, "plain"),
            new(repo_id, "s", limit=1, policy="skip"), new(repo_id, "s", limit=1, policy="skip"), new(repo_id, "plain"),
        ])  # fmt: skip
    runs, _, events = table(db)
    statuses = [runs[c.run_id].status for c in created]
    assert statuses == ["pending", "queued", "pending", "pending", "skipped", "pending"]
    assert events[created[1].run_id] == ["run.created", "run.status"]
    assert events[created[4].run_id] == ["run.created", "run.status"]


def test_with_a_controller_limit_every_run_goes_through_the_queue(db: Engine, repo_id: int) -> None:
    queueing.configure(db, max_active_runs=2)
    with transaction(db) as conn:
        created = create_runs(conn, [new(repo_id, f"p{i}") for i in range(4)])
    runs, _, _ = table(db)
    assert [runs[c.run_id].status for c in created] == ["pending", "pending", "queued", "queued"]


def test_pipelines_whose_run_ids_share_a_prefix_get_distinct_ids(db: Engine, repo_id: int) -> None:
    """`a/x` and `b/x` both name their runs `x-<sha7>-N` (Postgres counts per pipeline: the batch collides with
    b/x's run and falls back; SQLite counts the whole prefix)."""
    with transaction(db) as conn:
        other = create_run(conn, new(repo_id, "b/x")).run_id
    with transaction(db) as conn:
        bulk = create_runs(conn, [new(repo_id, "a/x"), new(repo_id, "a/x")])
    assert other == f"x-{SHA[:7]}-1"
    assert [c.run_id for c in bulk] == [f"x-{SHA[:7]}-2", f"x-{SHA[:7]}-3"]
