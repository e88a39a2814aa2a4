"""Tag patterns (issue 13 item 2), in process on real git repositories: the tags there when a repository starts
following them are its baseline; a new tag a pattern matches runs the pipelines at its commit once, recording the tag,
across restarts and racing replicas; a tag moved to the same commit runs nothing, one moved to a new commit runs once
there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from odin.controller.git.mirror import Mirror
from odin.controller.launcher import RunLauncher
from odin.controller.store.models import EVENTS
from odin.controller.store.repo_records import record_tags_seen, tags_seen
from odin.controller.store.repositories import follow_repository
from odin.controller.store.runs import RUNS
from odin.controller.tags import TagFollower
from tests.support.git import GitRemote

HELLO = "name: hello\ntasks:\n  - {{name: greet, image: busybox, command: [echo, {word}]}}\n"


class Tagged:
    """A repository following the tags `v*`; `restart()` builds its mirror, launcher and follower anew."""

    def __init__(self, db: Engine, remote: GitRemote, tmp: Path) -> None:
        self.db, self.remote, self.tmp = db, remote, tmp
        self.repo_id = follow_repository(db, "r", url=remote.url, branch="main").repo_id
        self.submitted: list[str] = []
        self.restart()

    def restart(self) -> None:
        mirror = Mirror(self.remote.url, self.tmp / "cache", branch="main")
        mirror.fetch()
        launcher = RunLauncher(self.db, self.repo_id, mirror, branch="main", trees_dir=self.tmp / "trees",
                               submit=self.submitted.append)  # fmt: skip
        self.follower = TagFollower(self.db, self.repo_id, patterns=["v*"], mirror=mirror, launcher=launcher)

    def runs(self) -> list[Any]:
        with self.db.connect() as conn:
            query = sa.select(RUNS).where(RUNS.c.repo_id == self.repo_id).order_by(RUNS.c.created_at, RUNS.c.id)
            return list(conn.execute(query))


def test_tags_run_once_per_tag_and_commit_from_their_baseline(
    db: Engine, git_remote: GitRemote, tmp_path: Path
) -> None:
    first = git_remote.commit({"hello/main.yml": HELLO.format(word="one"), "other/main.yml": HELLO.format(word="o")})
    git_remote.tag("v0.1")
    repo = Tagged(db, git_remote, tmp_path)

    assert repo.follower.check() == []  # the first listing is the baseline
    assert repo.runs() == [] and tags_seen(db, repo.repo_id) == {"v0.1": first}

    second = git_remote.commit({"hello/main.yml": HELLO.format(word="two")}, "Two")
    git_remote.tag("v1.0", message="release 1.0")  # annotated: the run is at the commit it names
    git_remote.tag("nightly-1")  # no pattern matches it
    created = repo.follower.check()
    runs = repo.runs()
    assert len(created) == 2 and all(c.created for c in created)
    assert sorted(r.pipeline for r in runs) == ["hello", "other"]
    assert {(r.tag, r.commit_sha, r.trigger, r.branch) for r in runs} == {("v1.0", second, "tag", None)}
    assert sorted(repo.submitted) == sorted(r.id for r in runs)

    assert repo.follower.check() == []  # nothing new
    repo.restart()
    assert repo.follower.check() == [] and len(repo.runs()) == 2  # a restart starts nothing again

    # A replica that listed the tags before this one recorded them: its runs answer, none is added.
    record_tags_seen(db, repo.repo_id, {"v0.1": first})
    again = repo.follower.check()
    assert [c.created for c in again] == [False, False] and len(repo.runs()) == 2

    git_remote.tag("v1.0", message="release 1.0, retagged")  # moved, to the same commit: nothing runs
    assert repo.follower.check() == [] and len(repo.runs()) == 2

    third = git_remote.commit({"hello/main.yml": HELLO.format(word="three")}, "Three")
    git_remote.tag("v1.0", third)  # force-moved to a new commit: runs once there
    assert len(repo.follower.check()) == 2
    assert repo.follower.check() == []
    moved = [r for r in repo.runs() if r.commit_sha == third]
    assert sorted(r.pipeline for r in moved) == ["hello", "other"] and {r.tag for r in moved} == {"v1.0"}


def test_a_tag_whose_commit_cannot_be_read_is_tried_again(db: Engine, git_remote: GitRemote, tmp_path: Path) -> None:
    git_remote.commit({"hello/main.yml": HELLO.format(word="one")}, "Seed")
    repo = Tagged(db, git_remote, tmp_path)
    repo.follower.check()
    git_remote.tag("v2")
    with git_remote.unavailable():
        assert repo.follower.check() == []  # the remote cannot be listed: nothing is recorded as seen
    assert "v2" not in (tags_seen(db, repo.repo_id) or {})
    assert len(repo.follower.check()) == 1


def test_odin_yml_filters_apply_to_tag_runs(db: Engine, git_remote: GitRemote, tmp_path: Path) -> None:
    """Issue 13: a tag starts only the pipelines its commit's `.odin.yml` lets run for that tag: `tags` patterns
    (per pipeline, or in `defaults`), and `branches: []` (manual starts only) keeps a pipeline out of tag runs too;
    the path filters do not apply to a tag (a tag is no change)."""
    odin_yml = """\
version: 1
defaults:
  ignore_paths: ["*.yml"]       # would leave out every change to a main.yml: not applied to tags
pipelines:
  release-only:
    tags: ["v*.*", "!v*-rc*"]
  manual:
    branches: []
  manual-but-tagged:
    branches: []
    tags: ["v*"]
  never-on-tags:
    tags: []
"""
    names = ["hello", "release-only", "manual", "manual-but-tagged", "never-on-tags"]
    git_remote.commit({".odin.yml": odin_yml, **{f"{n}/main.yml": HELLO.format(word=n) for n in names}})
    repo = Tagged(db, git_remote, tmp_path)
    repo.follower.check()  # baseline
    git_remote.tag("v2.0-rc1")
    repo.follower.check()
    assert sorted(r.pipeline for r in repo.runs()) == ["hello", "manual-but-tagged"]
    git_remote.tag("v2.0")
    repo.follower.check()
    on_release = sorted(r.pipeline for r in repo.runs() if r.tag == "v2.0")
    assert on_release == ["hello", "manual-but-tagged", "release-only"]


def test_an_invalid_odin_yml_at_the_tagged_commit_starts_nothing_and_says_why(
    db: Engine, git_remote: GitRemote, tmp_path: Path
) -> None:
    """As for a pushed commit: running everything instead could start what the file was written to prevent."""
    git_remote.commit({"hello/main.yml": HELLO.format(word="one")})
    repo = Tagged(db, git_remote, tmp_path)
    repo.follower.check()  # baseline
    git_remote.commit({".odin.yml": "version: 1\npipelines:\n  hello:\n    tagz: [v1]\n"})
    git_remote.tag("v1.0")
    assert repo.follower.check() == [] and repo.runs() == []
    with db.connect() as conn:
        (event,) = conn.execute(sa.select(EVENTS).where(EVENTS.c.kind == "repo.tag_not_started")).all()
    assert event.repo_id == repo.repo_id and event.data["tag"] == "v1.0"
    (problem,) = event.data["problems"]
    assert (problem["file"], problem["line"]) == (".odin.yml", 4) and "did you mean `tags`" in problem["message"]
    assert tags_seen(db, repo.repo_id) == {"v1.0": git_remote.remote_tip()}, "not retried at every sync"
