"""Followed repositories as data (issue 13 item 1): register, list, read, update and remove them, each change audited.

A registration is a row of `repositories` with `origin = 'api'`; the repository `ODIN_REPO` names is imported at every
start (`repositories.follow_repository`, `origin = 'settings'`) and is changed through the settings, not here.
Removing a repository keeps its row (marked `removed_at`, disabled), so the runs, commits and events that point at it
stay readable; its name stays taken. Every change appends a `repo.added` / `repo.updated` / `repo.removed` event,
naming who made it, in the transaction that makes it: the audit trail is the events table.

Validation of the values (URL, patterns, references) is the controller's (`odin.controller.repo_specs`); this module
only stores what it is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from odin.controller.store.db import DbEngine, reading, transaction
from odin.controller.store.repositories import append_event
from odin.controller.store.tables import REPOSITORIES
from odin.controller.store.types import utcnow
from odin.controller.store.versions import REGISTRATIONS, bump

REPOS = REPOSITORIES

FOLLOWED_FIELDS = (
    "url",
    "branch",
    "branches",
    "credentials_ref",
    "webhook_secret_ref",
    "poll_interval",
    "run_policy",
    "namespace",
    "tags",
    "pull_requests",
    "pr_approvers",
)
"""What the controller builds a registered repository's mirror, sync and poller from (its fingerprint, compared by
`Controller.refresh_repositories`). A change to one of these or to whether it is followed (`enabled`, `removed_at`)
moves the registrations' version (`store.versions.REGISTRATIONS`); the others (retention) do not."""

EDITABLE = frozenset({*FOLLOWED_FIELDS, "enabled", "retention_keep_runs", "retention_keep_days"})
"""The columns a registration sets and an update may change."""

_MOVES_VERSION = frozenset({*FOLLOWED_FIELDS, "enabled"})


class RepoNotFound(LookupError):
    """No repository of that name (answered 404)."""


class RepoExists(Exception):
    """The name is taken, by a followed or a removed repository (answered 409)."""


class RepoManagedBySettings(Exception):
    """The repository comes from `ODIN_REPO`: it changes with the settings (answered 409)."""


@dataclass(frozen=True, slots=True)
class RepoRecord:
    id: int
    name: str
    url: str
    branch: str
    branches: tuple[str, ...]
    tags: tuple[str, ...]
    credentials_ref: str | None
    webhook_secret_ref: str | None
    poll_interval: float
    run_policy: str
    namespace: str | None
    enabled: bool
    retention_keep_runs: int | None
    retention_keep_days: float | None
    removed_at: datetime | None
    origin: str
    conditions: Sequence[Mapping[str, Any]]
    last_seen_sha: str | None
    last_fetch_at: datetime | None
    created_at: datetime
    pull_requests: str = "off"
    pr_approvers: tuple[str, ...] = ()

    @property
    def followed(self) -> bool:
        return self.enabled and self.removed_at is None


def _record(row: Any) -> RepoRecord:
    return RepoRecord(
        id=int(row.id),
        name=row.name,
        url=row.url,
        branch=row.branch,
        branches=tuple(row.branches or [row.branch]),
        tags=tuple(row.tags or ()),
        credentials_ref=row.credentials_ref,
        webhook_secret_ref=row.webhook_secret_ref,
        poll_interval=float(row.poll_interval),
        run_policy=row.run_policy,
        namespace=row.namespace,
        enabled=bool(row.enabled),
        retention_keep_runs=row.retention_keep_runs,
        retention_keep_days=row.retention_keep_days,
        removed_at=row.removed_at,
        origin=row.origin,
        conditions=row.conditions or [],
        last_seen_sha=row.last_seen_sha,
        last_fetch_at=row.last_fetch_at,
        created_at=row.created_at,
        pull_requests=row.pull_requests,
        pr_approvers=tuple(row.pr_approvers or ()),
    )


def list_records(engine: DbEngine, *, include_removed: bool = False) -> list[RepoRecord]:
    """Every repository by name; removed ones only when asked for."""
    query = sa.select(REPOS).order_by(REPOS.c.name)
    if not include_removed:
        query = query.where(REPOS.c.removed_at.is_(None))
    with reading(engine) as conn:
        return [_record(row) for row in conn.execute(query)]


def registered(engine: DbEngine) -> list[RepoRecord]:
    """The repositories registered through the API that are followed now (enabled, not removed)."""
    query = sa.select(REPOS).where(REPOS.c.origin == "api", REPOS.c.removed_at.is_(None), REPOS.c.enabled.is_(True))
    with reading(engine) as conn:
        return [_record(row) for row in conn.execute(query.order_by(REPOS.c.id))]


