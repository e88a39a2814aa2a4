"""Alembic environment: runs against the connection or engine handed over by `odin.controller.store.db.migrate`."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import odin.controller.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)

config = context.config
target_metadata = SQLModel.metadata


def run_migrations() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        engine = config.attributes["engine"]
        with engine.connect() as conn:  # not begin(): each script gets its own transaction (see _run)
            _run(conn)
    else:
        _run(connection)


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only ALTER through table copies
        compare_type=True,
        # Outside a caller's transaction, one transaction per script, so that a script may step out of it for an
        # online index build (store/online_ddl.py); inside one (SQLite's `migrate`), Alembic uses the caller's.
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
