"""Pull requests' runs as the store knows them (issue 13 item 3; controller/pulls.py): the runs of a pull request's
older heads still going (a new head supersedes them under the `latest` run policy), and what a pull request's last run
recorded of it: from a fork or not, and its base branch (a `/retest` comment on GitHub or Gitea says neither)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from odin.controller.store.db import Connection, DbEngine, reading
from odin.controller.store.runs import ACTIVE_RUN_STATUSES
from odin.controller.store.tables import RUNS
from odin.controller.vocabulary import RunStatus, Trigger


def older_heads_active(conn: Connection, repo_id: int, provider: str, number: int, head: str) -> list[str]:
    """The runs of the pull request at another commit than `head` that have not finished (queued ones included)."""
    statuses = [*ACTIVE_RUN_STATUSES, RunStatus.QUEUED.value]
    query = sa.select(RUNS.c.id).where(
        RUNS.c.repo_id == repo_id,
        RUNS.c.trigger == Trigger.PULL_REQUEST.value,
        RUNS.c.pr_provider == provider,
        RUNS.c.pull_request == number,
        RUNS.c.commit_sha != head,
        RUNS.c.status.in_(list(dict.fromkeys(str(s) for s in statuses))),
    )
    return list(conn.execute(query.order_by(RUNS.c.created_at, RUNS.c.id)).scalars())


def last_seen(engine: DbEngine, repo_id: int, provider: str, number: int) -> tuple[bool, str | None] | None:
    """What the pull request's newest run recorded: whether it withheld secrets (it came from a fork) and the base
    branch (from its `PullRequest` condition); None when it never ran."""
    query = (
        sa.select(RUNS.c.secrets_withheld, RUNS.c.conditions)
        .where(
            RUNS.c.repo_id == repo_id,
            RUNS.c.trigger == Trigger.PULL_REQUEST.value,
            RUNS.c.pr_provider == provider,
            RUNS.c.pull_request == number,
        )
        .order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc())
        .limit(1)
    )
    with reading(engine) as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    condition: dict[str, Any] = next((c for c in row.conditions or [] if c.get("type") == "PullRequest"), {})
    base = condition.get("base_branch")
    return bool(row.secrets_withheld), base if isinstance(base, str) else None
