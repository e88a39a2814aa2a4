"""What a task produced: task_runs.results and task_runs.artifacts (issue 11)

Two JSON columns on the task's own row rather than a `task_outputs` table: the engine records a task's outputs in the
same UPDATE that records it succeeded (one statement per engine step, atomic with the status, no extra round trip on
the hot path), a rerun that reuses a task copies them with the rest of its row, and `GET /v1/runs/{id}` already reads
these rows. A per-output table, if cross-run queries need one (`odinctl results`), can be filled from these columns.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Types spelled out, as in 0001: this script keeps meaning what it meant when it was written.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("results", JSON, nullable=True))
        batch_op.add_column(sa.Column("artifacts", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.drop_column("artifacts")
        batch_op.drop_column("results")
