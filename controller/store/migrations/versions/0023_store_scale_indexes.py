"""Indexes for a store that has grown for a year (issue 15 item 5), built online

`ix_commits_seen_at_id` (seen_at, id): the commit timeline and `GET /v1/commits` page by (seen_at, id), newest
first; without it every page sorted the whole commits table. `ix_task_runs_run_id_id` (run_id, id) replaces
`ix_task_runs_run_id` (run_id): a run's tasks are read in creation order (`id`) a page at a time, and the pair
serves that page straight from the index (keyset) where the single column made Postgres fetch and sort every task
of the run; the table keeps the same number of indexes, so the engine's writes cost what they did.

Every statement is online on Postgres (`online_ddl`: CREATE/DROP INDEX CONCURRENTLY, outside a transaction): the
engine keeps writing while a table of 10 million task runs is indexed.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

from collections.abc import Sequence

from odin.controller.store.online_ddl import create_index, drop_index

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_index("ix_commits_seen_at_id", "commits", ["seen_at", "id"])
    create_index("ix_task_runs_run_id_id", "task_runs", ["run_id", "id"])
    drop_index("ix_task_runs_run_id", "task_runs")


def downgrade() -> None:
    create_index("ix_task_runs_run_id", "task_runs", ["run_id"])
    drop_index("ix_task_runs_run_id_id", "task_runs")
    drop_index("ix_commits_seen_at_id", "commits")
