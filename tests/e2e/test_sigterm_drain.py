"""SIGTERM stops `odin serve` taking work first (issue 8, item 6).

A real `odin serve` runs a DAG where `second` depends on `first`, and `holder` keeps a request open (its log,
followed) so that the server has a graceful shutdown to go through. `first` ends right after SIGTERM, inside that
grace period: its outcome must be recorded, and `second` must never start. Once `first` is recorded, `holder` ends
too (a followed log keeps the server from exiting until its task ends).
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx

from tests.support.git import GitRemote
from tests.support.server import OdinServer
from tests.support.wait import wait_until

PASSWORD = "correct-horse-battery"


def _pipeline(marks: Path) -> str:
    def wait_for(name: str) -> str:
        return f'while [ ! -e "{marks}/{name}" ]; do sleep 0.05; done'

    tasks = [
        {"name": "first", "image": "sh", "command": ["sh", "-c", f'touch "{marks}/first"; {wait_for("go")}']},
        {"name": "second", "image": "sh", "command": ["sh", "-c", f'touch "{marks}/second"'], "depends": "first"},
        {"name": "holder", "image": "sh", "command": ["sh", "-c", f'touch "{marks}/holder"; {wait_for("release")}']},
    ]
    return json.dumps({"name": "dag", "tasks": tasks})


def test_sigterm_starts_nothing_during_the_grace_period(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    remote = GitRemote.create(tmp_path / "repo")
    remote.commit({"dag/main.yml": _pipeline(marks)})
    env = {
        "ODIN_REPO": remote.file_url,
        "ODIN_POLL_INTERVAL": "0.2",
        "ODIN_RUN_ON_FIRST_SYNC": "true",
        "ODIN_ADMIN_PASSWORD": PASSWORD,
        "ODIN_SHUTDOWN_GRACE": "4",
    }
    server = OdinServer(tmp_path / "state", env).start()
    streaming = threading.Event()
    try:
        wait_until(lambda: (marks / "first").exists() and (marks / "holder").exists(), 60, message="tasks running")
        [run_dir] = (tmp_path / "state" / "runs").iterdir()
        token = httpx.post(f"{server.url}/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}

        def follow_holder() -> None:
            """An open request: uvicorn's graceful shutdown waits for it (up to its timeout)."""
            url = f"{server.url}/v1/runs/{run_dir.name}/tasks/holder/logs"
            try:
                with httpx.stream("GET", url, params={"follow": "true"}, headers=headers, timeout=60) as res:
                    streaming.set()
                    for _ in res.iter_raw():
                        pass
            except httpx.HTTPError:
                pass

        threading.Thread(target=follow_holder, daemon=True).start()
        wait_until(streaming.is_set, 30, message="the log stream is open")
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "Shutting down" in server.log(), 30, message="the server began its graceful shutdown")
        (marks / "go").touch()  # `first` ends now, inside the grace period
        wait_until(lambda: "task first attempt 1: succeeded" in server.log(), 30, message="first's outcome recorded")
        (marks / "release").touch()
        assert server.proc.wait(60) == 0, server.log()
    finally:
        (marks / "release").touch()
        (marks / "go").touch()
        server.stop()
    assert not (marks / "second").exists(), "a task started after SIGTERM"
    with sqlite3.connect(tmp_path / "state" / "odin.db") as db:
        statuses = dict(db.execute("SELECT name, status FROM task_runs").fetchall())
    assert statuses["first"] == "succeeded", "a task that ended during the grace period has its outcome recorded"
    assert statuses["second"] == "pending", statuses
    assert "nothing new was started since the signal" in server.log()


def test_a_followed_log_does_not_hold_the_server_past_its_grace(tmp_path: Path) -> None:
    """`logs --follow` of a task that runs for hours must not keep `odin serve` from stopping; the task itself is
    left running (a restart adopts it)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    remote = GitRemote.create(tmp_path / "repo")
    forever = f'touch "{marks}/started"; while [ ! -e "{marks}/release" ]; do sleep 0.05; done'
    pipeline = {"name": "long", "tasks": [{"name": "long", "image": "sh", "command": ["sh", "-c", forever]}]}
    remote.commit({"long/main.yml": json.dumps(pipeline)})
    env = {
        "ODIN_REPO": remote.file_url,
        "ODIN_POLL_INTERVAL": "0.2",
        "ODIN_RUN_ON_FIRST_SYNC": "true",
        "ODIN_ADMIN_PASSWORD": PASSWORD,
        "ODIN_SHUTDOWN_GRACE": "2",
    }
    server = OdinServer(tmp_path / "state", env).start()
    streaming, ended = threading.Event(), threading.Event()
    try:
        wait_until((marks / "started").exists, 60, message="the task is running")
        [run_dir] = (tmp_path / "state" / "runs").iterdir()
        token = httpx.post(f"{server.url}/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}

        def follow() -> None:
            url = f"{server.url}/v1/runs/{run_dir.name}/tasks/long/logs"
            try:
                with httpx.stream("GET", url, params={"follow": "true"}, headers=headers, timeout=60) as res:
                    streaming.set()
                    for _ in res.iter_raw():
                        pass
            except httpx.HTTPError:
                pass
            ended.set()

        threading.Thread(target=follow, daemon=True).start()
        wait_until(streaming.is_set, 30, message="the log stream is open")
        assert server.proc is not None
        signalled = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        try:
            code = server.proc.wait(30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"odin serve still up 30 s after SIGTERM:\n{server.log()}") from None
        assert code == 0, server.log()
        assert time.monotonic() - signalled < 20
        assert ended.wait(10), "the followed log ended when the server stopped"
        assert not (marks / "release").exists()
        assert "tasks still running after 2 s are left to finish" in server.log()
    finally:
        (marks / "release").touch()
        server.stop()
