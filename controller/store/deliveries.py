"""The record of webhook deliveries, and the database's word on which copy of a delivery came first.

`record` inserts with ON CONFLICT DO NOTHING on UNIQUE (provider, delivery_id): of any number of copies racing in
(a provider's retry while the first attempt is still being answered, redeliveries, several replicas), exactly one gets
a new row; the others learn they are duplicates, and of what. A store that cannot be written raises
`StoreUnavailable`, which the receiver (`odin.webhooks.receiver`) answers with 503: a provider retries that, and
nothing is half-recorded.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from odin.controller.store.db import DbEngine, transaction
from odin.controller.store.tables import EVENTS, WEBHOOK_DELIVERIES
from odin.controller.store.types import utcnow
from odin.controller.store.upsert import insert_on_conflict

DELIVERIES = WEBHOOK_DELIVERIES


class Outcome:
    ACCEPTED = "accepted"
    IGNORED = "ignored"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Delivery:
    provider: str
    delivery_id: str
    event: str
    outcome: str
    repo_id: int | None = None
    ref: str | None = None
    sha: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Previous:
    """The delivery a duplicate is a copy of."""

    id: int
    outcome: str
    reason: str | None
    run_id: str | None
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Recorded:
    id: int
    duplicate_of: Previous | None = None


def record(db: DbEngine, delivery: Delivery) -> Recorded:
    """Insert the delivery unless the same (provider, delivery_id) is already recorded."""
    values: dict[str, Any] = {
        "provider": delivery.provider,
        "delivery_id": delivery.delivery_id,
        "repo_id": delivery.repo_id,
        "event": delivery.event[:100],
        "ref": delivery.ref[:255] if delivery.ref else None,
        "sha": delivery.sha,
        "outcome": delivery.outcome,
        "reason": delivery.reason,
        "received_at": utcnow(),
    }
    with transaction(db) as conn:
        new_id = conn.execute(_insert(conn.dialect.name), values).scalar()
        if new_id is not None:
            return Recorded(int(new_id))
        row = conn.execute(
            sa.select(
                DELIVERIES.c.id,
                DELIVERIES.c.outcome,
                DELIVERIES.c.reason,
                DELIVERIES.c.run_id,
                DELIVERIES.c.received_at,
            ).where(DELIVERIES.c.provider == delivery.provider, DELIVERIES.c.delivery_id == delivery.delivery_id)
        ).one()
    return Recorded(row.id, Previous(row.id, row.outcome, row.reason, row.run_id, row.received_at))


@functools.cache
def _insert(dialect: str) -> sa.Insert:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING id, built once: this is every delivery's hot path."""
    columns = ("provider", "delivery_id", "repo_id", "event", "ref", "sha", "outcome", "reason", "received_at")
    values: dict[str, Any] = {c: sa.bindparam(c) for c in columns}
    stmt = insert_on_conflict(DELIVERIES, dialect, conflict=("provider", "delivery_id"), values=values)
    return stmt.returning(DELIVERIES.c.id)


def update(db: DbEngine, delivery_row: int, **values: Any) -> None:
    with transaction(db) as conn:
        conn.execute(DELIVERIES.update().where(DELIVERIES.c.id == delivery_row).values(**values))


def forget(db: DbEngine, delivery_row: int) -> None:
    """Remove a delivery whose work could not even start (store or remote briefly down), so its retry is not taken
    for a duplicate."""
    with transaction(db) as conn:
        conn.execute(DELIVERIES.delete().where(DELIVERIES.c.id == delivery_row))


def mark_verified(db: DbEngine, found: Iterable[int], missing: Iterable[tuple[int, str]]) -> list[dict[str, Any]]:
    """Record what the sync after some deliveries found: their commits on the remote, or not. A missing commit turns
    the delivery into a rejection, with a `webhook.rejected` event; returns those events as stored, for the bus."""
    found, missing = list(found), list(missing)
    events: list[dict[str, Any]] = []
    with transaction(db) as conn:
        if found:
            conn.execute(DELIVERIES.update().where(DELIVERIES.c.id.in_(found)).values(sha_verified=True))
        for row_id, reason in missing:
            conn.execute(
                DELIVERIES.update()
                .where(DELIVERIES.c.id == row_id)
                .values(sha_verified=False, outcome=Outcome.REJECTED, reason=reason)
            )
            row = conn.execute(sa.select(DELIVERIES).where(DELIVERIES.c.id == row_id)).one()
            event: dict[str, Any] = {
                "kind": "webhook.rejected",
                "time": utcnow(),
                "repo_id": row.repo_id,
                "commit_sha": row.sha,
                "run_id": None,
                "task": None,
                "data": {"provider": row.provider, "delivery": row.delivery_id, "reason": reason},
            }
            event["id"] = conn.execute(EVENTS.insert().values(**event).returning(EVENTS.c.id)).scalar_one()
            events.append(event)
    return events


def prune(db: DbEngine, *, older_than: timedelta) -> int:
    """Delete deliveries received longer ago than `older_than`; returns how many."""
    with transaction(db) as conn:
        res = conn.execute(DELIVERIES.delete().where(DELIVERIES.c.received_at < utcnow() - older_than))
        return int(res.rowcount or 0)
