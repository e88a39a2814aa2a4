"""Column types that behave the same on SQLite and Postgres.

SQLite has no time zones and no JSONB; without these, a datetime read back from SQLite is naive while the same
column read from Postgres is aware, and code that compares them breaks on one backend only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Stores UTC; always returns timezone-aware UTC datetimes."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _JSONOrJSONB(sa.types.TypeDecorator[Any]):
    """JSON on SQLite, JSONB on Postgres (indexable, compact).

    A type decorator rather than `sa.JSON().with_variant(JSONB(), "postgresql")` so that SQLAlchemy's Postgres
    dialect (and asyncio, which it imports) is loaded only by a process that talks to Postgres, not by every `odin
    run` on SQLite (issue 15 item 2). The DDL, the values and Alembic's comparison are the same."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())


JSONColumn: sa.types.TypeEngine[Any] = _JSONOrJSONB()
"""JSON on SQLite, JSONB on Postgres (indexable, compact)."""


def utcnow() -> datetime:
    return datetime.now(UTC)
