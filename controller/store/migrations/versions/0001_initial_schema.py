"""initial schema

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Types are spelled out here rather than imported from the models, so this script keeps meaning what it meant
# when it was written, whatever the models become.
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC_DATETIME = sa.DateTime(timezone=True)

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("time", UTC_DATETIME, nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=True),
        sa.Column("commit_sha", sa.String(length=40), nullable=True),
        sa.Column("run_id", sa.String(length=100), nullable=True),
        sa.Column("task", sa.String(length=63), nullable=True),
        sa.Column("data", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_commit_sha"), ["commit_sha"], unique=False)
        batch_op.create_index("ix_events_run_id_id", ["run_id", "id"], unique=False)

    op.create_table(
        "repositories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=False),
        sa.Column("credentials_ref", sa.String(length=500), nullable=True),
        sa.Column("poll_interval", sa.Float(), nullable=False),
        sa.Column("run_policy", sa.String(length=16), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=True),
        sa.Column("last_seen_sha", sa.String(length=40), nullable=True),
        sa.Column("conditions", JSON, nullable=False),
        sa.Column("last_fetch_at", UTC_DATETIME, nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=500), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "commits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=False),
        sa.Column("sha", sa.String(length=40), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=True),
        sa.Column("parents", JSON, nullable=False),
        sa.Column("author_name", sa.String(length=500), nullable=False),
        sa.Column("author_email", sa.String(length=500), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("committed_at", UTC_DATETIME, nullable=True),
        sa.Column("seen_at", UTC_DATETIME, nullable=False),
        sa.Column("validation", sa.String(length=16), nullable=False),
        sa.Column("problems", JSON, nullable=False),
        sa.Column("pipelines_changed", JSON, nullable=False),
        sa.Column("absorbed_by", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["repo_id"],
            ["repositories.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("repo_id", "sha", name="uq_commits_repo_sha"),
    )
    with op.batch_alter_table("commits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_commits_repo_id"), ["repo_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_commits_sha"), ["sha"], unique=False)

    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=True),
        sa.Column("pipeline", sa.String(length=500), nullable=False),
        sa.Column("commit_sha", sa.String(length=40), nullable=True),
        sa.Column("branch", sa.String(length=255), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("triggered_by", sa.String(length=255), nullable=True),
        sa.Column("params", JSON, nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("work_tree", sa.String(length=64), nullable=True),
        sa.Column("work_path", sa.String(length=4096), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=100), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("parallelism", sa.Integer(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("parent_run", sa.String(length=100), nullable=True),
        sa.Column("run_path_id", sa.String(length=100), nullable=True),
        sa.Column("dedupe_key", sa.String(length=700), nullable=True),
        sa.Column("absorbed_commits", JSON, nullable=False),
        sa.Column("conditions", JSON, nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("started_at", UTC_DATETIME, nullable=True),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["repo_id"],
            ["repositories.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs_commit_sha"), ["commit_sha"], unique=False)
        batch_op.create_index("ix_runs_created", ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_parent_run"), ["parent_run"], unique=False)
        batch_op.create_index("ix_runs_pipeline_created", ["pipeline", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_repo_id"), ["repo_id"], unique=False)
        batch_op.create_index("ix_runs_status", ["status"], unique=False)

    op.create_table(
        "task_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("user_failures", sa.Integer(), nullable=False),
        sa.Column("infra_failures", sa.Integer(), nullable=False),
        sa.Column("resource_kind", sa.String(length=63), nullable=True),
        sa.Column("resource_name", sa.String(length=253), nullable=True),
        sa.Column("namespace", sa.String(length=63), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=100), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("failure", sa.String(length=16), nullable=True),
        sa.Column("node", sa.String(length=253), nullable=True),
        sa.Column("gpus", JSON, nullable=False),
        sa.Column("log_path", sa.String(length=4096), nullable=True),
        sa.Column("not_before", UTC_DATETIME, nullable=True),
        sa.Column("started_at", UTC_DATETIME, nullable=True),
        sa.Column("finished_at", UTC_DATETIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "name", name="uq_task_runs_run_name"),
    )
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_runs_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_runs_run_id"))

    op.drop_table("task_runs")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_status")
        batch_op.drop_index(batch_op.f("ix_runs_repo_id"))
        batch_op.drop_index("ix_runs_pipeline_created")
        batch_op.drop_index(batch_op.f("ix_runs_parent_run"))
        batch_op.drop_index("ix_runs_created")
        batch_op.drop_index(batch_op.f("ix_runs_commit_sha"))

    op.drop_table("runs")
    with op.batch_alter_table("commits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_commits_sha"))
        batch_op.drop_index(batch_op.f("ix_commits_repo_id"))

    op.drop_table("commits")
    op.drop_table("users")
    op.drop_table("repositories")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_run_id_id")
        batch_op.drop_index(batch_op.f("ix_events_commit_sha"))

    op.drop_table("events")
