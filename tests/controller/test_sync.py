"""Git sync end to end: real repositories pushed to real bare remotes, recorded in a real store."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from odin.controller.admission import GpuAsk
from odin.controller.git.edit import Author, commit_file
from odin.controller.git.mirror import Mirror
from odin.controller.store.db import transaction
from odin.controller.store.leadership import SCHEDULER, Fence, LeadershipLost, advance_epoch
from odin.controller.store.models import COMMITS
from odin.controller.store.repositories import REPOS
from odin.controller.store.runs import EVENTS, RUNS, TASKS
from odin.controller.sync import RepoSync, SyncRequest
from odin.controller.vocabulary import Trigger
from odin.schema.model import PipelineSpec
from tests.support.git import GitRemote, Symlink

HELLO = """\
name: hello
tasks:
  - name: greet
    image: busybox
    command: [echo, hello]
"""

TRAIN = """\
name: train
params:
  lr: "0.1"
tasks:
  - name: fit
    image: python:3.12
    command: [python3, fit.py, --lr, "${params.lr}"]
  - name: eval
    image: python:3.12
    command: [python3, eval.py]
    depends: fit
"""


class Repo:
    """A followed repository: the remote, Odin's mirror of it, and the sync under test."""

    def __init__(self, db: Engine, remote: GitRemote, tmp: Path, *, policy: str = "latest", first: bool = False):
        self.db, self.remote = db, remote
        with transaction(db) as conn:
            self.repo_id = int(
                conn.execute(
                    REPOS.insert().values(name="r", url=remote.url, branch="main", conditions=[]).returning(REPOS.c.id)
                ).scalar_one()
            )
        self.created: list[str] = []
        self.mirror = Mirror(remote.url, tmp / "cache", branch="main")
        self.sync = RepoSync(
            db, self.repo_id, self.mirror, branch="main", trees_dir=tmp / "trees", run_policy=policy,
            run_on_first_sync=first, on_runs_created=self.created.extend,
        )  # fmt: skip

    def runs(self) -> list[Any]:
        with self.db.connect() as conn:
            return list(conn.execute(sa.select(RUNS).order_by(RUNS.c.created_at, RUNS.c.id)).all())

    def commit_row(self, sha: str) -> Any:
        with self.db.connect() as conn:
            return conn.execute(sa.select(COMMITS).where(COMMITS.c.sha == sha)).one()

    def condition(self) -> dict[str, Any]:
        with self.db.connect() as conn:
            return dict(conn.execute(sa.select(REPOS.c.conditions).where(REPOS.c.id == self.repo_id)).scalar_one()[0])

    def events(self, kind: str) -> list[Any]:
        with self.db.connect() as conn:
            return list(conn.execute(sa.select(EVENTS).where(EVENTS.c.kind == kind)).all())


@pytest.fixture
def repo(db: Engine, git_remote: GitRemote, tmp_path: Path) -> Repo:
    git_remote.commit(
        {"hello/main.yml": HELLO, "train/main.yml": TRAIN, "train/fit.py": "print(1)\n", "README.md": "x"}
    )
    return Repo(db, git_remote, tmp_path)


def test_first_sync_records_a_baseline_and_starts_nothing(repo: Repo) -> None:
    out = repo.sync.sync()
    assert out.error is None and out.runs == []
    row = repo.commit_row(repo.remote.head)
    assert row.validation == "baseline"
    assert sorted(row.pipelines_changed) == ["hello", "train"]
    assert repo.condition()["status"] == "True"


def test_first_sync_can_run_everything_when_asked(db: Engine, git_remote: GitRemote, tmp_path: Path) -> None:
    git_remote.commit({"hello/main.yml": HELLO})
    r = Repo(db, git_remote, tmp_path, first=True)
    assert len(r.sync.sync().runs) == 1


def test_a_commit_changing_a_pipeline_creates_one_run_with_its_files(repo: Repo) -> None:
    repo.sync.sync()
    sha = repo.remote.commit({"train/fit.py": "print('v2')\n"}, "Tune the fit")
    out = repo.sync.sync()
    assert out.runs == repo.created and len(out.runs) == 1
    [run] = repo.runs()
    assert (run.pipeline, run.commit_sha, run.trigger, run.branch) == ("train", sha, "poll", "main")
    assert run.params == {"lr": "0.1"}
    assert PipelineSpec.from_dict(run.spec).task("fit").command == ("python3", "fit.py", "--lr", "${params.lr}")
    assert Path(run.work_path, "fit.py").read_text() == "print('v2')\n"
    assert Path(run.work_path, "main.yml").read_text() == TRAIN
    assert run.id.startswith(f"train-{sha[:7]}-")
    assert repo.commit_row(sha).validation == "valid"
    # the run's files stay the commit's even after the branch moves on
    repo.remote.commit({"train/fit.py": "print('v3')\n"})
    assert Path(run.work_path, "fit.py").read_text() == "print('v2')\n"


