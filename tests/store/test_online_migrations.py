"""Migrations stay online on Postgres: the engine keeps writing while they run, and no script takes a lock on a
growing table that would queue the engine behind it (issue 15 item 5).

The dangerous moment of a migration is not its own work but its wait: a plain `CREATE INDEX` (or an ALTER TABLE
without a lock timeout) waiting behind one transaction in flight makes every later writer wait behind *it*. So the
first test holds an engine transaction open on the tables the index migration touches, starts the migration, and has
another connection keep recording runs and transitions with a short `lock_timeout` until the migration is through: a
write that waited longer fails the test. The control test shows that the same writer does fail behind a plain
`CREATE INDEX`. The last test reads what every migration script sends to Postgres and holds it to the online rules.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from odin.controller.store.db import alembic_config, create_db_engine, migrate
from odin.controller.store.models import COMMITS, TASK_RUNS
from odin.controller.store.online_ddl import GROWING_TABLES
from odin.controller.store.runs import NewRun, WriteBatch, create_run, write_batch
from odin.controller.store.schema_version import SchemaState, head_revisions, schema_state
from odin.controller.vocabulary import Trigger
from odin.schema.model import PipelineSpec, TaskSpec
from tests.support.postgres import scratch_database
from tests.support.wait import wait_until

pytestmark = pytest.mark.postgres

BEFORE = "0022"  # the revision before the index migration
SPEC = PipelineSpec(name="p", tasks=(TaskSpec("a", "x", ("true",)), TaskSpec("b", "x", ("true",), depends=("a",))))
WRITER_LOCK_TIMEOUT = "500ms"


@pytest.fixture
def url(postgres_admin_url: str) -> Iterator[str]:
    with scratch_database(postgres_admin_url) as found:
        yield found


def at_revision(url: str, revision: str) -> Engine:
    engine = create_db_engine(url)
    command.upgrade(alembic_config(engine), revision)
    with engine.begin() as conn:
        repo = conn.execute(
            sa.text("INSERT INTO repositories (name, url, branch, poll_interval, run_policy, conditions, created_at) "
                    "VALUES ('r', 'file:///r', 'main', 30, 'latest', '[]', now()) RETURNING id")
        ).scalar_one()  # fmt: skip
        conn.execute(
            sa.text(
                "INSERT INTO commits (repo_id, sha, parents, author_name, author_email, message, seen_at, validation,"
                " problems, pipelines_changed) SELECT :repo, md5(g::text) || 'abcdefgh', '[]', '', '', '', now(),"
                " 'valid', '[]', '[]' FROM generate_series(1, 2000) g"
            ),
            {"repo": repo},
        )
    return engine


class Writer:
    """Records commits, runs and their transitions as sync and the engine do, with a short lock_timeout, until
    stopped; every error is kept."""

    def __init__(self, url: str) -> None:
        self.engine = create_db_engine(url, pool_size=2)
        sa.event.listen(self.engine, "connect", self._lock_timeout)
        self.errors: list[BaseException] = []
        self.done = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)

    @staticmethod
    def _lock_timeout(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET lock_timeout = '{WRITER_LOCK_TIMEOUT}'")
        cursor.close()

    def start(self) -> Writer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.engine.dispose()

    def _main(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            sha = f"{n:040x}"
            try:
                with self.engine.begin() as conn:
                    conn.execute(COMMITS.insert().values(repo_id=1, sha=sha, message="sync"))
                    run_id = create_run(
                        conn, NewRun(pipeline="p", spec=SPEC, trigger=Trigger.POLL, params={}, commit_sha=sha)
                    ).run_id
                for status in ("starting", "running", "succeeded"):
                    batch = WriteBatch()
                    for task in ("a", "b"):
                        batch.task(run_id, task, status=status)
                        batch.event("task.status", run_id=run_id, task=task, status=status)
                    write_batch(self.engine, batch)
                with self.engine.connect() as conn:
                    conn.execute(sa.select(TASK_RUNS.c.name).where(TASK_RUNS.c.run_id == run_id)).all()
            except BaseException as e:
                self.errors.append(e)
                return
            self.done += 1


def waiting_ddl(engine: Engine, pattern: str) -> bool:
    """Whether a statement matching `pattern` is waiting for a lock (the migration is held up by the open
    transaction, which is the moment a blocking statement would hold the writers up too)."""
    with engine.connect() as conn:
        return bool(
            conn.execute(
                sa.text(
                    "SELECT 1 FROM pg_stat_activity WHERE query ILIKE :p AND wait_event_type = 'Lock' "
                    "AND pid <> pg_backend_pid()"
                ),
                {"p": pattern},
            ).first()
        )


def hold_engine_transaction(engine: Engine) -> sa.Connection:
    """An engine transaction in flight: rows of task_runs and commits written, not yet committed."""
    conn = engine.connect()
    conn.begin()
    with engine.begin() as setup:
        run_id = create_run(
            setup, NewRun(pipeline="p", spec=SPEC, trigger=Trigger.MANUAL, params={}, commit_sha="f" * 40)
        ).run_id
    conn.execute(TASK_RUNS.update().where(TASK_RUNS.c.run_id == run_id).values(message="in flight"))
    conn.execute(COMMITS.insert().values(repo_id=1, sha="e" * 40, message="in flight"))
    return conn


def test_the_index_migration_never_holds_the_engine_up(url: str) -> None:
    engine = at_revision(url, BEFORE)
    blocker = hold_engine_transaction(engine)
    failure: list[BaseException] = []

    def run_migration() -> None:
        try:
            migrate(create_db_engine(url))
        except BaseException as e:
            failure.append(e)

    migration = threading.Thread(target=run_migration, daemon=True)
    migration.start()
    writer: Writer | None = None
    try:
        wait_until(lambda: waiting_ddl(engine, "CREATE INDEX CONCURRENTLY%"), timeout=30)
        writer = Writer(url).start()
        wait_until(lambda: writer.done >= 5 or writer.errors, timeout=60)
        assert writer.errors == [], f"a write waited more than {WRITER_LOCK_TIMEOUT} behind the migration"
        assert migration.is_alive(), "the migration waits for the open transaction (and lets writers pass)"
        blocker.commit()
        migration.join(120)
        assert not migration.is_alive() and failure == []
        assert writer.errors == []
    finally:
        if writer is not None:
            writer.stop()
        blocker.close()
    with engine.connect() as conn:
        assert schema_state(conn) is SchemaState.CURRENT
        invalid = conn.execute(sa.text("SELECT count(*) FROM pg_index WHERE NOT indisvalid")).scalar_one()
        assert invalid == 0
        names = set(conn.execute(sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'task_runs'")).scalars())
    assert "ix_task_runs_run_id_id" in names and "ix_task_runs_run_id" not in names
    engine.dispose()


def test_a_plain_create_index_would_have_held_the_engine_up(url: str) -> None:
    """The control: the same writer, behind a plain CREATE INDEX waiting on the same transaction, fails."""
    engine = at_revision(url, BEFORE)
    blocker = hold_engine_transaction(engine)
    ddl = engine.connect()

    def plain_index() -> None:
        try:
            with ddl.begin():
                ddl.execute(sa.text("CREATE INDEX ix_plain ON task_runs (run_id, id)"))
        except sa.exc.SQLAlchemyError:
            pass  # cancelled by the test's end

    builder = threading.Thread(target=plain_index, daemon=True)
    builder.start()
    writer: Writer | None = None
    try:
        wait_until(lambda: waiting_ddl(engine, "CREATE INDEX ix_plain%"), timeout=30)
        writer = Writer(url).start()
        wait_until(lambda: writer.errors, timeout=60)
        assert "lock timeout" in str(writer.errors[0]).lower()
    finally:
        if writer is not None:
            writer.stop()
        blocker.rollback()
        blocker.close()
        builder.join(30)
        ddl.close()
        engine.dispose()


# -- the rules, checked on what every script sends --------------------------------------------------------------

GRANDFATHERED = frozenset({f"{n:04d}" for n in range(1, 16)})
"""Scripts that predate the rule (issue 15): they ran on stores long ago and are not rewritten. Every later script,
whichever branch it comes from, is held to it."""

RULES: list[tuple[str, re.Pattern[str]]] = [
    ("a plain CREATE INDEX locks writers out while it builds", re.compile(r"^CREATE (UNIQUE )?INDEX (?!CONCURRENTLY)")),
    ("a plain DROP INDEX waits for the table to itself", re.compile(r"^DROP INDEX (?!CONCURRENTLY)")),
    ("a column type change rewrites the table", re.compile(r"^ALTER TABLE \S+ ALTER COLUMN \S+ (SET DATA )?TYPE ")),
    ("SET NOT NULL scans the whole table under an exclusive lock", re.compile(r"ALTER COLUMN \S+ SET NOT NULL")),
    ("a NOT NULL column without a default fails or rewrites", re.compile(r"ADD COLUMN (?!.*DEFAULT).* NOT NULL")),
    ("a constraint is checked over every row under a lock (NOT VALID)", re.compile(r"ADD CONSTRAINT (?!.*NOT VALID)")),
]  # fmt: skip
TABLE = re.compile(r"^(?:CREATE (?:UNIQUE )?INDEX (?:CONCURRENTLY )?(?:IF NOT EXISTS )?\S+ ON|ALTER TABLE) \"?(\w+)")
DROPPED = re.compile(r'^DROP INDEX (?:CONCURRENTLY )?(?:IF EXISTS )?"?(\w+)')
VERSION = re.compile(r"(?:INSERT INTO alembic_version .*VALUES \('|UPDATE alembic_version SET version_num=')(\w+)'")


def statements_by_revision(url: str) -> dict[str, list[str]]:
    """What each script sends to Postgres, from an empty database to the head, one normalised statement each."""
    engine = create_db_engine(url)
    sent: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, _p: Any, _ctx: Any, _many: bool) -> None:
        sent.append(" ".join(statement.split()))

    sa.event.listen(engine, "before_cursor_execute", record)
    migrate(engine)
    engine.dispose()
    by_revision: dict[str, list[str]] = {}
    pending: list[str] = []
    for statement in sent:
        version = VERSION.search(statement)
        if version is not None:
            by_revision[version.group(1)] = pending
            pending = []
        else:
            pending.append(statement)
    return by_revision


def test_every_migration_is_online_on_the_growing_tables(url: str) -> None:
    by_revision = statements_by_revision(url)
    assert set(by_revision) >= set(head_revisions()), "every script up to the head was recorded"
    problems = []
    for revision, statements in by_revision.items():
        if revision in GRANDFATHERED:
            continue
        created = {m.group(1) for s in statements if (m := re.match(r'^CREATE TABLE "?(\w+)', s))}
        timeout_set = False
        for statement in statements:
            upper = statement.upper()
            if "LOCK_TIMEOUT" in upper:
                timeout_set = True
            found = TABLE.match(statement) or DROPPED.match(statement)
            table = found.group(1) if found else None
            if table in created:
                continue  # a table made by this very script is empty
            growing = table in GROWING_TABLES or (upper.startswith("DROP INDEX") and _on_growing(statement))
            if not growing:
                continue
            problems += [f"{revision}: {why}: {statement[:120]}" for why, rule in RULES if rule.search(upper)]
            if upper.startswith("ALTER TABLE") and not timeout_set:
                problems.append(f"{revision}: ALTER TABLE without a lock_timeout queues writers: {statement[:120]}")
    assert problems == []


def _on_growing(statement: str) -> bool:
    """A DROP INDEX names no table: the index names of Odin's growing tables start with their table's name."""
    name = statement.rsplit(maxsplit=1)[-1].strip('"')
    return any(f"_{table}_" in f"{name}_" for table in GROWING_TABLES)


def test_the_rules_catch_what_they_name() -> None:
    """The rules above, on statements that break them and on their online forms."""
    offline = [
        "CREATE INDEX ix_x ON task_runs (run_id)",
        "DROP INDEX ix_task_runs_run_id",
        "ALTER TABLE runs ALTER COLUMN status TYPE VARCHAR(32)",
        "ALTER TABLE runs ALTER COLUMN reason SET NOT NULL",
        "ALTER TABLE runs ADD COLUMN x INTEGER NOT NULL",
        "ALTER TABLE runs ADD CONSTRAINT fk FOREIGN KEY (repo_id) REFERENCES repositories (id)",
    ]
    online = [
        'CREATE INDEX CONCURRENTLY IF NOT EXISTS "ix_x" ON "task_runs" ("run_id")',
        'DROP INDEX CONCURRENTLY IF EXISTS "ix_task_runs_run_id"',
        "ALTER TABLE runs ADD COLUMN x INTEGER DEFAULT 0 NOT NULL",
        "ALTER TABLE runs ADD COLUMN x TIMESTAMP WITH TIME ZONE",
        "ALTER TABLE runs ADD CONSTRAINT fk FOREIGN KEY (repo_id) REFERENCES repositories (id) NOT VALID",
    ]
    assert all(any(rule.search(s.upper()) for _, rule in RULES) for s in offline)
    assert not any(rule.search(s.upper()) for s in online for _, rule in RULES)
