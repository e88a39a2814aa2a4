"""Leadership epochs (issue 14 item 4): the row a leader's writes are fenced on

`leadership`: one row per elected role (`scheduler` today). Each acquisition adds one to `epoch`; the engine's and
the sync's writes check their epoch is still the row's in their own transaction, so a leader paused past its lease
cannot write once another replica leads. `expires_at` is the lease (the database's clock), `backend_pid` the
Postgres backend of the leader's lease connection (gone: the leader died, take over at once).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Types are spelled out rather than imported from the models (see 0001).
UTC_DATETIME = sa.DateTime(timezone=True)

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leadership",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("holder", sa.String(length=300), nullable=True),
        sa.Column("backend_pid", sa.Integer(), nullable=True),
        sa.Column("acquired_at", UTC_DATETIME, nullable=True),
        sa.Column("expires_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("leadership")
