"""The spine end to end: a push to a real repository becomes a run in a real `odin serve`, found with `odinctl`.

Runs against SQLite (the embedded default) and against real Postgres.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.support.git import GitRemote
from tests.support.server import OdinServer, odinctl
from tests.support.wait import wait_until

PASSWORD = "correct-horse-battery"

PIPELINE = """\
name: gated
tasks:
  - name: first
    image: busybox
    command: [sh, -c, 'echo ran >> "{marks}/first"']
  - name: wait
    image: busybox
    command: [sh, -c, 'echo ran >> "{marks}/wait"; while [ ! -e "{marks}/go" ]; do sleep 0.05; done']
    depends: first
  - name: last
    image: busybox
    command: [sh, -c, 'echo ran >> "{marks}/last"']
    depends: wait
"""


@pytest.fixture
def server_env(db_url: str, git_remote: GitRemote, tmp_path: Path) -> dict[str, str]:
    git_remote.commit({"hello/main.yml": "name: hello\ntasks:\n  - {name: hi, image: busybox, command: [echo, hi]}\n"})
    return {
        "ODIN_REPO": git_remote.file_url,
        "ODIN_DATABASE_URL": db_url,
        "ODIN_POLL_INTERVAL": "0.2",
        "ODIN_ADMIN_PASSWORD": PASSWORD,
        "ODIN_RETRY_BACKOFF": "0.1",
    }


@pytest.fixture
def server(server_env: dict[str, str], tmp_path: Path) -> Iterator[OdinServer]:
    with OdinServer(tmp_path / "state", server_env) as s:
        yield s


def login(server: OdinServer, config: Path) -> None:
    res = odinctl("login", "--password-stdin", server=server, config_dir=config, stdin=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    assert "logged in" in res.stdout
    creds = config / "credentials.json"
    assert creds.stat().st_mode & 0o777 == 0o600


def runs_for(server: OdinServer, config: Path, sha: str) -> list[dict[str, Any]]:
    res = odinctl("runs", "--commit", sha[:10], "-o", "json", server=server, config_dir=config)
    assert res.returncode == 0, res.stderr
    return list(json.loads(res.stdout)["items"])


def test_push_becomes_a_run_found_by_commit(server: OdinServer, git_remote: GitRemote, tmp_path: Path) -> None:
    config = tmp_path / "config"
    login(server, config)
    wait_until(lambda: "first sync" in server.log(), 30)
    sha = git_remote.commit(
        {"hello/main.yml": "name: hello\ntasks:\n  - {name: hi, image: busybox, command: [echo, hi2]}\n"}
    )
    [run] = wait_until(lambda: runs_for(server, config, sha), 30, message="run appears for the pushed commit")
    assert run["commit_sha"] == sha and run["pipeline"] == "hello" and run["trigger"] == "poll"
    wait_until(lambda: runs_for(server, config, sha)[0]["status"] == "succeeded", 30)
    shown = odinctl("show", run["id"], server=server, config_dir=config)
    assert shown.returncode == 0, shown.stderr
    assert "hi" in shown.stdout and "succeeded" in shown.stdout
    table = odinctl("runs", "--commit", sha, server=server, config_dir=config)
    assert run["id"] in table.stdout


def test_api_refuses_bad_tokens_and_bad_input(server: OdinServer) -> None:
    assert httpx.get(f"{server.url}/v1/runs").status_code == 401
    bad = httpx.post(f"{server.url}/v1/auth/token", json={"username": "admin", "password": "nope"})
    assert bad.status_code == 401
    token = httpx.post(f"{server.url}/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()
    claims = jwt.decode(token["access_token"], options={"verify_signature": False})
    assert {"sub", "role", "iat", "exp", "iss", "aud", "jti"} <= set(claims)
    none_token = jwt.encode({**claims, "role": "admin"}, key="", algorithm="none")
    assert httpx.get(f"{server.url}/v1/runs", headers={"Authorization": f"Bearer {none_token}"}).status_code == 401
    tampered = token["access_token"][:-3] + ("AAA" if not token["access_token"].endswith("AAA") else "BBB")
    assert httpx.get(f"{server.url}/v1/runs", headers={"Authorization": f"Bearer {tampered}"}).status_code == 401
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    assert httpx.get(f"{server.url}/v1/runs", headers=auth, params={"commit": "xyz"}).status_code == 400
    assert httpx.get(f"{server.url}/v1/runs", headers=auth, params={"commit": "' OR 1=1 --"}).status_code == 400
    assert httpx.get(f"{server.url}/v1/runs/nope", headers=auth).status_code == 404
    assert httpx.get(f"{server.url}/v1/runs", headers=auth).json() == {"items": [], "next_cursor": None}
    assert httpx.get(f"{server.url}/readyz").status_code in (200, 503)


def test_sigkill_mid_run_then_restart_finishes_without_rerunning(
    server_env: dict[str, str], git_remote: GitRemote, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    config = tmp_path / "config"
    first = OdinServer(tmp_path / "state", server_env).start()
    try:
        wait_until(lambda: "first sync" in first.log(), 30)
        login(first, config)
        sha = git_remote.commit({"gated/main.yml": PIPELINE.format(marks=marks)})
        wait_until((marks / "wait").exists, 30, message="the gated task is running")
    finally:
        first.kill()
    (marks / "go").touch()  # the running task finishes while no Odin is up
    second = OdinServer(tmp_path / "state", server_env, port=first.port).start()  # odinctl logged in to this URL
    try:
        wait_until(lambda: runs_for(second, config, sha)[0]["status"] == "succeeded", 60)
    finally:
        second.stop()
    assert (marks / "first").read_text().count("ran") == 1
    assert (marks / "wait").read_text().count("ran") == 1, "a task that finished while Odin was down is not rerun"
    assert (marks / "last").read_text().count("ran") == 1


def test_odinctl_errors_are_clear(tmp_path: Path) -> None:
    res = odinctl("runs", config_dir=tmp_path, env={"ODIN_SERVER": "http://127.0.0.1:9"})
    assert res.returncode == 3 and "not logged in" in res.stderr
    res = odinctl("runs", config_dir=tmp_path, env={"ODIN_SERVER": "http://127.0.0.1:9", "ODIN_TOKEN": "x"})
    assert res.returncode == 3 and "cannot reach" in res.stderr
