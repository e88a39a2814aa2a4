"""Branches by pattern (issue 13 item 2), in process on real git repositories: the further branches a repository's
patterns match are found after a sync of its own branch, each synced from its own baseline with its runs recording
the branch, `.odin.yml` filters read per branch, and a branch deleted from the remote stops being followed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from odin.controller.branches import BranchFollowers
from odin.controller.git.mirror import Mirror
from odin.controller.poller import RepoPoller
from odin.controller.repo_specs import matches_branch
from odin.controller.store.models import REPO_BRANCHES
from odin.controller.store.repositories import follow_repository
from odin.controller.store.runs import RUNS
from odin.controller.sync import RepoSync
from tests.support.git import GitRemote
from tests.support.wait import wait_until

HELLO = "name: hello\ntasks:\n  - {{name: greet, image: busybox, command: [echo, {word}]}}\n"


def test_patterns_match_branch_names_like_fnmatch() -> None:
    patterns = ["main", "release/*", "hotfix-?"]
    assert matches_branch(patterns, "release/1.2") and matches_branch(patterns, "release/a/b")
    assert matches_branch(patterns, "hotfix-1") and not matches_branch(patterns, "hotfix-12")
    assert not matches_branch(patterns, "Release/1") and not matches_branch(patterns, "feature/x")


class Followed:
    """A repository following `main` and `release/*`: its own branch's sync and the further branches' pollers."""

    def __init__(self, db: Engine, remote: GitRemote, tmp: Path) -> None:
        self.db = db
        self.repo_id = follow_repository(db, "r", url=remote.url, branch="main").repo_id
        self.cache, self.trees = tmp / "cache", tmp / "trees"
        self.mirror = Mirror(remote.url, self.cache, branch="main")
        self.own = RepoSync(db, self.repo_id, self.mirror, branch="main", trees_dir=self.trees)
        self.followers = BranchFollowers(
            repo_id=self.repo_id, primary="main", patterns=["main", "release/*"], mirror=self.mirror, make=self._poller
        )

    def _poller(self, branch: str) -> RepoPoller:
        mirror = Mirror(self.mirror.url, self.cache, branch=branch)
        sync = RepoSync(self.db, self.repo_id, mirror, branch=branch, trees_dir=self.trees, further=True)
        return RepoPoller(sync, interval=0.05)

    def sync(self) -> None:
        self.followers.discover(self.own.sync())

    def runs(self) -> dict[str, Any]:
        with self.db.connect() as conn:
            return {r.commit_sha: r for r in conn.execute(sa.select(RUNS).where(RUNS.c.repo_id == self.repo_id))}

    def branch_row(self, branch: str) -> Any:
        with self.db.connect() as conn:
            where = (REPO_BRANCHES.c.repo_id == self.repo_id) & (REPO_BRANCHES.c.branch == branch)
            return conn.execute(sa.select(REPO_BRANCHES).where(where)).first()


def test_further_branches_are_followed_from_their_baseline_and_dropped_when_deleted(
    db: Engine, git_remote: GitRemote, tmp_path: Path
) -> None:
    only_releases = "version: 1\npipelines:\n  hello:\n    branches: ['release/*']\n"
    git_remote.commit({"hello/main.yml": HELLO.format(word="one"), ".odin.yml": only_releases}, "Seed")
    git_remote.create_branch("release/1")
    git_remote.create_branch("feature/x")
    repo = Followed(db, git_remote, tmp_path)
    try:
        repo.sync()
        assert repo.followers.branches == ["release/1"]
        baseline = git_remote.remote_tip("release/1")
        wait_until(lambda: (row := repo.branch_row("release/1")) and row.last_seen_sha == baseline, 10,
                   message="the branch's baseline")  # fmt: skip
        assert repo.runs() == {}  # a branch's first sight starts nothing

        # .odin.yml lets `hello` run on release branches only: filters are read with the branch being synced
        on_main = git_remote.commit({"hello/main.yml": HELLO.format(word="main")}, branch="main")
        repo.sync()
        sha = git_remote.commit({"hello/main.yml": HELLO.format(word="two")}, branch="release/1")
        run = wait_until(lambda: repo.runs().get(sha), 10, message="the release branch's run")
        assert on_main not in repo.runs()
        assert (run.branch, run.pipeline) == ("release/1", "hello")
        assert repo.branch_row("release/1").last_seen_sha == sha

        git_remote.create_branch("release/2", sha)
        repo.sync()
        assert repo.followers.branches == ["release/1", "release/2"]

        git_remote.delete_remote_branch("release/1")
        repo.sync()
        assert repo.followers.branches == ["release/2"]
        assert repo.followers.poller("release/1") is None
    finally:
        repo.followers.stop()


def test_a_run_on_request_reads_a_further_branch_no_poller_follows_from_a_mirror_of_its_own(
    git_remote: GitRemote, tmp_path: Path
) -> None:
    """A replica that does not lead has no poller of `release/1`, yet starts runs there (the API, any replica):
    the patterns decide, and the remote must have the branch (a broad pattern also matches tags and commit ids,
    which the own branch's launcher resolves)."""
    git_remote.commit({"hello/main.yml": HELLO.format(word="one")}, "Seed")
    git_remote.create_branch("release/1")
    git_remote.tag("release/v1")
    cache = tmp_path / "cache"
    own = Mirror(git_remote.url, cache, branch="main")
    followers = BranchFollowers(
        repo_id=1,
        primary="main",
        patterns=["main", "release/*"],
        mirror=own,
        make=lambda _branch: pytest.fail("no poller is made: nothing here leads"),
        mirror_of=lambda branch: Mirror(git_remote.url, cache, branch=branch),
    )
    mirror = followers.mirror_for("release/1")
    assert mirror is not None and mirror.branch == "release/1"
    assert mirror.fetch().tip == git_remote.remote_tip("release/1")
    assert followers.mirror_for("release/v1") is None, "a tag, not a branch of the remote"
    assert followers.mirror_for("release/2") is None, "no such branch"
    assert followers.mirror_for("main") is None and followers.mirror_for("feature/x") is None
