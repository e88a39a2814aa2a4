"""Registering, changing and removing a repository through `/v1/repos` is followed at once on the replica that served
the request, touching only that repository: the others' followed state (their pollers) is left alone, and a
registration another replica wrote is left to the periodic refresh (`Controller.refresh_repositories`), which is what
keeps a request's cost flat however many repositories are followed. In process, over real HTTP, on real git
repositories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from odin.api.auth.api_tokens import create_api_token
from odin.api.auth.users import Role, create_user
from odin.controller import service
from odin.controller.store.repo_records import insert_record
from tests.support.git import GitRemote
from tests.webhooks.conftest import OdinFactory
from tests.webhooks.support import HELLO


def remote_at(tmp_path: Path, name: str) -> GitRemote:
    remote = GitRemote.create(tmp_path / name)
    remote.commit({f"{name}/main.yml": HELLO.format(name=name, marker="v1")}, "Seed")
    return remote


def test_a_registration_change_touches_only_its_own_repository(
    odin_factory: OdinFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No periodic refresh during the test: whatever is followed below was followed by the request itself.
    monkeypatch.setattr(service, "REPOS_REFRESH", 3600.0)
    odin = odin_factory()
    controller = odin.controller
    create_user(controller.db, "root", "root-password-0123456789", Role.ADMIN)
    token, _ = create_api_token(controller.db, "root", "test", Role.ADMIN)
    headers = {"Authorization": f"Bearer {token}"}

    def call(method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return odin.http.request(method, path, json=body, headers=headers)

    def register(name: str) -> None:
        body = {"name": name, "url": remote_at(tmp_path, name).file_url, "poll_interval": 3600.0}
        r = call("POST", "/v1/repos", body)
        assert r.status_code == 201, r.text

    register("first")
    first = controller.repos["first"]  # followed when the answer came, not some time later
    assert first.poller.request(), "and its poller runs (this replica leads)"

    # Another replica registers a repository: its row is in the store, this replica has not read it.
    values = {"url": remote_at(tmp_path, "elsewhere").file_url, "branch": "main", "poll_interval": 3600.0}
    insert_record(controller.db, "elsewhere", values, by="another replica")

    register("second")
    second = controller.repos["second"]
    assert second.poller.request()
    assert controller.repos["first"] is first and first.poller.request(), "the others are left as they were"
    assert "elsewhere" not in controller.repos, "only the registered repository was read"

    r = call("PATCH", "/v1/repos/second", {"poll_interval": 1800.0})
    assert r.status_code == 200, r.text
    changed = controller.repos["second"]
    assert changed is not second and changed.poller.request(), "a change follows it anew, at once"
    assert not second.poller.request(), "its old poller is stopped"
    assert controller.repos["first"] is first and first.poller.request()

    r = call("DELETE", "/v1/repos/second")
    assert r.status_code == 200, r.text
    assert "second" not in controller.repos and not changed.poller.request(), "removed: stopped at once"
    assert controller.repos["first"] is first and first.poller.request()

    # The periodic full refresh (every REPOS_REFRESH seconds) is how another replica's registration gets followed.
    controller.refresh_repositories()
    assert controller.repos["elsewhere"].poller.request()
    assert controller.repos["first"] is first, "the full refresh leaves unchanged repositories alone too"
