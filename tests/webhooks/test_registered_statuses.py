"""Commit statuses and checks of repositories registered through the API (issue 13 item 3): each goes to its own
repository's path at the provider its URL names, with its own token read through its `credentials_ref`; a repository
whose provider cannot be told (a plain git URL) gets none.

A real Odin follows the `ODIN_REPO` repository (statuses configured by `ODIN_STATUS_*`) and two registered ones: one
served over smart HTTP by `git http-backend` on the host of `ODIN_STATUS_API_URL` (a self-hosted GitHub, as GitHub
Enterprise serves its repositories and its API from one host), the other a local path. The provider is the local
server shaped like GitHub's Checks API, which holds a token per repository and refuses any other.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from odin.controller.facade import FollowedRepo
from odin.controller.settings import Settings
from odin.controller.store.repo_records import insert_record
from odin.webhooks import notifiers
from odin.webhooks.notifiers.base import CommitStatus, State, StatusTarget
from odin.webhooks.notifiers.github_app import GitHubAppTokens
from odin.webhooks.notifiers.targets import place_of
from tests.support.git import GitRemote
from tests.support.git_http import GitHttpServer
from tests.support.wait import wait_until
from tests.webhooks.conftest import OdinFactory
from tests.webhooks.fake_forges import FakeGitHubChecks
from tests.webhooks.support import HELLO, Odin

TOKEN = "status-token-of-odin-repo"
VISION_TOKEN = "vision-own-token-789"  # the registered repository's: its git token and its statuses'


@pytest.fixture
def github() -> Iterator[FakeGitHubChecks]:
    fake = FakeGitHubChecks(token=TOKEN, repo_tokens={"acme/ml": TOKEN, "acme/remote": VISION_TOKEN}).start()
    yield fake
    fake.stop()


def registered(odin: Odin, name: str, url: str, credentials_ref: str | None = None) -> FollowedRepo:
    """Register a repository as `POST /v1/repos` stores it, follow it, and wait for its first sync (its baseline)."""
    values = {"url": url, "branch": "main", "poll_interval": 3600.0, "credentials_ref": credentials_ref}
    insert_record(odin.controller.db, name, values, by="test")
    odin.controller.refresh_repositories()
    followed = odin.controller.repo(name)
    assert followed.poller.wait_for_syncs(1, 60), f"{name}: first sync"
    return followed


def pushed(remote: GitRemote, followed: FollowedRepo, marker: str) -> str:
    """A new commit of the `vision` pipeline on `remote`, synced by `followed`'s poller; its sha."""
    synced = followed.poller.syncs
    sha = remote.commit({"vision/main.yml": HELLO.format(name="vision", marker=marker)}, f"Change {marker}")
    assert followed.poller.request()
    assert followed.poller.wait_for_syncs(synced + 1, 60)
    return sha


