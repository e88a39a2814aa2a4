"""Two `odin serve` replicas on one Postgres: failover, graceful hand-over, and fencing (issue 14 items 4 and 5).

Each test starts real server processes (`tests.support.server.OdinServer`) on a database of its own. The default
lease (10 s) is kept where it does not matter (a dead leader's connection is gone, a stopping one releases its lease),
so that a loaded machine does not delay a renewal into a takeover; the SIGSTOP test, which waits for the lease to
expire, shortens it to 3 s. Every replica
runs tasks with the local executor in its own data directory, so where an attempt's files are (`tasks/<run>/<task>.
<attempt>.*`) says which replica started it.

- SIGKILL the leader: the follower leads within 15 s and finishes the run (the dead leader's connection is gone, so
  it does not wait for the lease).
- SIGTERM the leader while a task runs and another waits on it: the leader starts nothing from the signal on, records
  the running task's end, exits well within 30 s, and the follower runs the rest.
- SIGSTOP the leader past its lease, let the follower take over, SIGCONT it: it starts nothing (its writes are refused
  by epoch) and steps down.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.git import GitRemote
from tests.support.postgres import scratch_database
from tests.support.server import OdinServer
from tests.support.wait import wait_until

pytestmark = pytest.mark.postgres

LEADS = "this replica is the leader"


def _pipeline(marks: Path) -> str:
    """`first` waits for the `go` mark; `second` depends on it. Each notes every attempt that ran."""

    def note(name: str) -> str:
        return f'echo ran >> "{marks}/{name}.ran"'

    tasks = [
        {
            "name": "first",
            "image": "sh",
            "command": ["sh", "-c", f'{note("first")}; while [ ! -e "{marks}/go" ]; do sleep 0.05; done'],
        },
        {"name": "second", "image": "sh", "command": ["sh", "-c", note("second")], "depends": "first"},
    ]
    return json.dumps({"name": "dag", "tasks": tasks})


@dataclass
class Replicas:
    root: Path
    marks: Path
    env: dict[str, str]
    db: sa.Engine
    started: list[OdinServer]

    def start(self, name: str) -> OdinServer:
        server = OdinServer(self.root / name, self.env)
        self.started.append(server)
        return server.start()

    def task(self, task: str) -> tuple[str, int]:
        with self.db.connect() as conn:
            row = conn.execute(sa.text("SELECT status, attempt FROM task_runs WHERE name = :n"), {"n": task}).one()
        return str(row.status), int(row.attempt)

    def run_status(self) -> str | None:
        with self.db.connect() as conn:
            return conn.execute(sa.text("SELECT status FROM runs")).scalar()

    def epoch(self) -> int:
        with self.db.connect() as conn:
            return int(conn.execute(sa.text("SELECT epoch FROM leadership WHERE name = 'scheduler'")).scalar_one())

    def ran(self, task: str) -> int:
        """How many attempts of `task` ran, on any replica."""
        path = self.marks / f"{task}.ran"
        return len(path.read_text().split()) if path.exists() else 0


@pytest.fixture
def replicas(tmp_path: Path, postgres_admin_url: str) -> Iterator[Replicas]:
    marks = tmp_path / "marks"
    marks.mkdir()
    remote = GitRemote.create(tmp_path / "repo")
    remote.commit({"dag/main.yml": _pipeline(marks)})
    with scratch_database(postgres_admin_url) as url:
        env = {
            "ODIN_DATABASE_URL": url,
            "ODIN_REPO": remote.file_url,
            "ODIN_POLL_INTERVAL": "0.5",
            "ODIN_RUN_ON_FIRST_SYNC": "true",
            "ODIN_RETRY_BACKOFF": "0.1",
            "ODIN_SHUTDOWN_GRACE": "10",
        }
        db = sa.create_engine(url)
        group = Replicas(tmp_path, marks, env, db, [])
        try:
            yield group
        finally:
            (marks / "go").touch()
            for server in group.started:
                if server.proc is not None and server.proc.poll() is None:
                    server.proc.send_signal(signal.SIGCONT)
                server.stop()
            db.dispose()


def _started(server: OdinServer, task: str) -> list[str]:
    """The attempts of `task` this replica's local executor started (`<task>.<attempt>`)."""
    return sorted({p.name.rsplit(".", 1)[0] for p in (server.data_dir / "tasks").rglob(f"{task}.*.log")})


