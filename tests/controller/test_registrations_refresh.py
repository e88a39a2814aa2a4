"""The periodic look at the registrations (`Controller.refresh_if_changed`, every `REPOS_REFRESH` seconds on every
replica): one read of the registrations' version while nothing changed, every registration read when another replica
(or anything that writes through the store) moved it, every registration read anyway once `REPOS_FULL_REFRESH` has
passed (the safety net for a writer that did not move it), and a registration that could not be followed tried
again at each look. Two controllers on one database are two replicas; on SQLite and Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from odin.controller import service
from odin.controller.service import Controller
from odin.controller.settings import Settings
from odin.controller.store.repo_records import insert_record, remove_record, update_record
from odin.controller.store.tables import REPOSITORIES, STORE_VERSIONS
from tests.support.git import GitRemote

HELLO = "name: hello\ntasks:\n  - {name: hi, image: busybox, command: [echo, hi]}\n"


@contextmanager
def statements(controller: Controller) -> Iterator[list[str]]:
    """The SQL statements the controller's engine sends meanwhile (as tests/store/test_query_plans.py counts)."""
    seen: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, _parameters: Any, _ctx: Any, _many: bool) -> None:
        seen.append(" ".join(statement.split()))

    sa.event.listen(controller.db, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(controller.db, "before_cursor_execute", record)


@pytest.fixture
def replicas(db_url: str, tmp_path: Path) -> Iterator[tuple[Controller, Controller]]:
    """Two replicas on one store, not started: no poller runs, the looks below are the only ones."""
    one = Controller(Settings(data_dir=tmp_path / "one", database_url=db_url))
    two = Controller(Settings(data_dir=tmp_path / "two", database_url=db_url))
    try:
        yield one, two
    finally:
        one.stop()
        two.stop()


def remote(tmp_path: Path, name: str) -> GitRemote:
    found = GitRemote.create(tmp_path / "remotes" / name)
    found.commit({"hello/main.yml": HELLO}, "Seed")
    return found


def test_a_look_with_nothing_changed_reads_the_version_only(
    replicas: tuple[Controller, Controller], tmp_path: Path
) -> None:
    one, two = replicas
    values = {"url": remote(tmp_path, "ml").url, "branch": "main", "poll_interval": 3600.0}
    insert_record(two.db, "ml", values, by="replica two")
    assert one.refresh_if_changed(), "the version moved: every registration read"
    followed = one.repos["ml"]

    with statements(one) as seen:
        assert not one.refresh_if_changed()
    assert len(seen) == 1, seen
    assert "store_versions" in seen[0] and "repositories" not in seen[0]
    assert one.repos["ml"] is followed


def test_another_replicas_registration_change_and_removal_are_followed_at_the_next_look(
    replicas: tuple[Controller, Controller], tmp_path: Path
) -> None:
    one, two = replicas
    values = {"url": remote(tmp_path, "ml").url, "branch": "main", "poll_interval": 3600.0}
    insert_record(two.db, "ml", values, by="replica two")
    two.refresh_repository("ml")  # what the replica that served the POST does
    assert "ml" not in one.repos
    assert one.refresh_if_changed()
    first = one.repos["ml"]
    assert first.url == values["url"]
    assert not one.refresh_if_changed()

    update_record(two.db, "ml", {"poll_interval": 1800.0}, by="replica two")
    assert one.refresh_if_changed()
    changed = one.repos["ml"]
    assert changed is not first, "followed anew with the new settings"

    update_record(two.db, "ml", {"retention_keep_runs": 5}, by="replica two")
    with statements(one) as seen:
        assert not one.refresh_if_changed(), "retention is not what the controller follows: nothing to read"
    assert len(seen) == 1 and one.repos["ml"] is changed

    update_record(two.db, "ml", {"enabled": False}, by="replica two")
    assert one.refresh_if_changed()
    assert "ml" not in one.repos, "disabled: no longer followed"
    update_record(two.db, "ml", {"enabled": True}, by="replica two")
    assert one.refresh_if_changed()
    assert "ml" in one.repos

    remove_record(two.db, "ml", by="replica two")
    assert one.refresh_if_changed()
    assert "ml" not in one.repos
    assert not one.refresh_if_changed()


def test_a_change_that_did_not_move_the_version_is_followed_at_the_next_full_read(
    replicas: tuple[Controller, Controller], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The safety net: a row changed by a writer that does not move the version (an older replica during a rolling
    upgrade, a hand edit) is followed once `REPOS_FULL_REFRESH` has passed since the last full read."""
    one, _ = replicas
    values = {"url": remote(tmp_path, "ml").url, "branch": "main", "poll_interval": 3600.0}
    insert_record(one.db, "ml", values, by="test")
    assert one.refresh_if_changed()
    first = one.repos["ml"]
    with one.db.begin() as conn:  # no bump
        conn.execute(REPOSITORIES.update().where(REPOSITORIES.c.name == "ml").values(poll_interval=60.0))
    assert not one.refresh_if_changed()
    assert one.repos["ml"] is first, "not seen before the full read is due"

    monkeypatch.setattr(service, "REPOS_FULL_REFRESH", 0.0)
    assert one.refresh_if_changed()
    assert one.repos["ml"] is not first, "followed anew with the new poll interval"


def test_any_other_version_than_the_one_kept_is_a_change(
    replicas: tuple[Controller, Controller], tmp_path: Path
) -> None:
    """The look compares for equality, not order: a version row gone or set back (a restore of the database) reads
    every registration too."""
    one, two = replicas
    insert_record(two.db, "ml", {"url": remote(tmp_path, "ml").url, "branch": "main"}, by="replica two")
    assert one.refresh_if_changed()
    with one.db.begin() as conn:
        conn.execute(STORE_VERSIONS.delete())
    assert one.refresh_if_changed(), "the version differs from the one kept: read again"
    assert not one.refresh_if_changed()


def test_a_registration_that_could_not_be_followed_is_tried_again_at_each_look(
    replicas: tuple[Controller, Controller], tmp_path: Path
) -> None:
    one, two = replicas
    token = tmp_path / "token"
    values = {"url": remote(tmp_path, "ml").url, "branch": "main", "credentials_ref": f"file:{token}"}
    insert_record(two.db, "ml", values, by="replica two")
    assert one.refresh_if_changed()
    assert "ml" not in one.repos, "its token file is missing"

    token.write_text("secret-token\n")
    with statements(one) as seen:
        assert not one.refresh_if_changed(), "the version did not move: only that registration is read"
    assert "ml" in one.repos
    assert not [s for s in seen if "FROM repositories" in s and "repositories.name =" not in s], "no full read"
    with statements(one) as seen:
        assert not one.refresh_if_changed()
    assert len(seen) == 1, "followed now: nothing more to try"
