"""Schema changes that stay online on a table of millions of rows: what migration scripts use for indexes.

A plain `CREATE INDEX` holds a SHARE lock on its table until it is built: on 10 million task runs that is minutes in
which the engine cannot record a transition. On Postgres these helpers build and drop indexes `CONCURRENTLY`, which
takes only a SHARE UPDATE EXCLUSIVE lock (reads and writes go on) and must run outside a transaction, so they run in
Alembic's autocommit block (`db.migrate` hands Alembic a connection in no transaction, one transaction per script).
A concurrent build that failed half-way leaves an INVALID index behind; a second attempt drops it first instead of
skipping it (`IF NOT EXISTS` alone would keep the broken one). SQLite has no concurrent builds and no other writer
to wait for (a migration holds its single write lock anyway), so there it is the plain statement.

`tests/store/test_online_migrations.py` holds every migration script to these helpers for tables that grow with use.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

LOCK_TIMEOUT = "1s"
"""How long an ALTER TABLE waits for its lock before it gives up and tries again. ALTER TABLE needs the table to
itself (ACCESS EXCLUSIVE) for an instant, but while it *waits* for that lock every later reader and writer queues
behind it: one long transaction in the way would stall the engine for as long as it lasts."""
LOCK_ATTEMPTS = 30

GROWING_TABLES = frozenset({"runs", "task_runs", "events", "commits", "webhook_deliveries", "scheduled_slots"})
"""Tables that grow with every push and every run: a year of use puts millions of rows in them."""


def _postgres() -> bool:
    return bool(op.get_bind().dialect.name == "postgresql")


def create_index(name: str, table: str, columns: Sequence[str], *, where: str | None = None) -> None:
    """CREATE INDEX `name` ON `table` (`columns`) [WHERE `where`], concurrently on Postgres."""
    if not _postgres():
        op.create_index(name, table, list(columns), sqlite_where=sa.text(where) if where else None)
        return
    with op.get_context().autocommit_block():
        _drop_if_invalid(name)
        cols = ", ".join(f'"{c}"' for c in columns)
        clause = f" WHERE {where}" if where else ""
        op.execute(f'CREATE INDEX CONCURRENTLY IF NOT EXISTS "{name}" ON "{table}" ({cols}){clause}')


def drop_index(name: str, table: str) -> None:
    """DROP INDEX `name` (of `table`), concurrently on Postgres: no lock that stops readers or writers."""
    if not _postgres():
        op.drop_index(name, table_name=table)
        return
    with op.get_context().autocommit_block():
        op.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')


def add_columns(table: str, columns: Sequence[sa.Column[Any]]) -> None:
    """ALTER TABLE `table` ADD COLUMN for each of `columns`, each nullable or with a constant server default (Postgres
    11+ then changes only its catalogue: no rewrite, no scan; a volatile default such as `now()` would rewrite, so
    only literal defaults are accepted). On Postgres the lock is waited for `LOCK_TIMEOUT` at most, in a savepoint
    retried with a growing pause, so the statement never holds a queue of writers behind it for long."""
    for column in columns:
        default = column.server_default
        literal = default is None or isinstance(
            getattr(default, "arg", None), str | sa.sql.elements.False_ | sa.sql.elements.True_
        )
        if (not column.nullable and default is None) or not literal:
            raise ValueError(
                f"{table}.{column.name}: only nullable columns, or columns with a constant default, are added online"
            )
    if not _postgres():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.add_column(column)
        return
    bind = op.get_bind()
    for attempt in range(LOCK_ATTEMPTS):
        try:
            with bind.begin_nested():
                bind.execute(sa.text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                for column in columns:
                    op.add_column(table, column)
            return
        except sa.exc.OperationalError as e:
            if getattr(e.orig, "pgcode", None) != "55P03" or attempt == LOCK_ATTEMPTS - 1:  # lock_not_available
                raise
            time.sleep(min(5.0, 0.1 * 2**attempt))


def _drop_if_invalid(name: str) -> None:
    """A concurrent build interrupted earlier (a crash, a cancelled migration) left `name` INVALID: unused by the
    planner but maintained on every write. Drop it so the build starts over."""
    invalid = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = :name AND NOT i.indisvalid"
            ),
            {"name": name},
        )
        .first()
    )
    if invalid is not None:
        op.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
