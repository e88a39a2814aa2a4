"""Retention of events and logs (issue 15 item 5): when a run's events and logs were let go

`runs.events_pruned_at`: when the retention sweep last deleted events of the run (`ODIN_EVENTS_KEEP_DAYS`);
`runs.logs_pruned_at`: when it deleted the run's task logs (`ODIN_LOGS_KEEP_DAYS`). NULL: nothing removed. A run's
page reads them to say what is gone instead of showing an empty history as if nothing had happened.

Both are nullable without a default: adding them changes only the catalogue on Postgres, never rewrites the table,
and the ALTER waits at most a second for its lock at a time (`online_ddl.add_columns`).

Revision ID: 0022
Revises: 0015 (re-chained at merge after whatever precedes it)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from odin.controller.store.online_ddl import add_columns

# Types are spelled out rather than imported from the models (see 0001).
UTC_DATETIME = sa.DateTime(timezone=True)

revision: str = "0022"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_columns(
        "runs",
        [
            sa.Column("events_pruned_at", UTC_DATETIME, nullable=True),
            sa.Column("logs_pruned_at", UTC_DATETIME, nullable=True),
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("logs_pruned_at")
        batch_op.drop_column("events_pruned_at")
