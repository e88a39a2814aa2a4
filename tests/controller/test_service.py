"""The Controller's wiring: what its bus publishes for a sync, exactly once; schedules on a registered repository's
further branches."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from odin.controller.service import Controller
from odin.controller.settings import Settings
from odin.controller.store.repo_records import insert_record
from odin.controller.store.runs import RUNS
from tests.support.git import GitRemote
from tests.support.wait import wait_until

HELLO = "name: hello\ntasks:\n  - {name: hi, image: busybox, command: [echo, hi]}\n"


def test_sync_events_reach_the_bus_exactly_once(db_url: str, git_remote: GitRemote, tmp_path: Path) -> None:
    git_remote.commit({"hello/main.yml": HELLO})
    controller = Controller(Settings(repo=git_remote.url, data_dir=tmp_path / "data", database_url=db_url))
    try:
        seen: list[dict[str, Any]] = []
        controller.bus.subscribe(lambda e: seen.append(dict(e)))
        repo = controller.repo()
        repo.sync.sync()  # baseline
        sha = git_remote.commit({"hello/x.txt": "1"})
        out = repo.sync.sync()
        assert len(out.runs) == 1
        assert Counter(e["kind"] for e in seen if e.get("commit_sha") == sha) == {"commit.seen": 1, "run.created": 1}
        assert [e["run_id"] for e in seen if e["kind"] == "run.created"] == out.runs
        invalid = git_remote.commit({"hello/main.yml": "name: hello\ntasks: []\n"})
        assert repo.sync.sync().runs == []
        assert Counter(e["kind"] for e in seen if e.get("commit_sha") == invalid) == {"commit.seen": 1}
    finally:
        controller.stop()


NIGHTLY = 'schedule: "0 3 * * *"\ntasks:\n  - {name: hi, image: busybox, command: [echo, hi]}\n'


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_a_registered_repositorys_schedules_fire_on_each_branch_its_patterns_follow(
    db_url: str, git_remote: GitRemote, tmp_path: Path
) -> None:
    """The controller's own wiring (issue 13): the branches a registered repository's patterns match become its
    scheduler's branches, with launchers that create under the leader's fence and hand the runs, with their
    `run.created` events, to the bus and the engine at once; each branch's run records it."""
    git_remote.commit({"nightly/main.yml": NIGHTLY})
    git_remote.create_branch("release/1")
    git_remote.create_branch("feature/x")
    controller = Controller(Settings(data_dir=tmp_path / "data", database_url=db_url))
    try:
        values = {"url": git_remote.url, "branch": "main", "branches": ["main", "release/*"], "poll_interval": 0.1}
        insert_record(controller.db, "ml", values, by="test")
        controller.refresh_repositories()
        followed = controller.repo("ml")
        assert followed.followers is not None
        followed.sync.sync()
        followed.followers.discover()
        assert followed.scheduler.branches == ["main", "release/1"]
        poller = followed.followers.poller("release/1")
        assert poller is not None
        wait_until(lambda: poller.sync.mirror.tip() is not None, 10, message="release/1 fetched")

        seen: list[dict[str, Any]] = []
        controller.bus.subscribe(lambda e: seen.append(dict(e)))
        followed.scheduler.clock = Clock(datetime(2026, 1, 5, 2, 59, tzinfo=UTC))
        assert followed.scheduler.tick().created == ()
        followed.scheduler.clock = Clock(datetime(2026, 1, 5, 3, 0, 0, 200_000, tzinfo=UTC))
        due = followed.scheduler.tick()
        assert sorted(s.branch or "" for s in due.starts) == ["main", "release/1"]
        created = {run.run_id for run in due.created}
        assert {e["run_id"] for e in seen if e["kind"] == "run.created"} == created
        with controller.db.connect() as conn:
            rows = conn.execute(sa.select(RUNS.c.branch, RUNS.c.trigger).where(RUNS.c.id.in_(created))).all()
        assert sorted(rows) == [("main", "schedule"), ("release/1", "schedule")]
        followed.followers.stop()  # what losing leadership does: the further branches' schedules stop with them
        assert followed.scheduler.branches == ["main"]
    finally:
        for repo in controller.repos.values():
            if repo.followers is not None:
                repo.followers.stop()  # never started as the leader: `stop` would not stop these pollers
        controller.stop()