def test_no_change_means_no_work(repo: Repo) -> None:
    repo.sync.sync()
    out = repo.sync.sync()
    assert not out.changed and out.runs == []


def test_files_outside_pipelines_start_nothing(repo: Repo) -> None:
    repo.sync.sync()
    sha = repo.remote.commit({"README.md": "docs"})
    assert repo.sync.sync().runs == []
    assert repo.commit_row(sha).pipelines_changed == []


def test_latest_policy_runs_the_tip_and_records_absorbed_commits(repo: Repo) -> None:
    repo.sync.sync()
    a = repo.remote.commit({"hello/extra.txt": "1"}, push=False)
    b = repo.remote.commit({"README.md": "2"}, push=False)
    c = repo.remote.commit({"train/fit.py": "3"}, push=False)
    repo.remote.push()
    out = repo.sync.sync()
    runs = repo.runs()
    assert sorted(r.pipeline for r in runs) == ["hello", "train"], "pipelines changed anywhere in the push run"
    assert {r.commit_sha for r in runs} == {c}
    assert runs[0].absorbed_commits == [a, b]
    assert repo.commit_row(a).validation == "absorbed" and repo.commit_row(a).absorbed_by == c
    assert out.commits == [a, b, c]


def test_each_policy_runs_every_commit(db: Engine, git_remote: GitRemote, tmp_path: Path) -> None:
    git_remote.commit({"hello/main.yml": HELLO, "train/main.yml": TRAIN})
    r = Repo(db, git_remote, tmp_path, policy="each")
    r.sync.sync()
    a = git_remote.commit({"hello/x": "1"}, push=False)
    b = git_remote.commit({"train/x": "2"}, push=False)
    c = git_remote.commit({"hello/x": "3"}, push=False)
    git_remote.push()
    r.sync.sync()
    assert [(run.pipeline, run.commit_sha) for run in r.runs()] == [("hello", a), ("train", b), ("hello", c)]


@pytest.mark.parametrize("marker", ["[skip ci]", "[ci skip]", "[skip odin]", "[SKIP ODIN]"])
def test_skip_markers_start_nothing(repo: Repo, marker: str) -> None:
    repo.sync.sync()
    sha = repo.remote.commit({"hello/x": "1"}, f"Bump version {marker}")
    assert repo.sync.sync().runs == []
    assert repo.commit_row(sha).validation == "skipped"


def test_invalid_pipeline_is_recorded_with_located_problems_and_others_still_run(repo: Repo) -> None:
    repo.sync.sync()
    bad = HELLO.replace("depends: fit", "").replace(
        "command: [echo, hello]", "command: [echo, hello]\n    depends: nope"
    )
    sha = repo.remote.commit({"hello/main.yml": bad, "train/fit.py": "changed"}, "Break hello")
    out = repo.sync.sync()
    assert [r.pipeline for r in repo.runs()] == ["train"]
    assert len(out.runs) == 1
    row = repo.commit_row(sha)
    assert row.validation == "invalid"
    [problem] = row.problems
    assert problem["file"] == "hello/main.yml" and problem["line"] == 6
    assert "nope" in problem["message"]


def test_a_pipeline_with_required_params_cannot_start_automatically(repo: Repo) -> None:
    repo.sync.sync()
    text = (
        "name: p\nparams:\n  dataset:\n    description: no default\ntasks:\n  - {name: t, image: x, command: [echo]}\n"
    )
    sha = repo.remote.commit({"needs/main.yml": text})
    assert repo.sync.sync().runs == []
    [problem] = repo.commit_row(sha).problems
    assert "cannot start automatically" in problem["message"] and "dataset" in problem["message"]


def test_huge_non_utf8_and_escaping_files_are_problems_not_crashes(repo: Repo) -> None:
    repo.sync.sync()
    sha = repo.remote.commit(
        {
            "huge/main.yml": b"# " + b"x" * (50 * 1024 * 1024),
            "binary/main.yml": b"name: binary\n\xff\xfe\n",
            "escape/main.yml": HELLO,
            "escape/secret": Symlink("../../../../etc/passwd"),
        }
    )
    out = repo.sync.sync()
    assert out.error is None and out.runs == []
    problems = {p["file"].split("/")[0]: p["message"] for p in repo.commit_row(sha).problems}
    assert "50.0 MB" in problems["huge"] or "limit" in problems["huge"]
    assert "UTF-8" in problems["binary"]
    assert "escape" in problems and "outside" in problems["escape"]


