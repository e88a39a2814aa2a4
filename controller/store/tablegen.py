"""Writes `tables.py`, the Core tables every query uses, from the SQLModel models (`models.py`).

Why: the models are where the schema is declared (and what Alembic's autogenerate compares with), but building them
imports SQLModel, pydantic's model machinery and SQLAlchemy's ORM, about 40 % of what `odin run` imported (issue 15
item 2). The store's queries only need the `sa.Table`s, so those are written out once, as plain SQLAlchemy Core, by
this module; nobody edits `tables.py` by hand. `tests/store/test_tables.py` fails when the file is not what this
module writes from the current models, and compares the two metadata objects (DDL on both backends, Python-side
defaults) so that a gap in the rendering below cannot hide.

    python -m odin.controller.store.tablegen > controller/store/tables.py

The rendering is deliberately narrow: a column type, a default or a constraint it does not know is an error naming
what to teach it, never a guess.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import False_, TextClause, True_
from sqlmodel import SQLModel

import odin.controller.store.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from odin.controller.store import types as store_types

LINE_LENGTH = 120  # ruff's, so that `ruff format` leaves the file as written

HEADER = '''\
"""The store's tables as SQLAlchemy Core: GENERATED from `models.py` by `odin.controller.store.tablegen`; do not edit.

The SQLModel classes in `models.py` declare the schema; this file is what the store's queries use, so that opening
the store imports neither SQLModel nor the ORM (issue 15 item 2). After changing a model:

    python -m odin.controller.store.tablegen > controller/store/tables.py

