"""SIGTERM stops `odin serve` taking work first (issue 8, item 6).

A real `odin serve` runs a DAG where `second` depends on `first`, and `holder` keeps a request open (its log,
followed) so that the server has a graceful shutdown to go through. `first` ends right after SIGTERM, inside that
grace period: its outcome must be recorded, and `second` must never start. Once `first` is recorded, `holder` ends
too (a followed log keeps the server from exiting until its task ends). The same holds for a retry that falls due
during the grace period and for a run created through the API then: recorded, started by the next server.
"""

from __future__ import annotations

import json
import signal
import socket
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


def _send_head(url: str, path: str, headers: dict[str, str], length: int) -> socket.socket:
    """A POST whose head is sent and whose body the server is waiting for: it answered `100 Continue`, which uvicorn
    sends when the application first asks for the body. The request is then in flight, as one whose client is slow."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {length}", "Expect: 100-continue"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(4096)
        assert chunk, f"the server closed the connection: {answer!r}"
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 100"), answer
    return sock


def _read_response(sock: socket.socket) -> tuple[int, dict[str, object]]:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
            None,
        )
        if length is not None and len(body) >= length:
            break
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_a_retry_falling_due_and_a_run_created_during_the_grace_period_do_not_start(tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    remote = GitRemote.create(tmp_path / "repo")
    flaky = f'echo tried >> "{marks}/flaky"; while [ ! -e "{marks}/go" ]; do sleep 0.05; done; exit 1'
    holder = f'touch "{marks}/holder"; while [ ! -e "{marks}/release" ]; do sleep 0.05; done'
    retrying = {
        "name": "retrying",
        "tasks": [
            {"name": "flaky", "image": "sh", "command": ["sh", "-c", flaky], "retries": 1},
            {"name": "holder", "image": "sh", "command": ["sh", "-c", holder]},
        ],
    }
    fresh = {
        "name": "fresh",
        "tasks": [{"name": "new", "image": "sh", "command": ["sh", "-c", f'touch "{marks}/fresh-$ODIN_RUN"']}],
    }
    remote.commit({"retrying/main.yml": json.dumps(retrying), "fresh/main.yml": json.dumps(fresh)})
    backoff = 0.1
    env = {
        "ODIN_REPO": remote.file_url,
        "ODIN_POLL_INTERVAL": "0.2",
        "ODIN_RUN_ON_FIRST_SYNC": "true",
        "ODIN_ADMIN_PASSWORD": PASSWORD,
        "ODIN_SHUTDOWN_GRACE": "30",
        "ODIN_RETRY_BACKOFF": str(backoff),
    }
    server = OdinServer(tmp_path / "state", env).start()
    streaming = threading.Event()
    try:
        wait_until(lambda: (marks / "flaky").exists() and (marks / "holder").exists(), 60, message="tasks running")
        token = httpx.post(f"{server.url}/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        runs = httpx.get(f"{server.url}/v1/runs", params={"pipeline": "retrying"}, headers=headers).json()["items"]
        [retrying_run] = [r["id"] for r in runs]

        def follow_holder() -> None:
            url = f"{server.url}/v1/runs/{retrying_run}/tasks/holder/logs"
            try:
                with httpx.stream("GET", url, params={"follow": "true"}, headers=headers, timeout=120) as res:
                    streaming.set()
                    for _ in res.iter_raw():
                        pass
            except httpx.HTTPError:
                pass

        threading.Thread(target=follow_holder, daemon=True).start()
        wait_until(streaming.is_set, 30, message="the log stream is open")
        body = json.dumps({"pipeline": "fresh"}).encode()
        request = _send_head(server.url, "/v1/runs", {**headers, "Content-Type": "application/json"}, len(body))
        assert server.proc is not None
        server.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "Shutting down" in server.log(), 30, message="the server began its graceful shutdown")

        (marks / "go").touch()  # `flaky` fails now, inside the grace period; its retry falls due `backoff` later
        wait_until(lambda: "task flaky attempt 1: retrying" in server.log(), 30, message="the retry was decided")
        due = time.monotonic() + backoff

        request.sendall(body)  # the run is created now, inside the grace period
        status, created = _read_response(request)
        request.close()
        assert status == 201, created
        new_run = str(created["id"])
        wait_until(lambda: f"run {new_run}" in server.log(), 30, message="the engine heard of the new run")
        # Hold the grace period well past the moment the retry fell due: nothing may start in it.
        wait_until(lambda: time.monotonic() > due + 2, 10, message="the retry is overdue")
        (marks / "release").touch()
        assert server.proc.wait(60) == 0, server.log()
    finally:
        (marks / "release").touch()
        (marks / "go").touch()
        server.stop()
    first_log = server.log()
    assert (marks / "flaky").read_text().count("tried") == 1, "a retry started after SIGTERM"
    assert not (marks / f"fresh-{new_run}").exists(), "a run created after SIGTERM started"
    with sqlite3.connect(tmp_path / "state" / "odin.db") as db:
        tasks = dict(db.execute("SELECT run_id || '/' || name, status FROM task_runs").fetchall())
    assert tasks[f"{retrying_run}/flaky"] == "retrying", tasks
    assert tasks[f"{new_run}/new"] == "pending", tasks

    # Nothing was lost: the next server starts both.
    again = OdinServer(tmp_path / "state", env, port=server.port).start()
    try:
        wait_until((marks / f"fresh-{new_run}").exists, 60, message="the next server started the new run")
        wait_until(lambda: (marks / "flaky").read_text().count("tried") == 2, 60, message="the retry ran")
    finally:
        again.stop()
    assert "Traceback" not in first_log + again.log()