def test_force_push_is_recorded_and_new_commits_processed(repo: Repo) -> None:
    repo.sync.sync()
    base = repo.remote.head
    repo.remote.commit({"hello/x": "old"})
    repo.sync.sync()
    repo.remote.reset_hard(base)
    new = repo.remote.commit({"train/x": "rewritten"}, push=False)
    repo.remote.push(force=True)
    repo.sync.sync()
    assert repo.events("repo.force_push")
    assert any(r.commit_sha == new and r.pipeline == "train" for r in repo.runs())


def test_deleted_branch_and_vanished_remote_set_a_clear_condition_then_recover(repo: Repo) -> None:
    repo.sync.sync()
    with repo.remote.unavailable():
        out = repo.sync.sync()
        assert out.error is not None and out.error.transient
        cond = repo.condition()
        assert (cond["status"], cond["reason"]) == ("False", "RemoteUnreachable")
    sha = repo.remote.commit({"hello/x": "back"})
    assert len(repo.sync.sync().runs) == 1
    assert repo.condition()["status"] == "True"
    repo.remote.delete_remote_branch("main")
    out = repo.sync.sync()
    assert out.error is not None and repo.condition()["reason"] == "BranchNotFound"
    assert sha in {r.commit_sha for r in repo.runs()}


def test_poll_and_webhook_racing_create_one_run(repo: Repo) -> None:
    repo.sync.sync()
    repo.remote.commit({"hello/x": "1"})
    barrier = threading.Barrier(4)
    results: list[list[str]] = []

    def go(trigger: Trigger) -> None:
        barrier.wait(5)
        results.append(repo.sync.sync(SyncRequest(trigger=trigger, by="test")).runs)

    threads = [threading.Thread(target=go, args=(t,)) for t in (Trigger.POLL, Trigger.WEBHOOK) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(len(r) for r in results) == 1
    assert len(repo.runs()) == 1


def test_a_commit_written_through_odin_keeps_its_author_when_the_poll_finds_it_first(repo: Repo) -> None:
    """The API writes a file, pushes it, then requests a sync on the writer's behalf; the regular poll can fetch the
    pushed commit first. The attribution registered before the push decides who started the run, whichever sync
    serves it (this raced in CI: the run said "poller")."""
    repo.sync.sync()
    done = commit_file(
        repo.mirror, pipeline="hello", path="notes.txt", content=b"v2\n",
        author=Author("meg", "meg@example.com"), committer=Author("Odin", "odin@example.com"),
        before_push=lambda sha: repo.sync.expect(sha, SyncRequest(trigger=Trigger.POLL, by="meg")),
    )  # fmt: skip
    assert done.changed
    out = repo.sync.sync(SyncRequest(trigger=Trigger.POLL, by="poller"))  # the timer's tick, before the request
    [run] = [r for r in repo.runs() if r.id in out.runs]
    assert (run.commit_sha, run.triggered_by) == (done.sha, "meg")
    # the attribution is used once: a later commit found by the poll is the poller's
    repo.remote.pull()
    repo.remote.commit({"hello/x": "2"})
    out = repo.sync.sync(SyncRequest(trigger=Trigger.POLL, by="poller"))
    assert [r.triggered_by for r in repo.runs() if r.id in out.runs] == ["poller"]


def test_attributions_for_pushes_that_never_arrive_are_bounded(repo: Repo) -> None:
    for i in range(1000):
        repo.sync.expect(f"{i:040x}", SyncRequest(by="someone"))
    assert len(repo.sync._expected) <= 256
    repo.sync.forget(f"{999:040x}")
    assert f"{999:040x}" not in repo.sync._expected


def test_a_new_sync_object_resumes_from_the_store(repo: Repo, tmp_path: Path) -> None:
    """Restart: a fresh RepoSync (fresh process) continues from last_seen_sha and re-creates nothing."""
    repo.sync.sync()
    repo.remote.commit({"hello/x": "1"})
    repo.sync.sync()
    again = RepoSync(repo.db, repo.repo_id, Mirror(repo.remote.url, tmp_path / "cache2", branch="main"),
                     branch="main", trees_dir=tmp_path / "trees")  # fmt: skip
    assert again.sync().runs == []
    assert len(repo.runs()) == 1


def test_a_commit_full_of_problems_stores_and_logs_a_bounded_number(
    repo: Repo, caplog: pytest.LogCaptureFixture
) -> None:
    repo.sync.sync()
    hostile = "tasks:\n" + "".join(f"  - {{name: t{i}, image: x, command: c, depends: gone{i}}}\n" for i in range(400))
    sha = repo.remote.commit({f"p{k}/main.yml": hostile for k in range(3)}, "Three pipelines, 1,200 problems")
    with caplog.at_level(logging.WARNING, logger="odin.controller.sync"):
        repo.sync.sync()
    stored = repo.commit_row(sha).problems
    assert len(stored) == 3 * 101
    assert sum(p["message"] == "and 300 more problems" for p in stored) == 3
    lines = [r.getMessage() for r in caplog.records if r.name == "odin.controller.sync"]
    assert len(lines) == 101 and lines[-1].endswith("and 203 more problems (all are on the commit)")


def test_a_run_admission_refuses_is_recorded_failed_and_the_others_start(
    db: Engine, git_remote: GitRemote, tmp_path: Path
) -> None:
    """Runs a push starts go through the same admission as those started on request (issue 10 item 5)."""
    git_remote.commit({"hello/main.yml": HELLO})
    r = Repo(db, git_remote, tmp_path)
    asked: list[list[tuple[str, int]]] = []

    def admission(asks: Sequence[GpuAsk]) -> str | None:
        asked.append([(a.task, a.gpus) for a in asks])
        return "task train asks for 16 GPUs; the largest node has 8 (node-a)" if asks[0].gpus > 8 else None

    published: list[dict[str, Any]] = []
    r.sync.admission, r.sync.publish = admission, published.append
    r.sync.sync()
    big = (
        "name: big\ntasks:\n  - {name: prep, image: x, command: ['true']}\n"
        "  - {name: train, image: x, command: ['true'], num_gpus: 16}\n"
    )
    small = "name: small\ntasks:\n  - {name: train, image: x, command: ['true'], num_gpus: 2}\n"
    sha = git_remote.commit({"big/main.yml": big, "small/main.yml": small, "hello/main.yml": HELLO + "# v2\n"})
    out = r.sync.sync()

    assert sorted(asked) == [[("train", 2)], [("train", 16)]], "only GPU tasks are judged; hello has none"
    runs = {row.pipeline: row for row in r.runs()}
    assert set(runs) == {"big", "small", "hello"} and len(out.runs) == 3
    assert out.rejected == [runs["big"].id]
    assert sorted(r.created) == sorted([runs["small"].id, runs["hello"].id]), "the refused run is never started"
    big_run = runs["big"]
    assert (big_run.status, big_run.reason) == ("failed", "Rejected")
    assert big_run.message == "task train asks for 16 GPUs; the largest node has 8 (node-a)"
    assert big_run.finished_at is not None and runs["small"].status == "pending"
    with db.connect() as conn:
        tasks = conn.execute(sa.select(TASKS.c.name, TASKS.c.status).where(TASKS.c.run_id == big_run.id)).all()
    assert sorted(tasks) == [("prep", "skipped"), ("train", "skipped")]
    assert r.commit_row(sha).validation == "valid", "the pipeline is valid; the run says why it did not start"
    statuses = [e for e in published if e["kind"] == "run.status"]
    assert [(e["run_id"], e["data"]["status"]) for e in statuses] == [(big_run.id, "failed")]


def test_a_sync_under_a_lost_leadership_records_and_creates_nothing(repo: Repo) -> None:
    """Fencing (issue 14 item 4): the commit, its runs and `last_seen_sha` are written only while the leadership
    epoch the sync runs under is current; a stale leader's sync writes none of them, and the next leader's finds
    the commit as new."""
    repo.sync.sync()
    stale = Fence(SCHEDULER, advance_epoch(repo.db, SCHEDULER, holder="old"))
    advance_epoch(repo.db, SCHEDULER, holder="new")
    repo.sync.fence = lambda: stale
    sha = repo.remote.commit({"train/fit.py": "print('v2')\n"})
    with pytest.raises(LeadershipLost):
        repo.sync.sync()
    assert repo.runs() == [] and repo.created == []
    with repo.db.connect() as conn:
        assert conn.execute(sa.select(COMMITS).where(COMMITS.c.sha == sha)).first() is None
    current = Fence(SCHEDULER, advance_epoch(repo.db, SCHEDULER, holder="next"))
    repo.sync.fence = lambda: current
    assert len(repo.sync.sync().runs) == 1, "the next leader creates the run"
