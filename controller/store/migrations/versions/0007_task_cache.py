"""Task caching (issue 11 item 6): task_runs.cache_key with a lookup index, runs.no_cache

`cache_key` is the sha256 (hex) of what determines a cached task's outputs (`odin.controller.engine.cache`); it is
recorded on every attempt of a task with `cache: true`, hit or miss, so a later run can find a succeeded task run by
it. The index is on (cache_key, status): the one lookup is "a succeeded task run with this key", newest first, and
rows of tasks that are not cached (NULL key) cost the index nothing worth measuring. `runs.no_cache` keeps a run's
`--no-cache` with the run itself, so an engine that adopts the run after a restart still bypasses the lookup.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cache_key", sa.String(length=64), nullable=True))
        batch_op.create_index("ix_task_runs_cache_key_status", ["cache_key", "status"], unique=False)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("no_cache", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("no_cache")
    with op.batch_alter_table("task_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_task_runs_cache_key_status")
        batch_op.drop_column("cache_key")