def _lead(replicas: Replicas) -> tuple[OdinServer, OdinServer]:
    """Start a leader, wait until its first task runs, then start a follower."""
    leader = replicas.start("a")
    wait_until(lambda: LEADS in leader.log(), 30, message="the first replica leads")
    wait_until(lambda: replicas.ran("first"), 60, message="the leader started `first`")
    follower = replicas.start("b")
    return leader, follower


def test_the_follower_takes_over_a_killed_leader_within_15_seconds(replicas: Replicas) -> None:
    leader, follower = _lead(replicas)
    epoch = replicas.epoch()
    assert LEADS not in follower.log()
    killed = time.monotonic()
    leader.kill()
    wait_until(lambda: LEADS in follower.log(), 15, interval=0.05, message="the follower leads within 15 s")
    took = time.monotonic() - killed
    assert replicas.epoch() == epoch + 1
    (replicas.marks / "go").touch()
    wait_until(lambda: replicas.run_status() == "succeeded", 60, message="the follower finishes the run")
    assert _started(follower, "second") and not _started(leader, "second")
    print(f"failover after SIGKILL: {took:.2f} s")


def test_sigterm_hands_the_rest_of_the_run_to_the_follower(replicas: Replicas) -> None:
    leader, follower = _lead(replicas)
    assert leader.proc is not None
    signalled = time.monotonic()
    leader.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: "shutting down gracefully" in leader.log(), 10, message="the leader took the signal")
    (replicas.marks / "go").touch()  # `first` ends inside the grace period: recorded, and nothing follows it here
    try:
        code = leader.proc.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the leader is still up 30 s after SIGTERM:\n{leader.log()}") from None
    assert code == 0, leader.log()
    assert time.monotonic() - signalled < 30
    assert "leadership 'scheduler' epoch 1 released" in leader.log()
    assert replicas.task("first") == ("succeeded", 1), "the task that ended in the grace period was recorded"
    wait_until(lambda: replicas.run_status() == "succeeded", 60, message="the follower finishes the run")
    assert _started(follower, "second") == ["second.1"], "`second` ran on the follower"
    assert not _started(leader, "second"), "nothing started on the leader after the signal"
    assert replicas.task("second") == ("succeeded", 1)
    assert "nothing new was started since the signal" in leader.log()


def test_a_leader_paused_past_its_lease_creates_nothing_when_it_wakes(replicas: Replicas) -> None:
    replicas.env["ODIN_LEADER_LEASE"] = "3"
    leader, follower = _lead(replicas)
    assert leader.proc is not None
    epoch = replicas.epoch()
    leader.proc.send_signal(signal.SIGSTOP)
    try:
        # The paused leader's connections stay open: the follower takes over only once the 3 s lease has expired.
        wait_until(lambda: LEADS in follower.log(), 20, interval=0.05, message="the follower takes over")
        assert replicas.epoch() == epoch + 1
        # The follower retries `first` (the paused leader's attempt is not its to adopt); `go` ends both attempts,
        # so the paused leader wakes to a finished `first` and a `second` it would start if it still led.
        wait_until(lambda: replicas.ran("first") == 2, 30, message="the follower runs `first` again")
        (replicas.marks / "go").touch()
        wait_until(lambda: replicas.run_status() == "succeeded", 60, message="the follower finishes the run")
    finally:
        leader.proc.send_signal(signal.SIGCONT)
    wait_until(lambda: "leadership lost" in leader.log(), 20, message="the old leader steps down")
    assert leader.proc.poll() is None, "it stepped down; it did not crash"
    leader.wait_healthy(10, interval=0.1)
    assert _started(follower, "second") == ["second.1"], "`second` ran once, on the new leader"
    assert not _started(leader, "second"), "the old leader started nothing"
    assert replicas.ran("second") == 1
    assert replicas.task("second") == ("succeeded", 1)
    assert replicas.epoch() == epoch + 1, "the old leader did not take the lead back"
