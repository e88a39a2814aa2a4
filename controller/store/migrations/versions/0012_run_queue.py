"""Run queue (issue 13 item 5): a run's priority and its pipeline's concurrency limit

`runs.priority` and `runs.concurrency_limit` are copied from the frozen spec when a run is created, so the queue of
`queued` runs is ordered (priority, then age) and limited per pipeline in SQL without reading specs.

Revision ID: 0012
Revises: 0010 (re-chained at merge after whatever 0011 is)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("concurrency_limit", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("concurrency_limit")
        batch_op.drop_column("priority")
