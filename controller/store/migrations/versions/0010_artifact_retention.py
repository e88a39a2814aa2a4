"""Artifact retention (issue 11 item 4): a policy per repository, and when a run's artifacts were let go

`repositories.retention_keep_runs` / `retention_keep_days`: the repository's policy (keep the last N runs of each
pipeline, keep runs younger than N days; NULL: that rule is off). `runs.artifacts_expired_at`: when retention let the
run's artifacts go (its task runs' artifact records are marked `gone` in the same transaction), so each sweep only
considers runs it has not expired yet, and the API can say why a download is missing.

Revision ID: 0010
Revises: 0006 (the head on main when this branch merged it; the lead re-chains)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("repositories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("retention_keep_runs", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("retention_keep_days", sa.Float(), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("artifacts_expired_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("artifacts_expired_at")
    with op.batch_alter_table("repositories", schema=None) as batch_op:
        batch_op.drop_column("retention_keep_days")
        batch_op.drop_column("retention_keep_runs")
