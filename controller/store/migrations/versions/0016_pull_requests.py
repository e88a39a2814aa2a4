"""Pull / merge requests (issue 13 item 3): a repository may run its pull requests' pipelines, and a run records the
pull request it ran for

`repositories.pull_requests`: which pull requests run (`off`, the default; `same-repo`: only those whose head is in the
repository itself; `all`: forks too, never with secrets). `repositories.pr_approvers`: provider logins whose `/retest`
comments are obeyed besides the provider's own roles (NULL: none). `runs.pull_request` and `runs.pr_provider`: the
pull request (its number at that provider) a `pull_request`-triggered run ran for; `runs.secrets_withheld`: the run
came from a fork, so none of the repository's secrets reach its tasks. A pull request's run is started once per
(repository, head commit, pipeline) through `runs.dedupe_key` (`<repo_id>:pr:<sha>:<pipeline>`), so no new unique key
is needed.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from odin.controller.store.online_ddl import add_columns

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Types are spelled out rather than imported from the models (see 0001).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("repositories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pull_requests", sa.String(length=16), nullable=False, server_default="off"))
        batch_op.add_column(sa.Column("pr_approvers", JSON, nullable=True))
    # `runs` grows with every push: its columns are added online (a constant default is catalogue-only on Postgres).
    add_columns(
        "runs",
        [
            sa.Column("pull_request", sa.Integer(), nullable=True),
            sa.Column("pr_provider", sa.String(length=16), nullable=True),
            sa.Column("secrets_withheld", sa.Boolean(), nullable=False, server_default=sa.false()),
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("secrets_withheld")
        batch_op.drop_column("pr_provider")
        batch_op.drop_column("pull_request")
    with op.batch_alter_table("repositories", schema=None) as batch_op:
        batch_op.drop_column("pr_approvers")
        batch_op.drop_column("pull_requests")
