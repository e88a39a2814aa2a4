"""`migrate` without Alembic: an up-to-date store is told by one query, a brand-new SQLite file is made from the models.

The shortcut is only sound while the models' `create_all` builds exactly what the migration scripts build, so the
schemas are compared here table by table (columns with their types, nullability and defaults, primary keys, indexes,
unique, foreign-key and check constraints), and a migration that writes rows (which `create_all` cannot replay)
fails the test. Whether Alembic is imported at all is checked in a fresh interpreter (this one has imported it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from odin.controller.store.db import alembic_config, create_db_engine, migrate, upgrade_with_alembic
from odin.controller.store.schema_version import VERSION_TABLE, SchemaState, head_revisions, schema_state


def describe(engine: Engine) -> dict[str, Any]:
    """Every table's structure, in an order-free form (a migration adds columns last, `create_all` in model order)."""
    inspector = sa.inspect(engine)
    tables: dict[str, Any] = {}
    for table in inspector.get_table_names():
        tables[table] = {
            "columns": sorted(
                (c["name"], str(c["type"]), c["nullable"], str(c.get("default")), c.get("autoincrement"))
                for c in inspector.get_columns(table)
            ),
            "primary key": sorted(inspector.get_pk_constraint(table)["constrained_columns"]),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table)
            ),
            "unique": sorted((u["name"], tuple(u["column_names"])) for u in inspector.get_unique_constraints(table)),
            "foreign keys": sorted(
                (tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
                for f in inspector.get_foreign_keys(table)
            ),
            "checks": sorted(" ".join(c["sqltext"].split()) for c in inspector.get_check_constraints(table)),
        }
    return tables


def test_the_head_is_read_from_the_scripts_as_alembic_reads_it() -> None:
    scripts = ScriptDirectory.from_config(alembic_config(create_db_engine("sqlite://")))
    assert head_revisions() == frozenset(scripts.get_heads())
    assert len(head_revisions()) == 1, "one head: a merge of two migration branches needs a merge migration"


def test_a_new_sqlite_file_gets_the_schema_the_migrations_build(tmp_path: Path) -> None:
    by_models = create_db_engine(f"sqlite:///{tmp_path / 'models.db'}")
    by_scripts = create_db_engine(f"sqlite:///{tmp_path / 'scripts.db'}")
    with by_models.connect() as conn:
        assert schema_state(conn) is SchemaState.EMPTY
    migrate(by_models)
    with by_scripts.begin() as conn:
        upgrade_with_alembic(by_scripts, conn)
    try:
        assert describe(by_models) == describe(by_scripts)
        for engine in (by_models, by_scripts):
            with engine.connect() as conn:
                assert schema_state(conn) is SchemaState.CURRENT
                assert conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all() == list(
                    head_revisions()
                )
        with by_scripts.connect() as conn:
            for table in sa.inspect(by_scripts).get_table_names():
                if table != VERSION_TABLE:
                    rows = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
                    assert rows == 0, f"a migration writes rows into {table}: create_fresh_schema cannot replay it"
    finally:
        by_models.dispose()
        by_scripts.dispose()


def test_a_migrated_store_is_current_on_both_backends(db: Engine) -> None:
    with db.connect() as conn:
        assert schema_state(conn) is SchemaState.CURRENT


def test_an_older_schema_is_upgraded_by_alembic(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'old.db'}")
    from alembic import command

    command.upgrade(alembic_config(engine), "0009")
    with engine.connect() as conn:
        assert schema_state(conn) is SchemaState.OTHER
    migrate(engine)
    with engine.connect() as conn:
        assert schema_state(conn) is SchemaState.CURRENT
        assert "scheduled_slots" in sa.inspect(conn).get_table_names(), "0010's table was made"
    engine.dispose()


def test_a_half_made_sqlite_file_is_left_to_alembic(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'odd.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE something_else (id INTEGER)"))
        assert schema_state(conn) is SchemaState.OTHER
    engine.dispose()


# Opens the store twice (a new file, then the same file up to date) and says whether Alembic was imported each time.
PROBE = """
import json, sys
from odin.controller.store.db import create_db_engine, migrate
seen = []
for _ in range(2):
    engine = create_db_engine(sys.argv[1])
    migrate(engine)
    engine.dispose()
    seen.append("alembic" in sys.modules)
print(json.dumps(seen))
"""


def test_opening_a_new_or_current_sqlite_store_does_not_import_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'odin.db'}"
    done = subprocess.run([sys.executable, "-c", PROBE, url], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [False, False]
    engine = create_db_engine(url)
    with engine.connect() as conn:
        assert schema_state(conn) is SchemaState.CURRENT, "the store was really made"
    engine.dispose()


def test_opening_a_current_sqlite_store_does_not_wait_for_another_writer(tmp_path: Path) -> None:
    """The usual start is a read: a second process opening the store while the first holds SQLite's write lock (an
    engine mid-transaction) is not held up by it."""
    import sqlite3
    import threading

    path = tmp_path / "odin.db"
    engine = create_db_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # the write lock, held until the end of the test
    opened = threading.Event()

    def open_store() -> None:
        second = create_db_engine(f"sqlite:///{path}")
        migrate(second)
        second.dispose()
        opened.set()

    opener = threading.Thread(target=open_store, daemon=True)
    opener.start()
    try:
        assert opened.wait(10), "migrate waited for the write lock to check a current store"
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        opener.join(40)
