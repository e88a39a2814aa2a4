"""Whether a database's schema is current, told without importing Alembic; and a fresh SQLite schema made at once.

Every `odin run` and every `odin serve` opens its store through `db.migrate`. Importing Alembic (its runtime pulls in
its autogenerate machinery, Mako and SQLAlchemy's Postgres dialect) and running its upgrade cost more than the rest of
`odin run`'s start-up together (issue 15, item 2), yet on almost every start there is nothing to do:

- **Up to date**: the revision stored in `alembic_version` is the head revision. The head is read from the migration
  scripts themselves (their `revision` / `down_revision` lines, a few small files) rather than written down a second
  time, so a branch that adds a migration cannot forget to move it.
- **Brand-new SQLite file** (`odin run` makes one per run by default): no table at all. The schema is created from
  the models (`tables.METADATA.create_all`: the Core tables generated from them, so SQLModel is not imported) and
  stamped with the head revision, which is exactly what the migrations would have produced:
  `tests/store/test_schema_version.py` compares the two schemas column by column, index by index, and fails if a
  migration ever starts to write rows (create_all cannot replay data).

Anything else (an older revision, several heads, a half-made database, Postgres without the table) goes through
Alembic as before, so what Alembic reports (an unknown revision, a failed step) is unchanged.
"""

from __future__ import annotations

import re
from enum import Enum
from functools import cache
from importlib import resources

import sqlalchemy as sa
from sqlalchemy.engine import Connection

VERSION_TABLE = "alembic_version"

_REVISION = re.compile(r"^revision\s*(?::[^=]*)?=\s*['\"]([^'\"]+)['\"]", re.MULTILINE)
_DOWN_REVISION = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(.*)$", re.MULTILINE)
_QUOTED = re.compile(r"['\"]([^'\"]+)['\"]")


class SchemaState(Enum):
    CURRENT = "current"  # stamped with the head revision: nothing to do
    EMPTY = "empty"  # no table at all: a brand-new database
    OTHER = "other"  # behind, ahead, unknown or half-made: Alembic decides


@cache
def head_revisions() -> frozenset[str]:
    """The revisions no migration names as its `down_revision` (one, unless two branches were merged without a
    merge migration), read from the scripts shipped in `migrations/versions/`."""
    versions = resources.files("odin.controller.store") / "migrations" / "versions"
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in versions.iterdir():
        if not script.name.endswith(".py") or script.name.startswith("__"):
            continue
        text = script.read_text(encoding="utf-8")
        revision = _REVISION.search(text)
        if revision is None:
            continue
        revisions.add(revision.group(1))
        down = _DOWN_REVISION.search(text)
        if down is not None:
            parents.update(_QUOTED.findall(down.group(1)))
    return frozenset(revisions - parents)


def schema_state(conn: Connection) -> SchemaState:
    """Where `conn`'s database stands against the migrations, from one or two cheap queries."""
    if not conn.dialect.has_table(conn, VERSION_TABLE):
        if conn.dialect.name == "sqlite" and len(head_revisions()) == 1 and not _sqlite_has_tables(conn):
            return SchemaState.EMPTY
        return SchemaState.OTHER
    stored = {row[0] for row in conn.execute(sa.text("SELECT version_num FROM alembic_version"))}
    heads = head_revisions()
    return SchemaState.CURRENT if len(heads) == 1 and stored == heads else SchemaState.OTHER


def create_fresh_schema(conn: Connection) -> None:
    """Create every table of the models and stamp the head revision, in `conn`'s transaction (a brand-new database
    only: `schema_state` said EMPTY)."""
    from odin.controller.store.tables import METADATA  # the models' tables as Core: no SQLModel, no ORM

    (head,) = head_revisions()
    METADATA.create_all(conn, checkfirst=False)  # EMPTY, under the write lock: nothing to check
    # The table Alembic itself makes, with its constraint name, so a later `alembic upgrade` finds what it expects.
    version = sa.Table(
        VERSION_TABLE,
        sa.MetaData(),
        sa.Column("version_num", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
    )
    version.create(conn)
    conn.execute(version.insert().values(version_num=head))


def _sqlite_has_tables(conn: Connection) -> bool:
    found = conn.execute(
        sa.text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' LIMIT 1")
    ).first()
    return found is not None
