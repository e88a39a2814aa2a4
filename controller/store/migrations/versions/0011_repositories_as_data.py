"""Repositories as data (issue 13 items 1-2): repositories registered through the API, and branches by pattern

`repositories` gains what a registration says besides URL and branch: `branches` (the fnmatch patterns of the
branches followed; NULL: the one `branch`), `webhook_secret_ref` (a reference, `env:NAME` or `file:/path`, never the
secret), `enabled`, `removed_at` (a removed repository keeps its row, so its runs, commits and events stay readable)
and `origin` (`settings`: imported from `ODIN_REPO` at start; `api`: registered through `/v1/repos`).

`repo_branches`: where sync left off on each further branch a pattern matches (the repository's own `branch` keeps
using `repositories.last_seen_sha`), UNIQUE (repo_id, branch), with that branch's Ready condition.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Types are spelled out rather than imported from the models (see 0001).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
UTC_DATETIME = sa.DateTime(timezone=True)

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("repositories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("branches", JSON, nullable=True))
        batch_op.add_column(sa.Column("webhook_secret_ref", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column("removed_at", UTC_DATETIME, nullable=True))
        batch_op.add_column(sa.Column("origin", sa.String(length=16), nullable=False, server_default="settings"))
    op.create_table(
        "repo_branches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repo_id", sa.Integer(), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=False),
        sa.Column("last_seen_sha", sa.String(length=40), nullable=True),
        sa.Column("conditions", JSON, nullable=False),
        sa.Column("updated_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(["repo_id"], ["repositories.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("repo_id", "branch", name="uq_repo_branches_repo_branch"),
    )


def downgrade() -> None:
    op.drop_table("repo_branches")
    with op.batch_alter_table("repositories", schema=None) as batch_op:
        batch_op.drop_column("origin")
        batch_op.drop_column("removed_at")
        batch_op.drop_column("enabled")
        batch_op.drop_column("webhook_secret_ref")
        batch_op.drop_column("branches")