`tests/store/test_tables.py` fails while this file differs from what that writes. String columns are `sa.String`
here where SQLModel says `AutoString` (the same VARCHAR on SQLite and Postgres).
"""

from __future__ import annotations

'''


class UnrenderableSchema(Exception):
    """The models use something this generator cannot write as Core yet."""


def main() -> None:
    sys.stdout.write(render(SQLModel.metadata))


def render(metadata: sa.MetaData) -> str:
    """The source of `tables.py` for `metadata`: a `METADATA` and one upper-case constant per table."""
    imports = _Imports()
    body = [f"METADATA = sa.MetaData(naming_convention={literal(dict(metadata.naming_convention))})", ""]
    for table in metadata.tables.values():
        body += ["", *_table(table, imports)]
    return HEADER + imports.render() + "\n\n" + "\n".join(body) + "\n"


def literal(value: object) -> str:
    """`repr(value)` with strings in double quotes, as ruff formats them (in dicts too)."""
    if isinstance(value, str):
        text = repr(value)
        if text.startswith("'") and '"' not in value:
            return '"' + text[1:-1].replace("\\'", "'") + '"'
        return text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def constant_name(table: sa.Table) -> str:
    return table.name.upper()


class _Imports:
    """The `from module import name` lines the rendered values need (besides `sqlalchemy as sa`)."""

    def __init__(self) -> None:
        self.names: dict[str, set[str]] = {}

    def name(self, obj: Any) -> str:
        """The name to write for a class or function, imported from its module."""
        module, qualname = str(obj.__module__), str(obj.__qualname__)
        if module != "builtins":
            self.names.setdefault(module, set()).add(qualname.split(".", maxsplit=1)[0])
        return qualname

    def attribute(self, module: Any, name: str) -> str:
        """The name to write for a module-level value (not a class or function)."""
        self.names.setdefault(str(module.__name__), set()).add(name)
        return name

    def render(self) -> str:
        lines = ["import sqlalchemy as sa", ""]
        lines += [f"from {m} import {', '.join(sorted(n))}" for m, n in sorted(self.names.items())]
        return "\n".join(lines)


def _table(table: sa.Table, imports: _Imports) -> list[str]:
    if table.schema is not None or table.comment is not None or table.dialect_kwargs:
        raise UnrenderableSchema(f"table {table.name}: schema, comment and dialect options are not rendered")
    args = [literal(table.name), "METADATA"]
    args += [_column(c, imports) for c in table.columns]
    constraints = sorted(table.constraints, key=lambda c: c._creation_order)  # as the models declared them
    args += [r for c in constraints if (r := _constraint(c)) is not None]
    indexes = sorted(table.indexes, key=lambda i: str(i.name))  # a set: any fixed order
    args += [r for i in indexes if (r := _index(i)) is not None]
    return _call(f"{constant_name(table)} = sa.Table", args, indent=0)


def _column(column: sa.Column[Any], imports: _Imports) -> str:
    if column.key != column.name or column.onupdate is not None or column.server_onupdate is not None:
        raise UnrenderableSchema(f"column {column}: a key or an on-update is not rendered")
    if column.comment or column.computed is not None or column.identity is not None:
        raise UnrenderableSchema(f"column {column}: a comment, computed or identity column is not rendered")
    args = [literal(column.name), _type(column, imports)]
    args += [_foreign_key(fk) for fk in sorted(column.foreign_keys, key=lambda f: f.target_fullname)]
    if column.primary_key:
        args.append("primary_key=True")
    if column.autoincrement != "auto":
        args.append(f"autoincrement={literal(column.autoincrement)}")
    args.append(f"nullable={column.nullable!r}")
    if column.default is not None:
        args.append(f"default={_default(column, imports)}")
    if column.server_default is not None:
        args.append(f"server_default={_server_default(column)}")
    if column.index:
        args.append("index=True")
    if column.unique:
        args.append("unique=True")
    return _one_line("sa.Column", args)


def _type(column: sa.Column[Any], imports: _Imports) -> str:
    kind = column.type
    if kind is store_types.JSONColumn:
        return imports.attribute(store_types, "JSONColumn")
    if isinstance(kind, store_types.UTCDateTime):
        return f"{imports.name(store_types.UTCDateTime)}()"
    if type(kind).__name__ == "AutoString" and type(kind).__module__.startswith("sqlmodel."):
        return f"sa.String(length={kind.length!r})"  # type: ignore[attr-defined]
    cls = type(kind)
    if cls.__module__.startswith("sqlalchemy.") and getattr(sa, cls.__name__, None) is cls:
        return f"sa.{kind!r}"  # SQLAlchemy's repr is the constructor call, e.g. String(length=40)
    raise UnrenderableSchema(f"column {column}: type {cls.__module__}.{cls.__qualname__} is not rendered")


def _foreign_key(fk: sa.ForeignKey) -> str:
    options = {"name": fk.name, "ondelete": fk.ondelete, "onupdate": fk.onupdate, "deferrable": fk.deferrable}
    if fk.use_alter or fk.initially is not None or fk.match is not None:
        raise UnrenderableSchema(f"foreign key {fk}: use_alter, initially and match are not rendered")
    extra = "".join(f", {k}={literal(v)}" for k, v in options.items() if v is not None)
    return f"sa.ForeignKey({literal(fk.target_fullname)}{extra})"


def _default(column: sa.Column[Any], imports: _Imports) -> str:
    default = column.default
    assert isinstance(default, sa.ColumnDefault)
    if default.is_callable:
        target: Callable[..., Any] = getattr(default.arg, "__wrapped__", default.arg)  # SQLAlchemy wraps fn()
        if not hasattr(target, "__qualname__") or "<" in target.__qualname__:
            raise UnrenderableSchema(f"column {column}: default {target!r} is not an importable function")
        return imports.name(target)
    if default.is_scalar:
        value = default.arg
        if isinstance(value, enum.Enum):
            return f"{imports.name(type(value))}.{value.name}"
        if value is None or isinstance(value, bool | int | float | str):
            return literal(value)
    raise UnrenderableSchema(f"column {column}: default {default!r} is not rendered")


def _server_default(column: sa.Column[Any]) -> str:
    clause = column.server_default
    if not isinstance(clause, sa.DefaultClause) or clause.for_update:
        raise UnrenderableSchema(f"column {column}: server default {clause!r} is not rendered")
    arg = clause.arg
    if isinstance(arg, str):
        return literal(arg)
    if isinstance(arg, True_):
        return "sa.true()"
    if isinstance(arg, False_):
        return "sa.false()"
    if isinstance(arg, TextClause):
        return f"sa.text({literal(arg.text)})"
    raise UnrenderableSchema(f"column {column}: server default {arg!r} is not rendered")


def _constraint(constraint: sa.Constraint) -> str | None:
    """The table argument for a constraint the columns do not make themselves (None for those they do)."""
    if isinstance(constraint, sa.PrimaryKeyConstraint):
        if constraint.name is not None:
            raise UnrenderableSchema(f"{constraint.table}: a named primary key is not rendered")
        return None  # the columns' primary_key=True
    if isinstance(constraint, sa.ForeignKeyConstraint) and len(constraint.elements) == 1:
        return None  # the column's sa.ForeignKey (which carries the constraint's name and options)
    if isinstance(constraint, sa.UniqueConstraint) and not constraint.dialect_kwargs:
        if getattr(constraint, "_column_flag", False):
            return None  # the column's unique=True
        return _one_line("sa.UniqueConstraint", [*_column_names(constraint.columns), *_name(constraint.name)])
    raise UnrenderableSchema(f"{constraint.table}: constraint {constraint!r} is not rendered")


def _index(index: sa.Index) -> str | None:
    if getattr(index, "_column_flag", False):
        return None  # the column's index=True
    if index.dialect_kwargs or any(not isinstance(e, sa.Column) for e in index.expressions):
        raise UnrenderableSchema(f"index {index.name}: expressions and dialect options are not rendered")
    unique = ["unique=True"] if index.unique else []
    return _one_line("sa.Index", [literal(index.name), *_column_names(index.columns), *unique])


def _column_names(columns: Iterable[sa.Column[Any]]) -> list[str]:
    return [literal(c.name) for c in columns]


def _name(name: object) -> list[str]:
    return [] if name is None else [f"name={literal(str(name))}"]


def _one_line(callee: str, args: list[str]) -> str:
    return f"{callee}({', '.join(args)})"


def _call(head: str, args: list[str], indent: int) -> list[str]:
    """`head(args)` as ruff formats it: on one line when it fits, else one argument a line with a trailing comma."""
    pad = " " * indent
    line = f"{pad}{head}({', '.join(args)})"
    if len(line) <= LINE_LENGTH:
        return [line]
    inner = " " * (indent + 4)
    lines = [f"{pad}{head}("]
    for arg in args:
        if len(inner) + len(arg) + 1 > LINE_LENGTH:
            raise UnrenderableSchema(f"{arg[:60]}...: longer than a line; shorten it or teach the generator to wrap")
        lines.append(f"{inner}{arg},")
    return [*lines, f"{pad})"]


if __name__ == "__main__":
    main()
