"""The store on SQLite and on real Postgres: migrations, run creation, idempotency, batches, failures."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel

from odin.controller.store.db import StoreUnavailable, create_db_engine, migrate, transaction, upgrade_with_alembic
from odin.controller.store.models import Repository, TaskRun
from odin.controller.store.runs import (
    EVENTS,
    RUNS,
    TASKS,
    NewRun,
    WriteBatch,
    active_runs,
    cancel_requests,
    create_run,
    load_runs,
    request_cancel,
    run_id_prefix,
    write_batch,
)
from odin.controller.vocabulary import REPLACED, RunStatus, Trigger
from odin.schema.model import PipelineSpec, TaskSpec

SHA = "3f2a9c1" + "0" * 33
SPEC = PipelineSpec(
    name="train",
    tasks=(
        TaskSpec(name="prep", image="python:3.12", command=("true",)),
        TaskSpec("fit", "x", ("true",), depends=("prep",)),
    ),
)


def make_repo(db: Engine) -> int:
    with Session(db, expire_on_commit=False) as s:
        repo = Repository(name="r", url="file:///tmp/r", branch="main")
        s.add(repo)
        s.commit()
        assert repo.id is not None
        return repo.id


def new_run(repo_id: int | None, trigger: Trigger = Trigger.POLL, sha: str = SHA) -> NewRun:
    return NewRun(pipeline="train", spec=SPEC, trigger=trigger, params={"lr": "0.1"}, commit_sha=sha, repo_id=repo_id)


def test_migrations_match_the_models(db: Engine, tmp_path: Path) -> None:
    """Against a schema the migration scripts built: on SQLite `migrate` makes a new file from the models (see
    test_schema_version.py), so this test replays the scripts into a file of its own."""
    built = db
    if db.dialect.name == "sqlite":
        built = create_db_engine(f"sqlite:///{tmp_path / 'by-alembic.db'}")
        with built.begin() as conn:
            upgrade_with_alembic(built, conn)
    with built.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    if built is not db:
        built.dispose()
    assert diff == []


def test_migrate_twice_is_a_no_op(db: Engine) -> None:
    migrate(db)
    with db.connect() as conn:
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    assert version is not None


def test_run_ids_are_readable_and_sequential_per_commit(db: Engine) -> None:
    repo = make_repo(db)
    with db.begin() as conn:
        first = create_run(conn, new_run(repo, Trigger.MANUAL))
        second = create_run(conn, new_run(repo, Trigger.MANUAL))
    assert (first.run_id, second.run_id) == ("train-3f2a9c1-1", "train-3f2a9c1-2")
    assert run_id_prefix("vision/Big_Model.v2", None) == "big-model-v2-local"


def test_active_runs_are_the_pending_and_running_runs_only_with_their_cancel_requests(db: Engine) -> None:
    """What the engine's rescan reads every few seconds instead of every active run's spec and tasks."""
    repo = make_repo(db)
    with db.begin() as conn:
        ids = [create_run(conn, new_run(repo, Trigger.MANUAL)).run_id for _ in range(5)]
        conn.execute(sa.update(RUNS).where(RUNS.c.id == ids[1]).values(status=RunStatus.RUNNING.value))
        conn.execute(sa.update(RUNS).where(RUNS.c.id == ids[2]).values(status=RunStatus.SUCCEEDED.value))
        conn.execute(sa.update(RUNS).where(RUNS.c.id == ids[4]).values(reason=REPLACED, message="replaced by x"))
    assert request_cancel(db, ids[3], by="alice") and request_cancel(db, ids[4])
    assert not request_cancel(db, ids[2])  # ended: nothing to flag
    active = active_runs(db)
    assert active.ids == {ids[0], ids[1], ids[3], ids[4]}
    assert {r.run["id"] for r in load_runs(db)} == active.ids
    assert dict(active.cancels) == {ids[3]: None, ids[4]: "replaced by x"}
    assert dict(active.cancels) == cancel_requests(db, ids)


def test_run_and_tasks_are_created_together(db: Engine) -> None:
    repo = make_repo(db)
    with db.begin() as conn:
        run_id = create_run(conn, new_run(repo)).run_id
    [loaded] = load_runs(db)
    assert loaded.run["id"] == run_id
    assert loaded.run["spec"] == SPEC.to_dict()
    assert PipelineSpec.from_dict(loaded.run["spec"]) == SPEC
    assert [t["name"] for t in loaded.tasks] == ["prep", "fit"]
    assert {t["status"] for t in loaded.tasks} == {"pending"}
    with db.connect() as conn:
        kinds = conn.execute(sa.select(EVENTS.c.kind).where(EVENTS.c.run_id == run_id)).scalars().all()
    assert kinds == ["run.created"]


def test_automatic_runs_are_unique_per_commit_and_pipeline(db: Engine) -> None:
    repo = make_repo(db)
    with db.begin() as conn:
        a = create_run(conn, new_run(repo, Trigger.POLL))
    with db.begin() as conn:
        b = create_run(conn, new_run(repo, Trigger.WEBHOOK))
    assert a.created and not b.created
    assert a.run_id == b.run_id
    with db.begin() as conn:
        manual = create_run(conn, new_run(repo, Trigger.MANUAL))
    assert manual.created and manual.run_id != a.run_id


def test_concurrent_automatic_creation_yields_one_run(db: Engine) -> None:
    """A poll and webhooks racing on the same commit: the unique constraint, not a check, decides."""
    repo = make_repo(db)
    barrier = threading.Barrier(8)
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait(5)
            with transaction(db) as conn:
                res = create_run(conn, new_run(repo, Trigger.WEBHOOK if i % 2 else Trigger.POLL))
            results.append((res.run_id, res.created))
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    if errors and db.dialect.name == "sqlite":
        # SQLite serialises writers; a writer may time out only if the lock is held > 30 s, which must not happen.
        raise errors[0]
    assert not errors, errors
    assert len({r for r, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(RUNS)).scalar() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(TASKS)).scalar() == 2


def test_write_batch_commits_tasks_runs_and_events_atomically(db: Engine) -> None:
    repo = make_repo(db)
    with db.begin() as conn:
        run_id = create_run(conn, new_run(repo)).run_id
    started = datetime.now(UTC) - timedelta(seconds=5)
    batch = WriteBatch()
    batch.task(run_id, "prep", status="running", attempt=1, started_at=started, pid=123)
    batch.run(run_id, status="running", started_at=started)
    batch.event("task.status", run_id=run_id, task="prep", status="running")
    stored = write_batch(db, batch)
    assert [e["kind"] for e in stored] == ["task.status"]
    assert stored[0]["id"] > 0
    [loaded] = load_runs(db, [run_id])
    prep = next(t for t in loaded.tasks if t["name"] == "prep")
    assert prep["status"] == "running" and prep["pid"] == 123
    assert prep["started_at"] == started, "datetimes come back aware and equal on every backend"
    assert loaded.run["started_at"].tzinfo is not None


def test_write_batch_is_all_or_nothing(db: Engine) -> None:
    repo = make_repo(db)
    with db.begin() as conn:
        run_id = create_run(conn, new_run(repo)).run_id
    batch = WriteBatch()
    batch.task(run_id, "prep", status="running")
    batch.run(run_id, no_such_column=1)
    with pytest.raises(sa.exc.CompileError):
        write_batch(db, batch)
    [loaded] = load_runs(db, [run_id])
    assert {t["status"] for t in loaded.tasks} == {"pending"}


def _fast_path_batch(run_id: str, now: datetime) -> WriteBatch:
    """What the engine's turns write, with the values whose conversion could differ between the two paths: naive
    and whole-second datetimes, JSON None (stored as JSON `null`, not SQL NULL), nested JSON, non-ASCII text, a
    quoted column name (`trigger`) never set by the engine but present in the table."""
    whole = now.replace(microsecond=0)
    batch = WriteBatch()
    batch.task(run_id, "prep", status="succeeded", attempt=1, reason="Completed", message="fertig ✓", exit_code=0,
               started_at=whole, finished_at=now, pid=42, node="h", results={"acc": 0.9, "n": [1, None]},
               artifacts={"model": {"path": "m.pt", "size": 3}})  # fmt: skip
    batch.task(run_id, "fit", status="starting", attempt=2, exit_code=None, finished_at=None, pid=None, results=None,
               artifacts=None, cache_key=None, not_before=None)  # fmt: skip
    batch.run(run_id, status="running", started_at=whole, message=None)
    batch.event("task.status", run_id=run_id, task="prep", commit_sha=SHA, status="succeeded", exit_code=0)
    batch.event("run.status", run_id=run_id, commit_sha=SHA, status="running", message="é")
    return batch


def test_the_sqlite_fast_path_writes_exactly_what_core_writes(tmp_path: Path) -> None:
    """On SQLite the engine's batch goes through the driver's cursor (`store.sqlite_batch`); every byte it stores,
    read back raw, is what the SQLAlchemy Core path (Postgres's) stores for the same batch."""
    from odin.controller.store import runs

    now = datetime(2026, 12, 7, 12, 0, 0, 123456, tzinfo=UTC)
    stored: dict[str, tuple[list[dict[str, object]], dict[str, list[tuple[object, ...]]]]] = {}
    for path, write in (("core", runs._write_core), ("fast", runs._write_sqlite)):
        db = create_db_engine(f"sqlite:///{tmp_path / path}.db")
        migrate(db)
        with transaction(db) as conn:
            run_id = create_run(conn, new_run(None, Trigger.MANUAL)).run_id
        with transaction(db) as conn:
            events = write(conn, _fast_path_batch(run_id, now), now)
        with db.connect() as conn:  # the batch's rows (not the run's creation, stamped with the clock)
            raw = {
                table: [tuple(r) for r in conn.exec_driver_sql(f"SELECT {cols} FROM {table} {where} ORDER BY id")]
                for table, cols, where in (
                    ("task_runs", "*", ""),
                    ("events", "*", "WHERE kind != 'run.created'"),
                    ("runs", "id, status, started_at, message", ""),
                )
            }
        db.dispose()
        stored[path] = (events, raw)
    assert stored["fast"] == stored["core"]
    events, raw = stored["fast"]
    assert [e["kind"] for e in events] == ["task.status", "run.status"] and events[0]["id"] < events[1]["id"]
    assert len(raw["events"]) >= 2 and any("fertig ✓" in map(str, row) for row in raw["task_runs"])


def test_the_engine_batch_refuses_nul_and_writes_nothing(db: Engine) -> None:
    """The SQLite fast path refuses NUL as every other write does (`InvalidText`), and the batch is all or nothing."""
    from odin.controller.store.db import InvalidText

    with db.begin() as conn:
        run_id = create_run(conn, new_run(None, Trigger.MANUAL)).run_id
    batch = WriteBatch()
    batch.task(run_id, "prep", status="running", attempt=1)
    batch.task(run_id, "fit", status="failed", message="bad\0byte")
    with pytest.raises(InvalidText, match="NUL"):
        write_batch(db, batch)
    [loaded] = load_runs(db, [run_id])
    assert {t["status"] for t in loaded.tasks} == {"pending"}


def test_cancel_request_only_applies_to_active_runs(db: Engine) -> None:
    repo = make_repo(db)
    with db.begin() as conn:
        run_id = create_run(conn, new_run(repo)).run_id
    assert request_cancel(db, run_id, by="alice")
    with db.begin() as conn:
        conn.execute(RUNS.update().where(RUNS.c.id == run_id).values(status=RunStatus.SUCCEEDED.value))
    assert not request_cancel(db, run_id)
    assert not request_cancel(db, "no-such-run")


def test_naive_datetimes_are_refused(db: Engine) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"), Session(db) as s:
        s.add(Repository(name="x", url="u", branch="b", created_at=datetime(2024, 1, 1)))
        s.commit()


def test_unreachable_database_is_a_clear_store_error(tmp_path: object) -> None:
    engine = create_db_engine("postgresql+psycopg2://postgres@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StoreUnavailable, match="cannot migrate"):
        migrate(engine)
    with pytest.raises(StoreUnavailable, match="database unavailable"), transaction(engine) as conn:
        conn.execute(sa.select(RUNS))
    engine.dispose()


def test_models_have_the_documented_tables() -> None:
    assert {t.name for t in SQLModel.metadata.sorted_tables} >= {
        "repositories", "commits", "runs", "task_runs", "events", "users",
    }  # fmt: skip
    assert TaskRun.__tablename__ == "task_runs"


def test_text_with_nul_is_refused_the_same_way_on_both_backends(db: Engine) -> None:
    """Postgres cannot store NUL and SQLite silently would: both refuse it with `InvalidText`, nothing written."""
    from odin.controller.store.db import InvalidText
    from odin.controller.store.models import EVENTS, REPOSITORIES

    now = datetime.now(UTC)
    with pytest.raises(InvalidText, match="NUL"), transaction(db) as conn:
        conn.execute(REPOSITORIES.insert().values(name="a\0b", url="file:///x", branch="main", created_at=now))
    with pytest.raises(InvalidText, match="NUL"), db.connect() as conn:
        conn.execute(sa.select(REPOSITORIES.c.id).where(REPOSITORIES.c.name == "\0"))
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(REPOSITORIES)).scalar() == 0
    if db.dialect.name == "postgresql":  # JSONB refuses the escaped form too; it is translated the same way
        with pytest.raises(InvalidText), transaction(db) as conn:
            conn.execute(EVENTS.insert().values(kind="x", time=now, data={"a": "\0"}))
