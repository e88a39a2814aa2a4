"""A repository's credentials by reference are read again when their secret changes (issue 13): a rotated `file:`
token takes effect at the next fetch, without a restart, against a real git server over HTTP that checks the token
(basic authentication, as GitHub, GitLab and Gitea do for a private repository over https)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from odin.controller.git import AuthenticationFailed, Mirror, SecretUnavailable
from odin.controller.git.credentials import CredentialRefs
from odin.controller.store.repositories import follow_repository, sync_state
from odin.controller.store.runs import RUNS
from odin.controller.sync import RepoSync
from tests.support.git import GitRemote
from tests.support.git_http import GitHttpServer

HELLO = "name: hello\ntasks:\n  - {{name: greet, image: busybox, command: [echo, {word}]}}\n"


def rotate(path: Path, token: str) -> None:
    """As a Kubernetes Secret volume does: the new content in a new file, swapped in atomically."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(token + "\n")
    os.replace(fresh, path)


def test_a_rotated_token_file_is_used_at_the_next_fetch(git_remote: GitRemote, tmp_path: Path) -> None:
    git_remote.commit({"hello/main.yml": HELLO.format(word="one")})
    secret = tmp_path / "token"
    rotate(secret, "first-token")
    with GitHttpServer.serving(git_remote.root) as server:
        server.token = "first-token"
        refs = CredentialRefs(token_ref=f"file:{secret}")
        mirror = Mirror(server.url("remote.git"), tmp_path / "cache", credentials=refs, allow_insecure_http=True)
        assert mirror.fetch().tip == git_remote.remote_tip()

        server.token = "second-token"  # the provider rotated the token; the file still has the old one
        second = git_remote.commit({"hello/main.yml": HELLO.format(word="two")})
        with pytest.raises(AuthenticationFailed) as refused:
            mirror.fetch()
        assert "first-token" not in str(refused.value)

        rotate(secret, "second-token")  # the mounted secret is updated: the same mirror uses it
        assert mirror.fetch().tip == second

        secret.write_text("third-token")  # written in place (same inode): noticed too
        server.token = "third-token"
        third = git_remote.commit({"hello/main.yml": HELLO.format(word="three")})
        assert mirror.fetch().tip == third

        secret.unlink()
        with pytest.raises(SecretUnavailable, match=f"file:{secret}: the file does not exist"):
            mirror.fetch()
        assert "CredentialRefs(file:" in repr(refs) and "token" not in repr(refs).replace(str(secret), "")


def test_a_sync_refused_for_a_stale_secret_recovers_once_the_file_is_rotated(
    db: Engine, git_remote: GitRemote, tmp_path: Path
) -> None:
    """The repository shows Ready=False with why, and the push made meanwhile runs once the secret is right."""
    git_remote.commit({"hello/main.yml": HELLO.format(word="one")})
    secret = tmp_path / "token"
    rotate(secret, "old")
    with GitHttpServer.serving(git_remote.root) as server:
        server.token = "old"
        url = server.url("remote.git")
        repo_id = follow_repository(db, "r", url=url, branch="main").repo_id
        refs = CredentialRefs(token_ref=f"file:{secret}")
        mirror = Mirror(url, tmp_path / "cache", credentials=refs, allow_insecure_http=True)
        sync = RepoSync(db, repo_id, mirror, branch="main", trees_dir=tmp_path / "trees")
        assert sync.sync().error is None  # the baseline

        server.token = "new"
        pushed = git_remote.commit({"hello/main.yml": HELLO.format(word="two")})
        outcome = sync.sync()
        assert isinstance(outcome.error, AuthenticationFailed)
        (ready,) = [c for c in sync_state(db, repo_id).conditions if c["type"] == "Ready"]
        assert (ready["status"], ready["reason"]) == ("False", "AuthenticationFailed")

        rotate(secret, "new")
        assert sync.sync().tip == pushed
        (ready,) = [c for c in sync_state(db, repo_id).conditions if c["type"] == "Ready"]
        assert ready["status"] == "True"
        with db.connect() as conn:
            assert conn.execute(sa.select(RUNS.c.commit_sha)).scalars().all() == [pushed]


def test_a_registered_repositorys_credentials_are_held_by_reference(tmp_path: Path) -> None:
    """What the controller gives a registered repository's mirrors (`record_credentials`): references resolved
    anew after a rotation, checked once at registration so a missing secret is reported at once."""
    from odin.controller.service import record_credentials

    secret = tmp_path / "token"
    rotate(secret, "first")
    refs = record_credentials("https://git.example.com/org/ml.git", f"file:{secret}")
    assert isinstance(refs, CredentialRefs)
    assert refs.current().token == "first"
    rotate(secret, "second")
    assert refs.current().token == "second"
    with pytest.raises(SecretUnavailable, match="file does not exist"):
        record_credentials("https://git.example.com/org/ml.git", f"file:{tmp_path / 'missing'}")
