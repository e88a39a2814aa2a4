"""Store versions: a counter per kind of change, read instead of a whole table (the registrations' refresh)

`store_versions`: one row per counter, `registrations` today. Every write that changes what the controller follows
of a registered repository adds one to it in its own transaction, so each replica's refresh every `REPOS_REFRESH`
seconds reads that one row and re-reads `repositories` only when it moved. A new, empty table: nothing is rewritten
or locked on the tables that grow, and no row is written here (the first bump inserts it).

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "store_versions",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("store_versions")
