"""`tables.py` (the Core tables the store queries) is what `tablegen` writes from the SQLModel models, and the same
schema: a model changed without regenerating the file, or a part of a model the generator does not carry over,
fails here. (That both agree with the migration scripts is `test_schema_version.py`'s and the models' own tests.)"""

from __future__ import annotations

import enum
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlmodel import SQLModel

from odin.controller.store import models, tablegen, tables

DIALECTS: list[Dialect] = [sqlite.dialect(), postgresql.dialect()]


def test_tables_py_is_what_the_generator_writes_from_the_models() -> None:
    written = Path(tables.__file__).read_text()
    assert written == tablegen.render(SQLModel.metadata), (
        "controller/store/tables.py is out of date with models.py: "
        "python -m odin.controller.store.tablegen > controller/store/tables.py"
    )


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_the_generated_tables_make_the_models_ddl(dialect: Dialect) -> None:
    """CREATE TABLE and CREATE INDEX of every table, compiled for both backends, as SQLModel's own tables make them."""
    ours, theirs = tables.METADATA, SQLModel.metadata
    assert list(ours.tables) == list(theirs.tables)
    for name, table in theirs.tables.items():
        mine = ours.tables[name]
        assert str(CreateTable(mine).compile(dialect=dialect)) == str(CreateTable(table).compile(dialect=dialect))
        assert _indexes(mine, dialect) == _indexes(table, dialect)


def test_the_generated_tables_keep_the_models_python_defaults_and_types() -> None:
    """What DDL does not show: the defaults an INSERT fills in, and the types' Python-side processing (a UTC
    datetime, JSON/JSONB) by their class."""
    for name, table in SQLModel.metadata.tables.items():
        mine = tables.METADATA.tables[name]
        for theirs in table.columns:
            column = mine.c[theirs.name]
            where = f"{name}.{theirs.name}"
            assert _default(column) == _default(theirs), where
            flags = [(c.primary_key, c.nullable, bool(c.index), bool(c.unique)) for c in (column, theirs)]
            assert flags[0] == flags[1], where
            assert _type(column.type) == _type(theirs.type), where


def test_the_models_module_names_the_generated_tables() -> None:
    """One Table object per table in a process: `models.RUNS` (what older code imports) is `tables.RUNS`."""
    assert models.RUNS is tables.RUNS
    assert models.TASK_RUNS is tables.TASK_RUNS
    assert models.Run.__table__ is not tables.RUNS  # SQLModel's own, on SQLModel.metadata, for Alembic


def test_what_the_generator_cannot_write_is_an_error_naming_it() -> None:
    class Shouty(sa.types.TypeDecorator[str]):
        impl = sa.String
        cache_ok = True

    odd_type = sa.MetaData()
    sa.Table("odd", odd_type, sa.Column("id", sa.Integer(), primary_key=True), sa.Column("x", Shouty()))
    with pytest.raises(tablegen.UnrenderableSchema, match=r"odd\.x: type .*Shouty is not rendered"):
        tablegen.render(odd_type)

    anonymous_default = sa.MetaData()
    sa.Table("odd", anonymous_default, sa.Column("id", sa.Integer(), primary_key=True, default=lambda: 1))
    with pytest.raises(tablegen.UnrenderableSchema, match="not an importable function"):
        tablegen.render(anonymous_default)

    check = sa.MetaData()
    sa.Table("odd", check, sa.Column("id", sa.Integer(), primary_key=True), sa.CheckConstraint("id > 0"))
    with pytest.raises(tablegen.UnrenderableSchema, match="CheckConstraint"):
        tablegen.render(check)


def _indexes(table: sa.Table, dialect: Dialect) -> set[str]:
    return {str(CreateIndex(index).compile(dialect=dialect)) for index in table.indexes}


def _type(kind: sa.types.TypeEngine[Any]) -> tuple[object, ...]:
    """A column type's class and parameters; SQLModel's AutoString counts as the String it is on both backends."""
    cls: object = sa.String if type(kind).__name__ == "AutoString" else type(kind)
    return (cls, getattr(kind, "length", None), getattr(kind, "timezone", None))


def _default(column: sa.Column[Any]) -> object:
    default = column.default
    if default is None:
        return None
    assert isinstance(default, sa.ColumnDefault)
    if default.is_callable:
        target: Callable[..., Any] = getattr(default.arg, "__wrapped__", default.arg)
        return ("call", target)
    value = default.arg
    return ("value", type(value), value.value if isinstance(value, enum.Enum) else value)