def registration(engine: DbEngine, name: str) -> RepoRecord | None:
    """The repository registered through the API as `name` if it is followed now (enabled, not removed), else None:
    one registration read without the others, so that following one change costs the same however many there are."""
    query = sa.select(REPOS).where(
        REPOS.c.name == name, REPOS.c.origin == "api", REPOS.c.removed_at.is_(None), REPOS.c.enabled.is_(True)
    )
    with reading(engine) as conn:
        row = conn.execute(query).first()
    return None if row is None else _record(row)


def get_record(engine: DbEngine, name: str) -> RepoRecord:
    """The repository named `name` (removed ones included: their history is still there). Raises `RepoNotFound`."""
    with reading(engine) as conn:
        row = conn.execute(sa.select(REPOS).where(REPOS.c.name == name)).first()
    if row is None:
        raise RepoNotFound(f"no repository named {name!r} (odinctl repos list shows them)")
    return _record(row)


def insert_record(engine: DbEngine, name: str, values: Mapping[str, Any], *, by: str | None) -> RepoRecord:
    """Register a repository; raises `RepoExists` when the name is taken (removed repositories keep theirs)."""
    columns = {k: v for k, v in values.items() if k in EDITABLE}
    try:
        with transaction(engine) as conn:
            repo_id = conn.execute(
                REPOS.insert().values(name=name, conditions=[], origin="api", **columns).returning(REPOS.c.id)
            ).scalar_one()
            append_event(conn, int(repo_id), "repo.added", {"by": by, "name": name, **_audited(columns)})
            bump(conn, REGISTRATIONS)
    except IntegrityError:
        raise RepoExists(
            f"a repository named {name!r} exists already (removed repositories keep their name and history); "
            "choose another name"
        ) from None
    return get_record(engine, name)


def update_record(engine: DbEngine, name: str, changes: Mapping[str, Any], *, by: str | None) -> RepoRecord:
    """Change a registration; a new URL or branch starts that repository afresh (its baseline is cleared, as
    `follow_repository` does). Raises `RepoNotFound`, `RepoManagedBySettings`."""
    columns = {k: v for k, v in changes.items() if k in EDITABLE}
    with transaction(engine) as conn:
        row = _editable_row(conn, name)
        changed = {k: v for k, v in columns.items() if getattr(row, k) != v}
        if changed:
            values = dict(changed)
            if "url" in changed or "branch" in changed:
                values["last_seen_sha"] = None
            if "url" in changed or "tags" in changed:
                values["tags_seen"] = None  # the next listing of the remote's tags is a baseline
            conn.execute(REPOS.update().where(REPOS.c.id == row.id).values(**values))
            append_event(conn, int(row.id), "repo.updated", {"by": by, "name": name, **_audited(changed)})
            if _MOVES_VERSION.intersection(changed):
                bump(conn, REGISTRATIONS)
    return get_record(engine, name)


def remove_record(engine: DbEngine, name: str, *, by: str | None) -> RepoRecord:
    """Stop following a repository for good, keeping its row and history. Raises `RepoNotFound` (also for one
    removed already), `RepoManagedBySettings`."""
    with transaction(engine) as conn:
        row = _editable_row(conn, name)
        conn.execute(REPOS.update().where(REPOS.c.id == row.id).values(enabled=False, removed_at=utcnow()))
        append_event(conn, int(row.id), "repo.removed", {"by": by, "name": name})
        bump(conn, REGISTRATIONS)
    return get_record(engine, name)


def tags_seen(engine: DbEngine, repo_id: int) -> dict[str, str] | None:
    """The remote's tags at the last listing, name -> commit; None when they were never listed (a baseline next)."""
    with reading(engine) as conn:
        seen = conn.execute(sa.select(REPOS.c.tags_seen).where(REPOS.c.id == repo_id)).scalar()
    return None if seen is None else dict(seen)


def record_tags_seen(engine: DbEngine, repo_id: int, tags: Mapping[str, str]) -> None:
    with transaction(engine) as conn:
        conn.execute(REPOS.update().where(REPOS.c.id == repo_id).values(tags_seen=dict(tags)))


def _editable_row(conn: sa.Connection, name: str) -> Any:
    row = conn.execute(sa.select(REPOS).where(REPOS.c.name == name, REPOS.c.removed_at.is_(None))).first()
    if row is None:
        raise RepoNotFound(f"no followed repository named {name!r} (odinctl repos list shows them)")
    if row.origin != "api":
        raise RepoManagedBySettings(
            f"repository {name!r} is the one ODIN_REPO names: change it through the settings (ODIN_REPO, "
            "ODIN_BRANCH...), not through the API"
        )
    return row


def _audited(columns: Mapping[str, Any]) -> dict[str, Any]:
    """What an event records of a change: every value (references are not secrets), lists as lists."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in columns.items()}
