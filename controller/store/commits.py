"""Commits as sync records them: one row per (repository, commit), each sighting told by a `commit.seen` event.

A commit can be recorded twice (absorbed by one push, then processed when a force push makes it the tip again; or
a sync killed after recording it and resumed), so the row is upserted: the first sighting's time and metadata stay,
the latest validation wins. The write goes into the caller's transaction, with the runs the commit starts and the
repository's new `last_seen_sha` (see `odin.controller.sync`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from odin.controller.store.repositories import append_event
from odin.controller.store.tables import COMMITS
from odin.controller.store.types import utcnow
from odin.controller.store.upsert import insert_on_conflict

_NAME_CHARS = 500
"""Author names and e-mails are cut to this length (the columns' width on Postgres)."""


@dataclass(frozen=True, slots=True)
class SeenCommit:
    """One commit as sync judged it. `problems` are already plain dicts (`Problem.to_dict`)."""

    repo_id: int
    sha: str
    branch: str
    parents: Sequence[str]
    author_name: str
    author_email: str
    message: str
    committed_at: datetime
    validation: str  # valid, invalid, skipped, absorbed, baseline
    problems: Sequence[dict[str, Any]]
    pipelines_changed: Sequence[str]
    absorbed_by: str | None = None
    filtered: Sequence[str] = ()  # changed pipelines the commit's .odin.yml filters left out


def record_commit(conn: Connection, seen: SeenCommit) -> dict[str, Any]:
    """Upsert the commit's row and append its `commit.seen` event; returns the event as stored."""
    values: dict[str, Any] = {
        "repo_id": seen.repo_id,
        "sha": seen.sha,
        "branch": seen.branch,
        "parents": list(seen.parents),
        "author_name": seen.author_name[:_NAME_CHARS],
        "author_email": seen.author_email[:_NAME_CHARS],
        "message": seen.message,
        "committed_at": seen.committed_at,
        "seen_at": utcnow(),
        "validation": seen.validation,
        "problems": list(seen.problems),
        "pipelines_changed": list(seen.pipelines_changed),
        "absorbed_by": seen.absorbed_by,
    }
    conn.execute(
        insert_on_conflict(
            COMMITS,
            conn.dialect.name,
            conflict=("repo_id", "sha"),
            values=values,
            update=("validation", "problems", "pipelines_changed", "absorbed_by"),
        )
    )
    warnings = sum(1 for p in values["problems"] if p.get("severity") == "warning")
    data: dict[str, Any] = {
        "validation": seen.validation,
        "pipelines": values["pipelines_changed"],
        "problems": len(values["problems"]) - warnings,  # the errors: what made it invalid
    }
    if warnings:
        data["warnings"] = warnings
    if seen.filtered:
        data["filtered"] = list(seen.filtered)
    return append_event(conn, seen.repo_id, "commit.seen", data, commit_sha=seen.sha)
