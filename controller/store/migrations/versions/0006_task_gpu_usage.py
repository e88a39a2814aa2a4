"""What a task used of its GPUs: task_runs.gpu_usage (issue 10 item 4)

One JSON column on the task's own row, like 0005's outputs: the summary (GPUs, GPU-seconds, utilisation, peak memory,
the idle flag) is one small document per attempt, rewritten in place while the task runs, and `GET /v1/runs/{id}`
already reads these rows. The idle flag's history is also in the events table (`task.gpu_idle`).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Types spelled out, as in 0001: this script keeps meaning what it meant when it was written.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gpu_usage", JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.drop_column("gpu_usage")
