"""The engine through a real database outage: changes are held, nothing starts unrecorded, nothing is lost."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from odin.controller.engine.decide import RetryPolicy
from odin.controller.engine.loop import Engine
from odin.controller.executors.local import LocalExecutor
from odin.controller.store.db import create_db_engine, migrate, transaction
from odin.controller.store.models import EVENTS, TASK_RUNS
from odin.controller.store.runs import NewRun, create_run
from odin.controller.vocabulary import RunStatus, Trigger
from odin.schema.model import PipelineSpec, TaskSpec
from tests.support.postgres import scratch_database
from tests.support.wait import wait_until

pytestmark = pytest.mark.postgres


@pytest.fixture
def outage_db(postgres_admin_url: str) -> Iterator[tuple[str, sa.Engine]]:
    """A private database (so taking it down affects no other test) and an admin engine to take it down."""
    with scratch_database(postgres_admin_url) as url:
        admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
        try:
            yield url, admin
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'ALTER DATABASE "{sa.make_url(url).database}" ALLOW_CONNECTIONS true'))
            admin.dispose()


def set_available(admin: sa.Engine, url: str, available: bool) -> None:
    name = sa.make_url(url).database
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(available).lower()}'))
        if not available:
            conn.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
            )


def test_engine_holds_changes_through_an_outage(outage_db: tuple[str, sa.Engine], tmp_path: Path) -> None:
    url, admin = outage_db
    db = create_db_engine(url)
    migrate(db)
    gate = tmp_path / "gate"
    spec = PipelineSpec(
        name="p",
        tasks=(
            TaskSpec("wait", "x", ("sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done")),
            TaskSpec("after", "x", ("sh", "-c", f"echo ran >> {tmp_path}/after"), depends=("wait",)),
        ),
    )
    with transaction(db) as conn:
        run_id = create_run(conn, NewRun("p", spec, Trigger.MANUAL, {}, work_path=str(tmp_path))).run_id
    executor = LocalExecutor(tmp_path / "data")
    engine = Engine(db, executor, policy=RetryPolicy(base=0.1), rescan_interval=0.5)
    engine.start()
    try:
        engine.submit(run_id)

        def status(task: str) -> str:
            with db.connect() as conn:
                return str(
                    conn.execute(
                        sa.select(TASK_RUNS.c.status).where(TASK_RUNS.c.run_id == run_id, TASK_RUNS.c.name == task)
                    ).scalar_one()
                )

        wait_until(lambda: status("wait") == "running", 20)
        set_available(admin, url, False)
        gate.touch()  # "wait" finishes while the store is down: its success cannot be recorded yet
        assert engine.wait(run_id, 3) is None, "the run cannot finish while its changes are unrecorded"
        assert not (tmp_path / "after").exists(), "nothing starts before it is recorded"
        set_available(admin, url, True)
        assert engine.wait(run_id, 60) == RunStatus.SUCCEEDED
    finally:
        engine.stop()
        executor.shutdown()
    assert (tmp_path / "after").read_text() == "ran\n"
    with db.connect() as conn:
        statuses = conn.execute(
            sa.select(EVENTS.c.task, EVENTS.c.data["status"].as_string())
            .where(EVENTS.c.run_id == run_id, EVENTS.c.kind == "task.status")
            .order_by(EVENTS.c.id)
        ).all()
    assert [(t, s) for t, s in statuses if t == "wait"] == [
        ("wait", "starting"),
        ("wait", "running"),
        ("wait", "succeeded"),
    ]
    db.dispose()
