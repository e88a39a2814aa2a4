"""Tag patterns (issue 13 item 2): a repository may follow tags by pattern, and a run records the tag it ran for

`repositories.tags`: the fnmatch patterns of the tags followed (NULL: none). `repositories.tags_seen`: every tag the
remote had at the last listing, name -> commit sha (NULL: never listed, so the next listing is the baseline: nothing
runs for the tags there then). `runs.tag`: the tag a tag-triggered run ran for. A tag run is started once per
(repository, tag, commit, pipeline) through `runs.dedupe_key` (`<repo_id>:tag:<tag>:<sha>:<pipeline>`), so no new
unique key is needed.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Types are spelled out rather than imported from the models (see 0001).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("repositories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tags", JSON, nullable=True))
        batch_op.add_column(sa.Column("tags_seen", JSON, nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tag", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("tag")
    with op.batch_alter_table("repositories", schema=None) as batch_op:
        batch_op.drop_column("tags_seen")
        batch_op.drop_column("tags")
