"""`.odin.yml` branch and path filters, applied by the sync that polls and webhooks share, on real repositories."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from odin.controller.bus import EventBus
from tests.controller.test_sync import HELLO, TRAIN, Repo
from tests.support.git import GitRemote

CONFIG = """\
# yaml-language-server: $schema=https://odin.dev/schemas/repo.schema.json
version: 1
defaults:
  ignore_paths: ["*.md", "docs/"]
pipelines:
  train:
    paths: [/shared/, requirements.txt]
  hello:
    branches: [release/*]
"""


@pytest.fixture
def repo(db: Engine, git_remote: GitRemote, tmp_path: Path) -> Repo:
    git_remote.commit(
        {
            "hello/main.yml": HELLO,
            "train/main.yml": TRAIN,
            "train/fit.py": "print(1)\n",
            "shared/util.py": "x = 1\n",
            ".odin.yml": CONFIG,
        }
    )
    r = Repo(db, git_remote, tmp_path)
    r.sync.sync()
    return r


def ran(repo: Repo, sha: str) -> list[str]:
    return sorted(r.pipeline for r in repo.runs() if r.commit_sha == sha)


def test_extra_paths_count_as_changes_to_the_pipeline(repo: Repo) -> None:
    sha = repo.remote.commit({"shared/util.py": "x = 2\n"})
    repo.sync.sync()
    assert ran(repo, sha) == ["train"]
    assert repo.commit_row(sha).pipelines_changed == ["train"]
    sha = repo.remote.commit({"requirements.txt": "torch\n"})
    repo.sync.sync()
    assert ran(repo, sha) == ["train"]


def test_ignored_paths_do_not_count_even_inside_the_pipeline(repo: Repo) -> None:
    sha = repo.remote.commit({"train/README.md": "notes\n", "docs/guide.txt": "x"})
    assert repo.sync.sync().runs == []
    assert repo.commit_row(sha).validation == "valid"
    [event] = [e for e in repo.events("commit.seen") if e.commit_sha == sha]
    assert event.data["filtered"] == ["train"], "what the filters left out is on the record"
    sha = repo.remote.commit({"train/README.md": "more notes\n", "train/fit.py": "print(2)\n"})
    repo.sync.sync()
    assert ran(repo, sha) == ["train"], "one counting change is enough"


def test_branch_filters_keep_a_pipeline_off_other_branches(repo: Repo) -> None:
    sha = repo.remote.commit({"hello/extra.txt": "1", "train/fit.py": "print(3)\n"})
    repo.sync.sync()
    assert ran(repo, sha) == ["train"], "hello runs on release/* only; this repository follows main"


def test_a_branch_filter_matches_the_followed_branch(db: Engine, git_remote: GitRemote, tmp_path: Path) -> None:
    git_remote.commit({"hello/main.yml": HELLO, ".odin.yml": "pipelines:\n  hello: {branches: [main]}\n"})
    r = Repo(db, git_remote, tmp_path)
    r.sync.sync()
    sha = git_remote.commit({"hello/x": "1"})
    r.sync.sync()
    assert ran(r, sha) == ["hello"]
    sha = git_remote.commit({"hello/x": "2", ".odin.yml": "pipelines:\n  hello: {branches: []}\n"})
    r.sync.sync()
    assert ran(r, sha) == [], "`branches: []` is manual starts only; the commit's own file decides"


def test_an_invalid_config_starts_nothing_and_says_where(repo: Repo) -> None:
    sha = repo.remote.commit({".odin.yml": "pipelines:\n  train:\n    pathz: [x]\n", "train/fit.py": "print(4)\n"})
    assert repo.sync.sync().runs == []
    row = repo.commit_row(sha)
    assert row.validation == "invalid"
    [problem] = row.problems
    assert (problem["file"], problem["line"], problem["column"]) == (".odin.yml", 3, 5)
    assert "unknown field `pathz`" in problem["message"] and "paths" in problem["message"]


def test_a_bad_odin_yml_schedule_is_a_located_problem_on_the_commit(repo: Repo) -> None:
    """A schedule in `.odin.yml` whose params the pipeline refuses is recorded where it is written; a good one is not
    a problem."""
    good = CONFIG + 'schedules:\n  - {pipeline: train, cron: "0 3 * * *", params: {lr: 0.5}}\n'
    sha = repo.remote.commit({".odin.yml": good})
    repo.sync.sync()
    assert repo.commit_row(sha).problems == []
    bad = good + '  - {pipeline: train, cron: "0 4 * * *", params: {lr: 1, epochs: 3}}\n'
    sha = repo.remote.commit({".odin.yml": bad})
    repo.sync.sync()
    row = repo.commit_row(sha)
    assert row.validation == "invalid"
    [problem] = row.problems
    assert (problem["file"], problem["line"], problem["column"]) == (".odin.yml", 12, 58)
    assert "unknown parameter `epochs`" in problem["message"]


def test_without_a_config_everything_changed_runs(db: Engine, git_remote: GitRemote, tmp_path: Path) -> None:
    git_remote.commit({"hello/main.yml": HELLO, "train/main.yml": TRAIN})
    r = Repo(db, git_remote, tmp_path)
    r.sync.sync()
    sha = git_remote.commit({"hello/README.md": "x", "train/a.md": "y"})
    r.sync.sync()
    assert ran(r, sha) == ["hello", "train"]


def test_filters_apply_to_each_commit_under_the_each_policy(db: Engine, git_remote: GitRemote, tmp_path: Path) -> None:
    git_remote.commit({"train/main.yml": TRAIN, ".odin.yml": CONFIG})
    r = Repo(db, git_remote, tmp_path, policy="each")
    r.sync.sync()
    a = git_remote.commit({"train/notes.md": "1"}, push=False)
    b = git_remote.commit({"shared/x.py": "2"}, push=False)
    git_remote.push()
    r.sync.sync()
    assert ran(r, a) == [] and ran(r, b) == ["train"]


def test_committed_events_are_published(db: Engine, git_remote: GitRemote, tmp_path: Path) -> None:
    git_remote.commit({"train/main.yml": TRAIN})
    r = Repo(db, git_remote, tmp_path)
    bus = EventBus()
    seen: list[dict[str, Any]] = []
    bus.subscribe(lambda e: seen.append(dict(e)))
    r.sync.publish = bus.publish
    r.sync.sync()
    sha = git_remote.commit({"train/x": "1"})
    r.sync.sync()
    kinds = [(e["kind"], e["commit_sha"]) for e in seen]
    assert kinds[-2:] == [("commit.seen", sha), ("run.created", sha)]
    assert all(isinstance(e["id"], int) for e in seen), "published events are the stored rows, with their ids"
    assert seen[-1]["run_id"] == r.runs()[-1].id
