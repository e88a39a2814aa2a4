"""The Controller's wiring: what its bus publishes for a sync, exactly once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from odin.controller.service import Controller
from odin.controller.settings import Settings
from tests.support.git import GitRemote

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
