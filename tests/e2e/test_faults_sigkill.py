"""SIGKILL `odin serve` at random points during 20 short runs, restart it each time: every run finishes, no task
starts twice, no run is lost (issue 14 item 5, local executor; the Kubernetes variant is tests/kube/
test_faults_sigkill.py).

The kill points are drawn from a seeded generator; the seed is printed (and in the assertion messages), and
`ODIN_FAULT_SEED=<seed>` replays a failing schedule. Every task appends one line to a file of its own when it
starts, so a task started twice (by the killed controller and again by its successor) shows as two lines. The
restarted controller uses the same data directory, as a pod restarted on its volume does: it adopts the tasks that
kept running while it was down (their processes are in sessions of their own) instead of starting them again.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from odin.controller.store.db import create_db_engine
from odin.controller.store.runs import RUNS, TASKS
from tests.support.git import GitRemote
from tests.support.seed import fault_seed
from tests.support.server import OdinServer
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

RUNS_WANTED = 20
KILLS = 5  # at most: kills stop once every run has finished


def _pipeline(name: str, marks: Path) -> str:
    """`a` then `b`, each noting its start in a file of its own and taking a moment (so kills land mid-task)."""

    def step(task: str) -> list[str]:
        return ["sh", "-c", f'echo started >> "{marks}/{name}.{task}"; sleep 1']

    tasks = [
        {"name": "a", "image": "sh", "command": step("a")},
        {"name": "b", "image": "sh", "command": step("b"), "depends": "a"},
    ]
    return json.dumps({"name": name, "tasks": tasks})


def test_sigkill_at_random_points_loses_no_run_and_starts_no_task_twice(tmp_path: Path) -> None:
    seed = fault_seed()
    rng = random.Random(seed)
    marks = tmp_path / "marks"
    marks.mkdir()
    names = [f"p{i:02d}" for i in range(RUNS_WANTED)]
    remote = GitRemote.create(tmp_path / "repo")
    remote.commit({f"{n}/main.yml": _pipeline(n, marks) for n in names})
    state = tmp_path / "state"
    env = {
        "ODIN_REPO": remote.file_url,
        "ODIN_POLL_INTERVAL": "0.5",
        "ODIN_RUN_ON_FIRST_SYNC": "true",
        "ODIN_RETRY_BACKOFF": "0.1",
        "ODIN_PARALLELISM": "4",
        "ODIN_MAX_ACTIVE_TASKS": "6",
    }
    db = create_db_engine(f"sqlite:///{state / 'odin.db'}")

    def statuses() -> dict[str, str]:
        if not (state / "odin.db").exists():
            return {}
        with db.connect() as conn:
            try:
                return {r.pipeline: r.status for r in conn.execute(sa.select(RUNS.c.pipeline, RUNS.c.status))}
            except sa.exc.OperationalError:  # the schema is not there yet
                return {}

    server = OdinServer(state, env).start()
    kills: list[str] = []
    context = f"seed {seed}"
    try:
        while len(kills) < KILLS and set(statuses().values()) != {"succeeded"}:
            delay = rng.uniform(0.3, 2.5)
            time.sleep(delay)  # a random kill point, not a wait for a condition
            kills.append(f"{delay:.2f}s ({sum(s == 'succeeded' for s in statuses().values())} runs done)")
            server.kill()
            server = OdinServer(state, env).start()  # a fresh port: another process may hold the old one
        context = f"seed {seed}, kills after {kills}"
        try:
            wait_until(
                lambda: len(s := statuses()) == RUNS_WANTED and set(s.values()) == {"succeeded"}, 90, interval=0.2
            )
        except AssertionError as e:
            raise AssertionError(f"not every run succeeded ({context}): {statuses()}\n{server.log()[-4000:]}") from e
    finally:
        server.stop()
    print(f"kills after {kills}")
    with db.connect() as conn:
        runs = conn.execute(sa.select(RUNS.c.pipeline)).all()
        tasks = {(r.run_id, r.name): r.status for r in conn.execute(sa.select(TASKS))}
    db.dispose()
    assert sorted(r.pipeline for r in runs) == names, f"one run per pipeline, none lost ({context})"
    started = {(n, t): len((marks / f"{n}.{t}").read_text().split()) for n in names for t in ("a", "b")}
    twice = {k: v for k, v in started.items() if v != 1}
    assert not twice, f"tasks started other than once ({context}): {twice}"
    assert len(tasks) == 2 * RUNS_WANTED and set(tasks.values()) == {"succeeded"}, f"every task succeeded ({context})"
