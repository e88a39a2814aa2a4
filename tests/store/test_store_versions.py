"""The registrations' version (`store.versions`): every write that changes what the controller follows of a registered
repository moves it, in its own transaction, and the writes the controller's refresh ignores leave it alone, so that
each replica's periodic look can read one row instead of every registration (`Controller.refresh_if_changed`). On
SQLite and Postgres. Each writing path has its own assertion: a removed `bump` fails the test that names the path."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from odin.controller.store.db import transaction
from odin.controller.store.repo_records import (
    EDITABLE,
    FOLLOWED_FIELDS,
    insert_record,
    record_tags_seen,
    remove_record,
    update_record,
)
from odin.controller.store.repositories import advance, follow_repository, record_condition
from odin.controller.store.retention import set_policy
from odin.controller.store.tables import REPOSITORIES
from odin.controller.store.versions import REGISTRATIONS, bump, current

VALUES = {"url": "https://git.example.com/ml.git", "branch": "main", "poll_interval": 30.0}

CHANGES: dict[str, Any] = {
    "url": "https://git.example.com/other.git",
    "branch": "dev",
    "branches": ["dev", "release/*"],
    "credentials_ref": "env:ML_TOKEN",
    "webhook_secret_ref": "env:ML_HOOK",
    "poll_interval": 60.0,
    "run_policy": "all",
    "namespace": "ml",
    "tags": ["v*"],
    "pull_requests": "approved",
    "pr_approvers": ["alice"],
    "enabled": False,
    "retention_keep_runs": 10,
    "retention_keep_days": 7.0,
}
"""One new value for every editable column."""


def version(db: Engine) -> int:
    return current(db, REGISTRATIONS)


def moves(db: Engine, write: Callable[[], object]) -> int:
    before = version(db)
    write()
    return version(db) - before


def test_the_version_is_zero_before_any_registration_and_counts_bumps(db: Engine) -> None:
    assert version(db) == 0
    for expected in (1, 2, 3):
        with transaction(db) as conn:
            bump(conn, REGISTRATIONS)
        assert version(db) == expected
    with transaction(db) as conn:
        bump(conn, "something else")  # counters are independent
    assert version(db) == 3


def test_a_bump_rolled_back_with_its_write_is_not_seen(db: Engine) -> None:
    with pytest.raises(RuntimeError), transaction(db) as conn:
        bump(conn, REGISTRATIONS)
        raise RuntimeError("the write failed")
    assert version(db) == 0


def test_registering_moves_the_version(db: Engine) -> None:
    assert moves(db, lambda: insert_record(db, "ml", VALUES, by="alice")) == 1


def test_a_name_taken_does_not_move_the_version(db: Engine) -> None:
    insert_record(db, "ml", VALUES, by="alice")
    before = version(db)
    with pytest.raises(Exception, match="exists already"):
        insert_record(db, "ml", VALUES, by="bob")
    assert version(db) == before


def test_removing_moves_the_version(db: Engine) -> None:
    insert_record(db, "ml", VALUES, by="alice")
    assert moves(db, lambda: remove_record(db, "ml", by="alice")) == 1


@pytest.mark.parametrize("column", sorted(EDITABLE))
def test_an_update_moves_the_version_exactly_when_it_changes_what_is_followed(db: Engine, column: str) -> None:
    insert_record(db, "ml", VALUES, by="alice")
    followed = column in FOLLOWED_FIELDS or column == "enabled"
    assert moves(db, lambda: update_record(db, "ml", {column: CHANGES[column]}, by="alice")) == int(followed)
    assert moves(db, lambda: update_record(db, "ml", {column: CHANGES[column]}, by="alice")) == 0, "no change"


def test_every_editable_column_is_either_followed_or_known_to_be_ignored() -> None:
    """A column added to EDITABLE must be placed: a change the refresh compares moves the version, one it ignores
    does not (and then `Controller._fingerprint` must not read it)."""
    assert set(CHANGES) == EDITABLE
    assert set(FOLLOWED_FIELDS) <= EDITABLE
    assert EDITABLE - set(FOLLOWED_FIELDS) == {"enabled", "retention_keep_runs", "retention_keep_days"}


def test_the_settings_rewriting_a_registered_row_moves_the_version(db: Engine) -> None:
    insert_record(db, "ml", VALUES, by="alice")
    assert moves(db, lambda: follow_repository(db, "ml", url="https://git.example.com/x.git", branch="main")) == 1


def test_the_settings_own_repository_does_not_move_the_version(db: Engine) -> None:
    assert moves(db, lambda: follow_repository(db, "own", url="https://git.example.com/own.git", branch="main")) == 0
    assert moves(db, lambda: follow_repository(db, "own", url="https://git.example.com/new.git", branch="main")) == 0


def test_what_the_refresh_ignores_does_not_move_the_version(db: Engine) -> None:
    repo = insert_record(db, "ml", VALUES, by="alice")
    before = version(db)

    def sync_advances() -> None:
        with transaction(db) as conn:
            advance(conn, repo.id, "a" * 40)

    sync_advances()
    record_condition(db, repo.id, {"type": "Ready", "status": "False", "reason": "RemoteUnreachable"})
    record_tags_seen(db, repo.id, {"v1": "b" * 40})
    set_policy(db, repo.id, keep_runs=5, keep_days=None)
    assert version(db) == before


def test_concurrent_first_bumps_both_count(db: Engine) -> None:
    """The row is created by the first bump (a migration writes no rows): two writers racing to create it both
    count, on Postgres's row lock and SQLite's write lock."""
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def register(n: int) -> None:
        try:
            barrier.wait(10)
            insert_record(db, f"r{n}", VALUES, by="race")
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=register, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert version(db) == 4
    with db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(REPOSITORIES)).scalar() == 4
