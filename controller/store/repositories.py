"""Followed repositories: their row (what is followed, how far sync got, its Ready condition) and their events.

The controller registers each repository it follows at start (`follow_repository`); sync then reads where it left
off (`sync_state`), moves `last_seen_sha` forward inside the transaction that records a commit (`advance`), and
records the repository's Ready condition when it changes. Every write here returns the events it appended as
stored, so the caller publishes them once its transaction has committed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from odin.controller.store.db import DbEngine, StoreUnavailable, transaction
from odin.controller.store.tables import EVENTS, REPO_BRANCHES, REPOSITORIES
from odin.controller.store.types import utcnow
from odin.controller.store.versions import REGISTRATIONS, bump

REPOS = REPOSITORIES


@dataclass(frozen=True, slots=True)
class Followed:
    repo_id: int
    reset: bool  # the name now follows another URL or branch: its baseline (`last_seen_sha`) was cleared


def follow_repository(engine: DbEngine, name: str, *, url: str, branch: str, **settings: Any) -> Followed:
    """Register (or update) the repository followed under `name`, in one transaction. `settings` are further
    columns to set (poll interval, run policy, credentials reference). A name that now follows another URL or
    branch starts afresh: its history means nothing there."""
    values: dict[str, Any] = {"url": url, "branch": branch, **settings}
    with transaction(engine) as conn:
        row = conn.execute(
            sa.select(REPOS.c.id, REPOS.c.url, REPOS.c.branch, REPOS.c.origin).where(REPOS.c.name == name)
        ).first()
        if row is None:
            repo_id = conn.execute(
                REPOS.insert().values(name=name, conditions=[], **values).returning(REPOS.c.id)
            ).scalar_one()
            return Followed(int(repo_id), reset=False)
        reset = (row.url, row.branch) != (url, branch)
        if reset:
            values["last_seen_sha"] = None
        conn.execute(REPOS.update().where(REPOS.c.id == row.id).values(**values))
        if row.origin == "api":  # a registered row rewritten from the settings: the replicas' refresh must see it
            bump(conn, REGISTRATIONS)
        return Followed(int(row.id), reset=reset)


@dataclass(frozen=True, slots=True)
class SyncState:
    last_seen_sha: str | None
    conditions: Sequence[Mapping[str, Any]]


def sync_state(engine: DbEngine, repo_id: int) -> SyncState:
    """Where sync left off: the last commit it recorded, and the repository's conditions."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(REPOS.c.last_seen_sha, REPOS.c.conditions).where(REPOS.c.id == repo_id)).one()
    return SyncState(row.last_seen_sha, row.conditions or [])


def advance(conn: Connection, repo_id: int, sha: str) -> None:
    """Sync has recorded `sha` (inside the caller's transaction): the next sync starts after it."""
    conn.execute(REPOS.update().where(REPOS.c.id == repo_id).values(last_seen_sha=sha, last_fetch_at=utcnow()))


def record_condition(engine: DbEngine, repo_id: int, condition: Mapping[str, Any]) -> dict[str, Any]:
    """Replace the repository's conditions with `condition` and append a `repo.condition` event, in one
    transaction; returns the event as stored."""
    try:
        with transaction(engine) as conn:
            conn.execute(REPOS.update().where(REPOS.c.id == repo_id).values(conditions=[dict(condition)]))
            return append_event(conn, repo_id, "repo.condition", dict(condition))
    except OperationalError as e:
        raise StoreUnavailable(f"cannot record repository status: {e.orig}") from e


# -- further branches (a pattern's matches besides the repository's own branch; repo_branches) -----------------------
def ensure_branch(engine: DbEngine, repo_id: int, branch: str) -> None:
    """Make sure the branch has its row (where its sync left off); a second caller's insert is a no-op."""
    with engine.connect() as conn:
        exists = conn.execute(
            sa.select(REPO_BRANCHES.c.id).where(REPO_BRANCHES.c.repo_id == repo_id, REPO_BRANCHES.c.branch == branch)
        ).first()
    if exists is not None:
        return
    try:
        with transaction(engine) as conn:
            conn.execute(
                REPO_BRANCHES.insert().values(repo_id=repo_id, branch=branch, conditions=[], updated_at=utcnow())
            )
    except IntegrityError:
        pass  # inserted by another replica meanwhile


def branch_sync_state(engine: DbEngine, repo_id: int, branch: str) -> SyncState:
    """Where sync left off on a further branch (`ensure_branch` first)."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(REPO_BRANCHES.c.last_seen_sha, REPO_BRANCHES.c.conditions).where(
                REPO_BRANCHES.c.repo_id == repo_id, REPO_BRANCHES.c.branch == branch
            )
        ).first()
    return SyncState(None, []) if row is None else SyncState(row.last_seen_sha, row.conditions or [])


def advance_branch(conn: Connection, repo_id: int, branch: str, sha: str) -> None:
    """Sync has recorded `sha` on a further branch (inside the caller's transaction)."""
    where = (REPO_BRANCHES.c.repo_id == repo_id) & (REPO_BRANCHES.c.branch == branch)
    conn.execute(REPO_BRANCHES.update().where(where).values(last_seen_sha=sha, updated_at=utcnow()))


def record_branch_condition(
    engine: DbEngine, repo_id: int, branch: str, condition: Mapping[str, Any]
) -> dict[str, Any]:
    """A further branch's Ready condition, with a `repo.condition` event naming the branch; returns the event."""
    where = (REPO_BRANCHES.c.repo_id == repo_id) & (REPO_BRANCHES.c.branch == branch)
    try:
        with transaction(engine) as conn:
            conn.execute(REPO_BRANCHES.update().where(where).values(conditions=[dict(condition)], updated_at=utcnow()))
            return append_event(conn, repo_id, "repo.condition", {**condition, "branch": branch})
    except OperationalError as e:
        raise StoreUnavailable(f"cannot record repository status: {e.orig}") from e


def branch_conditions(engine: DbEngine, repo_id: int) -> dict[str, list[dict[str, Any]]]:
    """Each further branch's conditions (for the API's view of a repository)."""
    query = sa.select(REPO_BRANCHES.c.branch, REPO_BRANCHES.c.conditions).where(REPO_BRANCHES.c.repo_id == repo_id)
    with engine.connect() as conn:
        return {row.branch: list(row.conditions or []) for row in conn.execute(query.order_by(REPO_BRANCHES.c.branch))}


def record_event(engine: DbEngine, repo_id: int, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """Append one event about the repository in a transaction of its own; returns it as stored."""
    with transaction(engine) as conn:
        return append_event(conn, repo_id, kind, data)


def append_event(
    conn: Connection, repo_id: int, kind: str, data: dict[str, Any], *, commit_sha: str | None = None
) -> dict[str, Any]:
    """Append an event about the repository inside the caller's transaction; returns it as stored (with its id),
    to publish once the transaction has committed."""
    event: dict[str, Any] = {"kind": kind, "repo_id": repo_id, "commit_sha": commit_sha, "run_id": None}
    event.update(task=None, time=utcnow(), data=data)
    event["id"] = conn.execute(EVENTS.insert().values(**event).returning(EVENTS.c.id)).scalar_one()
    return event
