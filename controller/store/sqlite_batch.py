"""The engine's batch on SQLite, written through the driver's cursor (issue 15 item 1: the engine's per-task cost).

The engine commits once per turn, and on a trivial task a turn is a few statements: the ended task's row, the next
one's, one or two events. Through SQLAlchemy Core each statement costs about 0.2 ms of Python (cache key, compiled
lookup, parameter construction, the execution context) against 0.05 ms in SQLite itself: a 1,000-task fan-out paid
about 0.8 ms a commit for SQLAlchemy's bookkeeping, the largest part of the engine thread's work.

Here each statement shape (a table and the set of columns it sets) is prepared once: its SQL text and, per
parameter, the bind processor of its column's type, taken from SQLAlchemy itself (`UTCDateTime`'s conversion, the
JSON serialiser, with their handling of None), so a row written here is byte for byte the row the Core path writes
(`tests/store/test_store.py` compares them). It runs in the caller's transaction on the same connection, so the
transaction, its lock (`BEGIN IMMEDIATE`), the fence and the commit are exactly as before; only the per-statement
bookkeeping is gone. Text with a NUL is refused as everywhere (`InvalidText`), and SQLite's own "cannot write now"
errors become `StoreUnavailable`, as SQLAlchemy's are. Postgres keeps the Core path: there a statement's cost is
its round trip, not Python.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from odin.controller.store.db import StoreUnavailable, first_line, refuse_nul

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Prepared:
    """One statement shape: its SQL, and the parameter names in order with their columns' bind processors."""

    sql: str
    names: tuple[str, ...]
    processors: tuple[Processor, ...]

    def row(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        row = tuple(
            values[name] if proc is None else proc(values[name])
            for name, proc in zip(self.names, self.processors, strict=True)
        )
        refuse_nul(row)
        return row


_PREPARED: dict[tuple[str, frozenset[str], tuple[str, ...]], _Prepared] = {}


def _processor(table: sa.Table, column: str, dialect: Dialect) -> Processor:
    if column not in table.c:  # what Core says of the same mistake
        raise sa.exc.CompileError(f"Unconsumed column names: {column} (table {table.name})")
    return table.c[column].type.dialect_impl(dialect).bind_processor(dialect)


def update(table: sa.Table, columns: frozenset[str], keys: tuple[str, ...], dialect: Dialect) -> _Prepared:
    """`UPDATE table SET <columns> WHERE <keys>`: parameters are the columns (sorted), then the keys."""
    cache_key = (table.name, columns, keys)
    prepared = _PREPARED.get(cache_key)
    if prepared is None:
        quote = dialect.identifier_preparer.quote
        sets = ", ".join(f"{quote(c)} = ?" for c in sorted(columns))
        where = " AND ".join(f"{quote(k)} = ?" for k in keys)
        names = (*sorted(columns), *keys)
        prepared = _Prepared(
            f"UPDATE {quote(table.name)} SET {sets} WHERE {where}",  # noqa: S608  (names from the table, not input)
            names,
            tuple(_processor(table, n, dialect) for n in names),
        )
        _PREPARED[cache_key] = prepared
    return prepared


def insert(table: sa.Table, columns: Sequence[str], dialect: Dialect) -> _Prepared:
    """`INSERT INTO table (<columns>) VALUES (...)`, one row."""
    cache_key = (table.name, frozenset(columns), ("INSERT", *columns))
    prepared = _PREPARED.get(cache_key)
    if prepared is None:
        quote = dialect.identifier_preparer.quote
        names = tuple(columns)
        marks = ", ".join("?" for _ in names)
        prepared = _Prepared(
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) VALUES ({marks})",  # noqa: S608
            names,
            tuple(_processor(table, n, dialect) for n in names),
        )
        _PREPARED[cache_key] = prepared
    return prepared


def execute(
    conn: Connection,
    updates: Sequence[tuple[_Prepared, Sequence[Mapping[str, Any]]]],
    events: tuple[sa.Table, Sequence[Mapping[str, Any]]],
    now: datetime,
) -> list[int]:
    """Run the updates, then insert the events (each with `time` = now); returns the events' ids, in order."""
    table, rows = events
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        for prepared, values in updates:
            cursor.executemany(prepared.sql, [prepared.row(v) for v in values])
        ids: list[int] = []
        for event in rows:
            prepared = insert(table, ("time", *event), conn.dialect)
            cursor.execute(prepared.sql, prepared.row({"time": now, **event}))
            ids.append(int(cursor.lastrowid))
        return ids
    except sqlite3.OperationalError as e:
        raise StoreUnavailable(f"cannot record engine changes: {first_line(e)}") from e
    finally:
        cursor.close()
