"""A pipeline directory too large for a run's working tree is a problem on the commit, never a copy: real
repositories pushed to real bare remotes, synced into a real store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from odin.controller.git.errors import WorkTreeTooLarge
from odin.controller.git.mirror import Mirror
from odin.controller.git.models import WorkLimits
from odin.controller.launcher import InvalidPipeline, RunLauncher, StartRequest
from odin.controller.service import work_limits
from odin.controller.settings import Settings
from odin.controller.store.db import transaction
from odin.controller.store.models import COMMITS
from odin.controller.store.repositories import REPOS
from odin.controller.store.runs import RUNS
from odin.controller.sync import RepoSync
from tests.support.git import GitRemote

HELLO = "name: {name}\ntasks:\n  - {{name: greet, image: busybox, command: [echo, hello]}}\n"
LIMITS = WorkLimits(max_files=20, max_bytes=64 * 1024)


class Followed:
    def __init__(self, db: Engine, remote: GitRemote, tmp: Path, limits: WorkLimits | None) -> None:
        self.db, self.remote, self.trees = db, remote, tmp / "trees"
        with transaction(db) as conn:
            self.repo_id = int(
                conn.execute(
                    REPOS.insert().values(name="r", url=remote.url, branch="main", conditions=[]).returning(REPOS.c.id)
                ).scalar_one()
            )
        self.mirror = Mirror(remote.url, tmp / "cache", branch="main", work_limits=limits)
        self.sync = RepoSync(db, self.repo_id, self.mirror, branch="main", trees_dir=self.trees)

    def runs(self) -> list[Any]:
        with self.db.connect() as conn:
            return list(conn.execute(sa.select(RUNS)).all())

    def commit_row(self, sha: str) -> Any:
        with self.db.connect() as conn:
            return conn.execute(sa.select(COMMITS).where(COMMITS.c.sha == sha)).one()


@pytest.fixture
def followed(db: Engine, git_remote: GitRemote, tmp_path: Path) -> Followed:
    git_remote.commit({"small/main.yml": HELLO.format(name="small"), "big/main.yml": HELLO.format(name="big")})
    f = Followed(db, git_remote, tmp_path, LIMITS)
    f.sync.sync()  # baseline
    return f


def test_too_many_files_is_a_problem_on_the_commit_and_nothing_is_copied(followed: Followed) -> None:
    files: dict[str, str | bytes] = {f"big/data/{i:05d}.txt": f"{i}\n" for i in range(25)}
    files["small/notes.txt"] = "the other pipeline still runs\n"
    sha = followed.remote.commit(files, "25 files")
    out = followed.sync.sync()
    assert [r.pipeline for r in followed.runs()] == ["small"], "only the pipeline within the limits runs"
    assert len(out.runs) == 1
    row = followed.commit_row(sha)
    assert row.validation == "invalid"
    [problem] = [p for p in row.problems if p["file"] == "big"]
    assert "more than 20 files" in problem["message"]
    assert "ODIN_LOCAL_WORK_MAX_FILES" in problem["message"]
    tree = followed.mirror.pipeline_tree_id(sha, "big")
    assert not (followed.trees / tree).exists(), "the directory was never copied"


def test_too_many_bytes_is_a_problem_on_the_commit(followed: Followed) -> None:
    sha = followed.remote.commit({"big/weights.bin": b"\0" * (65 * 1024)}, "65 KiB")
    followed.sync.sync()
    assert followed.runs() == []
    [problem] = followed.commit_row(sha).problems
    assert problem["file"] == "big"
    assert "more than 65,536 bytes" in problem["message"] and "ODIN_LOCAL_WORK_MAX_BYTES" in problem["message"]


def test_a_directory_at_the_limits_runs(followed: Followed) -> None:
    files: dict[str, str | bytes] = {f"big/data/{i:02d}.txt": "x" for i in range(19)}  # + main.yml = 20 files
    followed.remote.commit(files, "exactly 20 files")
    followed.sync.sync()
    assert [r.pipeline for r in followed.runs()] == ["big"]


def test_a_manual_run_is_refused_with_the_same_problem(followed: Followed) -> None:
    followed.remote.commit({f"big/data/{i}.txt": "x" for i in range(30)}, "30 files")
    launcher = RunLauncher(
        followed.db, followed.repo_id, followed.mirror, branch="main", trees_dir=followed.trees, submit=lambda _: None
    )
    with pytest.raises(InvalidPipeline) as refused:
        launcher.start(StartRequest(pipeline="big"))
    assert refused.value.status == 422
    assert any("more than 20 files" in p.message for p in refused.value.problems)


def test_materialize_enforces_the_limits_itself(followed: Followed) -> None:
    sha = followed.remote.commit({f"big/data/{i}.txt": "x" for i in range(30)}, "30 files")
    followed.mirror.fetch()
    with pytest.raises(WorkTreeTooLarge, match="more than 20 files"):
        followed.mirror.materialize(sha, "big", followed.trees)


def test_the_local_executor_has_limits_and_kubernetes_keeps_its_own(tmp_path: Path) -> None:
    local = work_limits(Settings(data_dir=tmp_path, local_work_max_files=7, local_work_max_bytes=9))
    assert local is not None and (local.max_files, local.max_bytes) == (7, 9)
    assert work_limits(Settings(data_dir=tmp_path)) == WorkLimits(10_000, 512 * 1024 * 1024)
    assert work_limits(Settings(data_dir=tmp_path, executor="kubernetes")) is None
