"""Schedules (issue 13 item 4): the slots of pipelines' schedules that were started

`scheduled_slots`: one row per started slot, UNIQUE (repo_id, branch, pipeline, slot), inserted in the transaction
that creates the slot's run, so two replicas or a restarted leader never start one slot twice; `schedule` names the
schedule (`<cron>@<zone>`) whose last slot its catch-up starts from.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Types are spelled out rather than imported from the models (see 0001).
UTC_DATETIME = sa.DateTime(timezone=True)

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scheduled_slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=False),
        sa.Column("pipeline", sa.String(length=500), nullable=False),
        sa.Column("slot", UTC_DATETIME, nullable=False),
        sa.Column("schedule", sa.String(length=300), nullable=False),
        sa.Column("run_id", sa.String(length=100), nullable=True),
        sa.Column("fired_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["repo_id"], ["repositories.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("repo_id", "branch", "pipeline", "slot", name="uq_scheduled_slots_key"),
    )
    with op.batch_alter_table("scheduled_slots", schema=None) as batch_op:
        batch_op.create_index(
            "ix_scheduled_slots_schedule", ["repo_id", "branch", "pipeline", "schedule", "slot"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("scheduled_slots", schema=None) as batch_op:
        batch_op.drop_index("ix_scheduled_slots_schedule")
    op.drop_table("scheduled_slots")
