"""`main.yml.jinja2` in a followed repository: found, rendered with its own defaults per commit, run on push, and
rendered anew with a run's parameters; a template that fails, loops or writes too much is a problem on the commit."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from odin.controller.launcher import InvalidPipeline, RunLauncher, StartRequest
from odin.controller.scheduler import Scheduler
from odin.controller.store.models import RUNS
from odin.controller.vocabulary import Trigger
from tests.controller.test_sync import Repo
from tests.support.git import GitRemote

TOKENIZE = """\
name: tokenize
tasks:
{% for lang in (langs | default("en,de")).split(",") %}
  - name: tokenize-{{ lang }}
    image: python:3.12-slim
    command: python tokenize.py --lang {{ lang }}
{% endfor %}
"""


@pytest.fixture
def repo(db: Engine, git_remote: GitRemote, tmp_path: Path) -> Repo:
    git_remote.commit({"README.md": "x"})
    r = Repo(db, git_remote, tmp_path)
    r.sync.sync()
    return r


def test_a_template_is_a_pipeline_validated_with_its_defaults_and_run_on_push(repo: Repo) -> None:
    sha = repo.remote.commit({"tokenize/main.yml.jinja2": TOKENIZE, "tokenize/tokenize.py": "print(1)\n"})
    outcome = repo.sync.sync()
    assert repo.mirror.list_pipelines(sha) == ["tokenize"]
    assert len(outcome.runs) == 1
    row = repo.commit_row(sha)
    assert (row.validation, row.pipelines_changed) == ("valid", ["tokenize"])
    (run,) = repo.runs()
    assert [t["name"] for t in run.spec["tasks"]] == ["tokenize-en", "tokenize-de"]


@pytest.mark.parametrize(
    ("template", "line", "words"),
    [
        ("name: t\ntasks:\n{{ missing_variable }}\n", 3, "undefined variable"),
        ("name: t\n{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}\n", 2, "passes 1.0 MiB"),
        ("name: t\ntasks:\n  - {name: a, image: x, command: [echo], depnds: b}\n", 3, "did you mean `depends`"),
        ("name: t\n{{ ''.__class__ }}\n", 2, "not allowed"),
    ],
)
def test_a_template_that_fails_or_writes_too_much_is_a_problem_on_the_commit(
    repo: Repo, template: str, line: int, words: str
) -> None:
    sha = repo.remote.commit({"t/main.yml.jinja2": template})
    assert repo.sync.sync().runs == []
    row = repo.commit_row(sha)
    assert row.validation == "invalid"
    problem = row.problems[0]
    assert problem["file"].startswith("t/main.yml.jinja2") and words in problem["message"], problem
    assert problem["line"] == line or f"line {line}" in problem["message"], problem


def test_a_template_that_loops_is_stopped_in_time(repo: Repo) -> None:
    looping = "name: t\n{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}\n"
    sha = repo.remote.commit({"t/main.yml.jinja2": looping})
    repo.sync.sync()
    problem = repo.commit_row(sha).problems[0]
    assert "rendering took longer than" in problem["message"], problem


def test_a_start_with_params_renders_the_template_with_them(db: Engine, repo: Repo, tmp_path: Path) -> None:
    repo.remote.commit({"tokenize/main.yml.jinja2": TOKENIZE})
    launcher = RunLauncher(db, repo.repo_id, repo.mirror, branch="main", trees_dir=tmp_path / "t2", submit=print)
    created = launcher.start(StartRequest("tokenize", params={"langs": "fr,it,es"}, trigger=Trigger.API, by="a"))
    with db.connect() as conn:
        run = conn.execute(sa.select(RUNS).where(RUNS.c.id == created.run_id)).one()
    assert [t["name"] for t in run.spec["tasks"]] == ["tokenize-fr", "tokenize-it", "tokenize-es"]
    assert run.params == {"langs": "fr,it,es"}
    with pytest.raises(InvalidPipeline) as refused:
        launcher.start(StartRequest("tokenize", params={"langs": "bad lang"}, trigger=Trigger.API, by="a"))
    assert refused.value.problems, "a rendering that is invalid says why"


def test_a_schedule_of_a_template_passes_its_params_to_the_template(
    db: Engine, repo: Repo, git_remote: GitRemote, tmp_path: Path
) -> None:
    odin_yml = 'schedules:\n  - {pipeline: tokenize, cron: "0 3 * * *", params: {langs: "sv,fi"}}\n'
    git_remote.commit({"tokenize/main.yml.jinja2": TOKENIZE, ".odin.yml": odin_yml})
    repo.mirror.fetch()
    launcher = RunLauncher(db, repo.repo_id, repo.mirror, branch="main", trees_dir=tmp_path / "t3", submit=print)
    clock_now = [datetime(2026, 1, 5, 2, 59, tzinfo=UTC)]
    scheduler = Scheduler(db, repo.repo_id, repo.mirror, launcher, branch="main", clock=lambda: clock_now[0])
    scheduler.tick()
    clock_now[0] = datetime(2026, 1, 5, 3, 0, 0, 100000, tzinfo=UTC)
    (created,) = scheduler.tick().created
    with db.connect() as conn:
        run = conn.execute(sa.select(RUNS).where(RUNS.c.id == created.run_id)).one()
    assert [t["name"] for t in run.spec["tasks"]] == ["tokenize-sv", "tokenize-fi"]
