"""INSERT ... ON CONFLICT for both backends, written once.

SQLite and Postgres spell the statement the same way but through different dialect constructs
(`sqlalchemy.dialects.sqlite.insert` and `...postgresql.insert`); every "record once, whoever wins the race" write in
Odin (commits seen by sync, webhook deliveries) goes through here instead of choosing the dialect itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql.dml import Insert as PgInsert
    from sqlalchemy.dialects.sqlite.dml import Insert as SqliteInsert


def insert_on_conflict(
    table: sa.Table,
    dialect: str,
    *,
    conflict: Sequence[str],
    values: Mapping[str, Any] | Sequence[Mapping[str, Any]],
    update: Sequence[str] = (),
) -> sa.Insert:
    """`INSERT INTO table (values) ON CONFLICT (conflict) DO UPDATE SET <update>` — or `DO NOTHING` when `update` is
    empty. `dialect` is the connection's `dialect.name` ("postgresql" or "sqlite"); `values` may hold bind parameters
    so the statement can be built once and executed many times, or be a list of rows (one multi-row INSERT)."""
    insert: PgInsert | SqliteInsert
    if dialect == "postgresql":  # imported here: a process that only uses SQLite never loads the Postgres dialect
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        insert = pg_insert(table)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        insert = sqlite_insert(table)
    stmt = insert.values(dict(values) if isinstance(values, Mapping) else [dict(row) for row in values])
    if not update:
        return stmt.on_conflict_do_nothing(index_elements=list(conflict))
    return stmt.on_conflict_do_update(
        index_elements=list(conflict), set_={name: stmt.excluded[name] for name in update}
    )