def test_a_registered_repository_gets_its_checks_at_its_own_path_with_its_own_token(
    odin_factory: OdinFactory, github: FakeGitHubChecks, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    served = tmp_path / "served"
    vision = GitRemote.create(served / "acme")  # served as /acme/remote.git: the provider's acme/remote
    vision.commit({"vision/main.yml": HELLO.format(name="vision", marker="v1")}, "Seed")
    plain = GitRemote.create(tmp_path / "plain")
    plain.commit({"vision/main.yml": HELLO.format(name="vision", marker="plain")}, "Seed")
    token_file = tmp_path / "vision-token"
    token_file.write_text(VISION_TOKEN + "\n")

    with GitHttpServer.serving(served) as git:
        git.token = VISION_TOKEN  # a private repository: the same reference reads it
        odin = odin_factory(
            status_provider="github",
            status_api_url=github.url,
            status_token=TOKEN,
            status_repo="acme/ml",
            public_url="https://odin.acme.example",
            git_allow_http=True,
        )
        notifier = notifiers.from_settings(odin.settings, odin.controller)
        assert notifier is not None
        notifier.backoff = replace(notifier.backoff, initial=0.05)
        notifier.start(odin.controller.bus)
        try:
            caplog.set_level(logging.DEBUG, logger="odin.webhooks.status")
            second = registered(odin, "vision", git.url("acme/remote.git"), f"file:{token_file}")
            third = registered(odin, "plain", plain.file_url)

            sha = pushed(vision, second, "v2")
            [run] = wait_until(lambda: odin.runs(sha), 30, message="the registered repository's run")
            assert run.repo_id == second.id
            wait_until(
                lambda: [c["conclusion"] for c in github.named("odin/vision", sha)] == ["success"],
                60,
                message="its check run completed",
            )
            [check] = github.named("odin/vision", sha)
            assert check["external_id"] == run.id
            assert check["details_url"] == f"https://odin.acme.example/console/runs/{run.id}"
            assert [c["conclusion"] for c in github.named("odin/validation", sha)] == ["success"]
            about = [h for h in github.hits if sha in h.path or sha in h.raw.decode()]
            assert about and all(h.path.startswith("/repos/acme/remote/") for h in about), [h.path for h in about]
            assert {h.headers["authorization"] for h in about} == {f"Bearer {VISION_TOKEN}"}
            assert all(h.answered < 300 for h in about)

            other = pushed(plain, third, "plain-v2")
            [plain_run] = wait_until(lambda: odin.runs(other), 30, message="the plain repository's run")
            wait_until(lambda: odin.runs(other)[0].status == "succeeded", 60, message="the plain run finished")
            assert plain_run.repo_id == third.id
            assert not [h for h in github.hits if other in h.path or other in h.raw.decode()]
            assert "repository plain" in caplog.text and "no provider can be told" in caplog.text
            assert not odin.events("report.failed")
        finally:
            notifier.stop()


def test_the_provider_is_told_from_the_url() -> None:
    def told(url: str) -> tuple[str, str, str] | None:
        place = place_of(url, provider="gitea", api_url="https://git.acme.example/api/v1/")
        return None if place is None else (place.provider, place.api_url, place.repository)

    assert told("https://github.com/Acme/Vision.git") == ("github", "https://api.github.com", "acme/vision")
    assert told("git@gitlab.com:acme/ml/vision.git") == ("gitlab", "https://gitlab.com/api/v4", "acme/ml/vision")
    assert told("https://bitbucket.org/acme/vision") == ("bitbucket", "https://api.bitbucket.org/2.0", "acme/vision")
    assert told("ssh://git@git.acme.example:2222/acme/vision.git") == (
        "gitea",
        "https://git.acme.example/api/v1",
        "acme/vision",
    )
    assert told("https://git.other.example/acme/vision.git") is None  # a plain git server
    assert told("file:///srv/git/vision.git") is None
    assert told("/srv/git/vision.git") is None
    assert told("https://github.com/vision.git") is None  # no owner


def test_a_bitbucket_server_repository_is_told_from_its_url_and_builds_link_its_commit_page() -> None:
    """`ODIN_STATUS_PROVIDER=bitbucket-server` on the host of `ODIN_STATUS_API_URL` (given as the server's root or
    its REST API's): a registered repository's clone URL, http (`/scm/...`) or ssh, is there; its builds go to the
    server's build-status API, and without `ODIN_PUBLIC_URL` link the commit's page on the server."""
    api = "https://bitbucket.acme.example/rest/api/1.0"
    sha = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    pages = {
        "https://bitbucket.acme.example/scm/ml/vision.git": "/projects/ML/repos/vision",
        "ssh://git@bitbucket.acme.example:7999/ml/vision.git": "/projects/ML/repos/vision",
        "https://bitbucket.acme.example/scm/~alice/vision.git": "/users/alice/repos/vision",
    }
    for url, page in pages.items():
        place = place_of(url, provider="bitbucket-server", api_url=api)
        assert place is not None and (place.provider, place.api_url) == ("bitbucket-server", api), url
        api_of = notifiers.status_api(place.provider, place.api_url, place.repository)
        request = api_of.request(CommitStatus(sha, "odin/" + "x" * 300, State.TIMED_OUT, "timed out after 2h"), "t")
        assert request.url == f"https://bitbucket.acme.example/rest/build-status/1.0/commits/{sha}"
        assert request.json["url"] == f"https://bitbucket.acme.example{page}/commits/{sha}", url
        assert (request.json["state"], request.json["name"]) == ("FAILED", "odin/" + "x" * 300)
        assert len(request.json["key"]) == 255 and request.json["key"].startswith("odin/xxx")
        assert request.headers == {"Authorization": "Bearer t"}
    assert (
        place_of("https://bitbucket.other.example/scm/ml/vision.git", provider="bitbucket-server", api_url=api) is None
    )


def test_a_registered_repository_reports_with_its_own_reference_else_what_the_settings_give_its_host(
    tmp_path: Path,
) -> None:
    own = tmp_path / "own-token"
    own.write_text("own-token\n")
    key = tmp_path / "deploy-key"  # an SSH URL's reference names a key: never sent as a token
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")

    def repo(repo_id: int, url: str, ref: Path | None = None) -> SimpleNamespace:
        credentials_ref = None if ref is None else f"file:{ref}"
        return SimpleNamespace(id=repo_id, name=f"r{repo_id}", url=url, credentials_ref=credentials_ref, origin="api")

    repos = [
        repo(1, "https://ghe.acme.example/ml/own.git", own),
        repo(2, "https://ghe.acme.example/ml/shared.git"),
        repo(3, "git@ghe.acme.example:ml/keyed.git", key),
        repo(4, "https://github.com/acme/public.git", own),
        repo(5, "https://github.com/acme/tokenless.git"),
        repo(6, "https://git.plain.example/acme/plain.git", own),
    ]
    controller = cast(Any, SimpleNamespace(repos={r.name: r for r in repos}, db=None, executor=None))
    ghe = "https://ghe.acme.example/api/v3"
    settings = Settings(status_provider="github", status_api_url=ghe, status_token=SecretStr("shared-token"))
    notifier = notifiers.from_settings(settings, controller)  # no ODIN_REPO: the registered repositories only
    assert notifier is not None

    def where(repo_id: int) -> tuple[str, str, str] | None:
        target = notifier.targets(repo_id)
        return None if target is None else (target.provider, target.repository, target.token())

    assert where(1) == ("github", "ml/own", "own-token"), "its own reference first"
    assert where(2) == ("github", "ml/shared", "shared-token"), "on ODIN_STATUS_API_URL: ODIN_STATUS_TOKEN"
    assert where(3) == ("github", "ml/keyed", "shared-token"), "a key is not a token"
    assert where(4) == ("github", "acme/public", "own-token")
    assert where(5) is None, "github.com is not ODIN_STATUS_API_URL: the shared token is not sent there"
    assert where(6) is None, "no provider can be told"
    own.write_text("rotated-token\n")
    assert where(1) == ("github", "ml/own", "rotated-token"), "read at each report"
    notifier.targets.close()

    app_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = app_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with_app = notifiers.from_settings(
        Settings(status_provider="github", status_api_url=ghe, status_github_app_id=7, status_github_app_key=pem),
        controller,
    )
    assert with_app is not None
    for repo_id, path in ((1, "ml/own"), (2, "ml/shared")):
        target = with_app.targets(repo_id)
        assert isinstance(target, StatusTarget) and isinstance(target.token, GitHubAppTokens), repo_id
        assert (target.token.repository, target.token.api_url) == (path, ghe), "the App's tokens, for its path"
    public = with_app.targets(4)
    assert public is not None and public.token() == "rotated-token", "another API: its own reference"
    with_app.targets.close()
