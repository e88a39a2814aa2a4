"""Schedules with parameters (issue 13 item 4): a slot is started once per schedule, not once per pipeline

Two schedules of one pipeline (two `.odin.yml` entries that differ in their `params`, or a `main.yml` schedule and an
`.odin.yml` one) may name the same instant, and each must start its own run. The key of `scheduled_slots` becomes
UNIQUE (repo_id, branch, pipeline, schedule, slot); its index also serves the catch-up query (the most recent slot of
each schedule), so the former `ix_scheduled_slots_schedule` on the same columns goes. Every existing row keeps its
meaning: before this, a pipeline's schedules could not share a slot.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scheduled_slots", schema=None) as batch_op:
        batch_op.drop_index("ix_scheduled_slots_schedule")
        batch_op.drop_constraint("uq_scheduled_slots_key", type_="unique")
        batch_op.create_unique_constraint(
            "uq_scheduled_slots_schedule_slot", ["repo_id", "branch", "pipeline", "schedule", "slot"]
        )


def downgrade() -> None:
    with op.batch_alter_table("scheduled_slots", schema=None) as batch_op:
        batch_op.drop_constraint("uq_scheduled_slots_schedule_slot", type_="unique")
        batch_op.create_unique_constraint("uq_scheduled_slots_key", ["repo_id", "branch", "pipeline", "slot"])
        batch_op.create_index(
            "ix_scheduled_slots_schedule", ["repo_id", "branch", "pipeline", "schedule", "slot"], unique=False
        )
