"""Starting runs on request: refs, pipelines, parameters, and the errors users see."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from odin.controller.git.mirror import Mirror
from odin.controller.launcher import (
    InvalidParams,
    InvalidPipeline,
    PipelineNotFound,
    ReferenceNotFound,
    RunLauncher,
    StartRequest,
)
from odin.controller.store.db import transaction
from odin.controller.store.models import REPOSITORIES, RUNS
from odin.controller.vocabulary import Trigger
from tests.support.git import GitRemote

PIPE = """\
name: p
params:
  lr: {type: number, default: 0.1}
  size: {choices: [s, l], default: s}
tasks:
  - {name: t, image: x, command: [echo, "${params.lr}"]}
"""


@pytest.fixture
def launcher(db: Engine, git_remote: GitRemote, tmp_path: Path) -> tuple[RunLauncher, list[str]]:
    git_remote.commit({"p/main.yml": PIPE, "bad/main.yml": "name: bad\ntasks: []\n"})
    with transaction(db) as conn:
        repo_id = conn.execute(
            REPOSITORIES.insert().values(name="r", url="u", branch="main", conditions=[]).returning(REPOSITORIES.c.id)
        ).scalar_one()
    submitted: list[str] = []
    mirror = Mirror(git_remote.url, tmp_path / "cache", branch="main")
    return RunLauncher(
        db, repo_id, mirror, branch="main", trees_dir=tmp_path / "trees", submit=submitted.append
    ), submitted


def run_row(db: Engine, run_id: str) -> sa.Row[tuple[object, ...]]:
    with db.connect() as conn:
        return conn.execute(sa.select(RUNS).where(RUNS.c.id == run_id)).one()


def test_start_at_the_latest_commit_of_the_branch(
    db: Engine, launcher: tuple[RunLauncher, list[str]], git_remote: GitRemote
) -> None:
    start, submitted = launcher
    newer = git_remote.commit({"p/extra": "x"})
    created = start.start(StartRequest("p", params={"lr": "0.5"}, trigger=Trigger.API, by="alice"))
    assert submitted == [created.run_id]
    row = run_row(db, created.run_id)
    assert (row.commit_sha, row.branch, row.trigger, row.triggered_by) == (newer, "main", "api", "alice")
    assert row.params == {"lr": "0.5", "size": "s"}
    assert row.dedupe_key is None, "manual runs are never deduplicated"


def test_start_at_a_tag_or_a_sha_prefix(
    db: Engine, launcher: tuple[RunLauncher, list[str]], git_remote: GitRemote
) -> None:
    start, _ = launcher
    first = git_remote.head
    git_remote.tag("v1", first)
    git_remote.commit({"p/extra": "x"})
    by_tag = run_row(db, start.start(StartRequest("p", ref="v1")).run_id)
    by_prefix = run_row(db, start.start(StartRequest("p", ref=first[:9])).run_id)
    assert by_tag.commit_sha == by_prefix.commit_sha == first
    assert by_tag.branch is None


def test_rejections_say_what_is_wrong(launcher: tuple[RunLauncher, list[str]]) -> None:
    start, submitted = launcher
    with pytest.raises(ReferenceNotFound, match="nope"):
        start.start(StartRequest("p", ref="nope"))
    with pytest.raises(PipelineNotFound, match="ghost"):
        start.start(StartRequest("ghost"))
    with pytest.raises(InvalidPipeline) as invalid:
        start.start(StartRequest("bad"))
    assert invalid.value.problems and invalid.value.problems[0].file == "bad/main.yml"
    with pytest.raises(InvalidParams, match="size"):
        start.start(StartRequest("p", params={"size": "xl"}))
    with pytest.raises(InvalidParams, match="unknown"):
        start.start(StartRequest("p", params={"unknown": "1"}))
    assert submitted == []
