"""Where each run and task is tracked in MLflow: runs.mlflow_* and task_runs.mlflow_run_id (issue 11, item 7)

The ids of the MLflow run of an Odin run (and its experiment), and of each task's nested run, kept on the rows they
belong to, so that a restarted controller finishes the MLflow runs it opened instead of opening new ones, and the API
links to them without asking MLflow. `runs.mlflow_status` is the status last mirrored to MLflow (FINISHED, FAILED,
KILLED): NULL on a finished run with an MLflow run means "still to close" (the tracking worker's restart sweep).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mlflow_run_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("mlflow_experiment_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("mlflow_status", sa.String(length=16), nullable=True))
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("mlflow_run_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.drop_column("mlflow_run_id")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("mlflow_status")
        batch_op.drop_column("mlflow_experiment_id")
        batch_op.drop_column("mlflow_run_id")
