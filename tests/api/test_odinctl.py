"""Every odinctl command as a user runs it: a real subprocess against a real server, SQLite and Postgres."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.api.conftest import PASSWORD, Served
from tests.support.server import BIN, odinctl
from tests.support.wait import wait_until


@pytest.fixture(scope="module")
def config(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logged-in odinctl configuration directory."""
    directory = tmp_path_factory.mktemp("odinctl")
    res = odinctl("login", "--password-stdin", server=served.server, config_dir=directory, stdin=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    return directory


def ctl(
    served: Served, config: Path, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return odinctl(*args, server=served.server, config_dir=config, stdin=stdin, env=env)


def ok(res: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert res.returncode == code, f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    return res.stdout


def as_json(res: subprocess.CompletedProcess[str], code: int = 0) -> Any:
    return json.loads(ok(res, code))


def test_login_whoami_logout_and_credentials_file(served: Served, tmp_path: Path) -> None:
    served.user("ctl-user", "member", password=PASSWORD)  # not admin: logging out ends all of a user's sessions
    login = ("login", "-u", "ctl-user", "--password-stdin")
    res = odinctl(*login, server=served.server, config_dir=tmp_path, stdin=PASSWORD + "\n")
    assert "logged in" in ok(res) and "(member)" in res.stdout
    creds = tmp_path / "credentials.json"
    assert creds.stat().st_mode & 0o777 == 0o600
    assert "ctl-user (member)" in ok(odinctl("whoami", server=served.server, config_dir=tmp_path))
    me = as_json(odinctl("whoami", "-o", "json", server=served.server, config_dir=tmp_path))
    assert (me["username"], me["token_kind"]) == ("ctl-user", "session")
    token = json.loads(creds.read_text())["servers"][served.url]["token"]
    other_device = served.login("ctl-user", PASSWORD)
    assert "logged out" in ok(odinctl("logout", server=served.server, config_dir=tmp_path))
    assert served.get("/v1/auth/whoami", token=token).status_code == 401, "the server ended the session"
    assert served.get("/v1/auth/whoami", token=other_device).status_code == 200, "and only that one"
    res = odinctl("whoami", server=served.server, config_dir=tmp_path)
    assert res.returncode == 3 and "not logged in" in res.stderr
    ok(odinctl(*login, server=served.server, config_dir=tmp_path, stdin=PASSWORD + "\n"))
    assert "logged out" in ok(odinctl("logout", "--everywhere", server=served.server, config_dir=tmp_path))
    assert served.get("/v1/auth/whoami", token=other_device).status_code == 401, "--everywhere ends every session"
    bad = odinctl("login", "--password-stdin", server=served.server, config_dir=tmp_path, stdin="nope\n")
    assert bad.returncode == 3 and "wrong username or password" in bad.stderr


def test_api_tokens_from_the_environment_or_stored(served: Served, config: Path, tmp_path: Path) -> None:
    token = ok(ctl(served, config, "tokens", "create", "ci", "--role", "viewer")).strip()
    assert token.startswith("odin_")
    me = as_json(odinctl("whoami", "-o", "json", server=served.server, config_dir=tmp_path, env={"ODIN_TOKEN": token}))
    assert (me["token_kind"], me["role"]) == ("api", "viewer")
    ok(odinctl("login", "--token-stdin", server=served.server, config_dir=tmp_path, stdin=token + "\n"))
    assert "viewer" in ok(odinctl("whoami", server=served.server, config_dir=tmp_path))
    res = odinctl("run", "ok", server=served.server, config_dir=tmp_path)
    assert res.returncode == 3 and "member role" in res.stderr, "403 is an authorisation problem: exit 3"
    listed = as_json(ctl(served, config, "tokens", "list", "-o", "json"))["items"]
    [mine] = [t for t in listed if t["name"] == "ci"]
    assert "ci" in ok(ctl(served, config, "tokens", "list"))
    assert "revoked" in ok(ctl(served, config, "tokens", "revoke", str(mine["id"])))
    res = odinctl("whoami", server=served.server, config_dir=tmp_path)
    assert res.returncode == 3 and "revoked" in res.stderr and "odinctl login" in res.stderr


def test_validate_offline_and_on_the_server(served: Served, config: Path, tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.mkdir()
    (good / "main.yml").write_text("name: g\ntasks:\n  - {name: t, image: x, command: [echo]}\n")
    bad = tmp_path / "bad.yml"
    bad.write_text("name: b\ntasks:\n  - {name: t, image: x, command: [echo], depends: ghost}\n")
    ok(ctl(served, config, "validate", str(good)))
    assert "ghost" in ok(ctl(served, config, "validate", str(bad)), 1)
    ok(ctl(served, config, "validate", "--remote", str(good)))
    assert f"{bad}:3:" in ok(ctl(served, config, "validate", "--remote", str(bad)), 1)
    report = as_json(ctl(served, config, "validate", "--remote", "-o", "json", str(bad)), 1)
    assert report["pipelines"][0]["ok"] is False


def test_pipelines_and_commits(served: Served, config: Path) -> None:
    table = ok(ctl(served, config, "pipelines"))
    assert "ok" in table and "vision/detector" in table and "valid" in table
    dag = ok(ctl(served, config, "pipelines", "ok"))
    assert "prep" in dag and "  train" in dag and "param who" in dag
    nested = yaml.safe_load(ok(ctl(served, config, "pipelines", "vision/detector", "-o", "yaml")))
    assert nested["name"] == "vision/detector"
    sha = served.remote.head
    assert sha[:12] in ok(ctl(served, config, "commits"))
    detail = ok(ctl(served, config, "commits", sha[:8]))
    assert sha in detail and "pipelines changed" in detail
    res = ctl(served, config, "commits", "0000000")
    assert res.returncode == 1 and "has not recorded" in res.stderr


def test_run_wait_show_logs_events_and_runs(served: Served, config: Path) -> None:
    out = ok(ctl(served, config, "run", "ok", "-p", "who=ctl", "-p", "n=2", "--wait"))
    assert "started ok-" in out and "succeeded" in out
    run_id = out.split("started ", 1)[1].split()[0]
    shown = ok(ctl(served, config, "show", run_id))
    assert "who=ctl" in shown and "prep" in shown and "succeeded" in shown
    assert ok(ctl(served, config, "logs", run_id, "prep")) == "prep ctl\n"
    assert ok(ctl(served, config, "logs", run_id, "train", "--tail", "1")) == "trained\n"
    events = ok(ctl(served, config, "events", run_id))
    assert "run.created" in events and "task.status" in events
    assert "prep" in ok(ctl(served, config, "events", run_id, "--task", "prep"))
    found = as_json(ctl(served, config, "runs", "--commit", served.remote.head[:9], "-o", "json"))
    assert run_id in [r["id"] for r in found["items"]]
    assert run_id in ok(ctl(served, config, "runs", "--pipeline", "ok", "--status", "succeeded"))
    assert "no runs" in ctl(served, config, "runs", "--pipeline", "nope").stderr
    final = as_json(ctl(served, config, "run", "ok", "--wait", "-o", "json"))
    assert final["status"] == "succeeded" and final["tasks"]


def test_a_failed_run_fails_the_ci_job_and_rerun_recovers(served: Served, config: Path) -> None:
    (served.marks / "flaky-ok").unlink(missing_ok=True)
    res = ctl(served, config, "run", "flaky", "--wait")
    assert res.returncode == 1 and "failed" in res.stdout
    run_id = res.stdout.split("started ", 1)[1].split()[0]
    assert ctl(served, config, "show", run_id).returncode == 1
    (served.marks / "flaky-ok").touch()
    rerun = ok(ctl(served, config, "rerun", run_id, "--failed-only", "--wait"))
    assert "reused from" in rerun and "succeeded" in rerun
    recovered = rerun.split("started ", 1)[1].split()[0]
    res = ctl(served, config, "rerun", run_id, "--task", "c")
    assert res.returncode == 1 and "needs the outputs of b" in res.stderr
    again = as_json(ctl(served, config, "rerun", recovered, "--task", "c", "-o", "json"))
    assert again["parent_run"] == recovered and again["trigger"] == "rerun"
    served.wait_run(again["id"])
    res = ctl(served, config, "rerun", run_id, "--task", "nope")
    assert res.returncode == 1 and "no task 'nope'" in res.stderr


CACHED = """
name: ctl-cached
tasks:
  - name: make
    image: busybox
    cache: true
    command: [sh, -c, 'echo 7 > "$RESULTS_PATH/n"']
    outputs: {results: [n]}
"""


def test_rerun_no_cache_runs_cached_tasks_again(served: Served, config: Path) -> None:
    """`odinctl rerun --no-cache`, the command and its flag (not only the API body): the rerun runs the cached task
    again, still recording its key, and says so in `odinctl show`; a plain rerun is a cache hit."""
    sha = served.remote.commit({"ctl-cached/main.yml": CACHED}, message="Add a cached pipeline")

    def pushed() -> list[dict[str, Any]]:  # the push starts the first run
        runs = served.get("/v1/runs", params={"commit": sha, "pipeline": "ctl-cached"}).json()["items"]
        return list(runs)

    [auto] = wait_until(pushed, 30)
    first = served.wait_run(auto["id"])
    [made] = first["tasks"]
    assert made["status"] == "succeeded" and made["reason"] != "Cached" and made["cache_key"]

    out = ok(ctl(served, config, "rerun", first["id"], "--no-cache", "--wait"))
    assert f"(rerun of {first['id']})" in out and "succeeded" in out
    bypassed = served.wait_run(out.split("started ", 1)[1].split()[0])
    [again] = bypassed["tasks"]
    assert (bypassed["no_cache"], bypassed["parent_run"], bypassed["commit_sha"]) == (True, first["id"], sha)
    assert (again["status"], again["cache_key"], again["results"]) == ("succeeded", made["cache_key"], {"n": 7})
    assert again["reason"] != "Cached", again
    assert "--no-cache" in ok(ctl(served, config, "show", bypassed["id"]))

    plain = served.wait_run(as_json(ctl(served, config, "rerun", first["id"], "-o", "json"))["id"])
    [hit] = plain["tasks"]
    assert plain["no_cache"] is False
    assert (hit["status"], hit["reason"]) == ("succeeded", "Cached"), "without the flag the rerun is a cache hit"


def test_watch_follows_a_run_to_its_end_and_cancel_stops_one(served: Served, config: Path) -> None:
    run = served.start("gate")
    env = {"ODIN_CONFIG_DIR": str(config), "ODIN_SERVER": served.url, "NO_COLOR": "1", "COLUMNS": "200"}
    watcher = subprocess.Popen(
        [str(BIN / "odinctl"), "watch", run["id"]],
        env={**_clean_env(), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: served.get(f"/v1/runs/{run['id']}").json()["tasks"][0]["status"] == "running", 30)
        served.release(run["id"])
        out, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err
    assert "hold" in out and "after" in out and out.rstrip().endswith("all tasks succeeded")

    held = served.start("gate")
    follow = subprocess.Popen(
        [str(BIN / "odinctl"), "logs", "-f", held["id"], "hold"],
        env={**_clean_env(), **env},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: served.get(f"/v1/runs/{held['id']}").json()["tasks"][0]["status"] == "running", 30)
        assert "cancelling" in ok(ctl(served, config, "cancel", held["id"]))
        out, _ = follow.communicate(timeout=60)
    finally:
        follow.kill()
    assert follow.returncode == 0 and out == ""
    assert ctl(served, config, "watch", held["id"]).returncode == 1, "a cancelled run is not a success"
    res = ctl(served, config, "cancel", held["id"])
    assert res.returncode == 1 and "already finished" in res.stderr


def test_users_commands(served: Served, config: Path) -> None:
    ok(ctl(served, config, "users", "create", "cleo", "--role", "member", "--password-stdin", stdin="cleo-password\n"))
    listed = as_json(ctl(served, config, "users", "list", "-o", "json"))["items"]
    assert ("cleo", "member") in [(u["username"], u["role"]) for u in listed]
    assert "cleo" in ok(ctl(served, config, "users", "list"))
    assert "(disabled)" in ok(ctl(served, config, "users", "update", "cleo", "--disable"))
    assert "viewer" in ok(ctl(served, config, "users", "update", "cleo", "--enable", "--role", "viewer"))
    res = ctl(served, config, "users", "create", "cleo", "--password-stdin", stdin="cleo-password\n")
    assert res.returncode == 1 and "already exists" in res.stderr


def test_usage_errors_exit_2_and_server_problems_exit_3(served: Served, config: Path, tmp_path: Path) -> None:
    assert ctl(served, config, "run", "ok", "-p", "novalue").returncode == 2
    assert ctl(served, config, "runs", "--no-such-option").returncode == 2
    unreachable = odinctl("runs", config_dir=tmp_path, env={"ODIN_SERVER": "http://127.0.0.1:9", "ODIN_TOKEN": "x"})
    assert unreachable.returncode == 3 and "cannot reach" in unreachable.stderr
    res = ctl(served, config, "runs", "--commit", "zzz")
    assert res.returncode == 1 and "hexadecimal" in res.stderr
    completion = odinctl("--show-completion", "bash", config_dir=tmp_path)
    assert completion.returncode == 0 and "odinctl" in completion.stdout


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}


def test_the_live_view_redraws_the_dag_in_a_terminal(served: Served) -> None:
    import asyncio
    import io

    from rich.console import Console

    from odin.cli.watch import watch_run

    run = served.start("gate")
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160, color_system=None)

    async def scenario() -> str:
        watching = asyncio.create_task(watch_run(served.url, served.admin_token, run["id"], console=console, live=True))
        await asyncio.to_thread(
            wait_until, lambda: served.get(f"/v1/runs/{run['id']}").json()["tasks"][0]["status"] == "running", 30
        )
        served.release(run["id"])
        final = await asyncio.wait_for(watching, 60)
        return final.status

    assert asyncio.run(scenario()) == "succeeded"
    drawn = screen.getvalue()
    assert "✓ hold" in drawn and "✓ after" in drawn and "all tasks succeeded" in drawn


def test_without_a_websocket_the_watch_polls(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import io

    from rich.console import Console

    from odin.api.client import OdinWebSocket, ServerUnreachable
    from odin.cli import watch

    async def refuse(*_args: Any, **_kwargs: Any) -> OdinWebSocket:
        raise ServerUnreachable("the proxy does not pass WebSockets")

    monkeypatch.setattr(OdinWebSocket, "connect", refuse)
    monkeypatch.setattr(watch, "POLL_INTERVAL", 0.1)
    run = served.start("gate")
    out = io.StringIO()
    console = Console(file=out, width=160, color_system=None)

    async def scenario() -> str:
        watching = asyncio.create_task(
            watch.watch_run(served.url, served.admin_token, run["id"], console=console, live=False)
        )
        await asyncio.sleep(0.3)
        served.release(run["id"])
        return (await asyncio.wait_for(watching, 60)).status

    assert asyncio.run(scenario()) == "succeeded"
    text = out.getvalue()
    assert "polling every 0.1s" in text and "after succeeded" in text
    held = served.start("gate")
    try:
        with pytest.raises(TimeoutError):
            asyncio.run(
                watch.watch_run(served.url, served.admin_token, held["id"], console=console, timeout=0.5, live=False)
            )
    finally:
        served.release(held["id"])
        served.wait_run(held["id"])


def test_show_lists_results_and_artifacts(served: Served, config: Path) -> None:
    out = ok(ctl(served, config, "run", "made", "--wait"))
    run_id = out.split("started ", 1)[1].split()[0]
    shown = ok(ctl(served, config, "show", run_id))
    assert "results.acc" in shown and "0.9" in shown
    assert "artifacts.model" in shown and "file 1 B" in shown


def test_a_queued_run_shows_as_queued_with_why_it_waits(served: Served, config: Path) -> None:
    first = served.start("serial")
    second = served.start("serial")
    try:
        wide = ("runs", "--pipeline", "serial", "--status", "queued", "-o", "wide")
        table = ok(ctl(served, config, *wide, COLUMNS="250"))
        assert second["id"] in table and "queued" in table and first["id"] not in table
        assert "waiting: 1 of 1 run(s) of pipeline serial active" in table
        assert "waiting: 1 of 1" in ok(ctl(served, config, "show", second["id"], COLUMNS="250"))
    finally:
        served.release(first["id"])
        served.release(second["id"])  # before it starts: its task then ends at once
        served.wait_run(first["id"])
        served.wait_run(second["id"])
