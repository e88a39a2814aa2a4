"""odinctl as a person uses it (issue 12): why a commit has no runs, what a failed run's failing task printed, a live
view that ticks and tails the log, kubectl's `-o wide|name`, run ids that never wrap, and help without Python types.

Real `odinctl` subprocesses against a real `odin serve` (SQLite and Postgres), as tests/api/test_odinctl.py does.
"""

from __future__ import annotations

import json
import re
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
    directory = tmp_path_factory.mktemp("odinctl")
    res = odinctl("login", "--password-stdin", server=served.server, config_dir=directory, stdin=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    return directory


def ctl(served: Served, config: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return odinctl(*args, server=served.server, config_dir=config, env=env)


def ok(res: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert res.returncode == code, f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    return res.stdout


def recorded(served: Served, sha: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        r = served.get(f"/v1/commits/{sha}")
        return dict(r.json()) if r.status_code == 200 else None

    return wait_until(found, 60, interval=0.05, message=f"the server recorded {sha[:12]}")


def running(served: Served, run_id: str) -> bool:
    return bool(served.get(f"/v1/runs/{run_id}").json()["tasks"][0]["status"] == "running")


def test_runs_of_a_commit_that_started_nothing_say_why(served: Served, config: Path) -> None:
    bad = served.remote.commit(
        {"broken/main.yml": "name: broken\ntasks:\n  - {name: t, image: x, command: [echo], depends: ghost}\n"},
        message="Add a broken pipeline",
    )
    assert recorded(served, bad)["validation"] == "invalid"
    res = ctl(served, config, "runs", "--commit", bad)
    assert ok(res) == "", "finding no runs is not an error: exit 0, nothing on stdout"
    assert f"commit {bad[:12]} is invalid (1 problem); nothing was started" in res.stderr
    assert re.search(r"^  broken/main\.yml:3:\d+: .*ghost", res.stderr, re.MULTILINE), res.stderr
    assert json.loads(ok(ctl(served, config, "runs", "--commit", bad, "-o", "json")))["items"] == []

    skipped = served.remote.commit({"ok/helper.sh": "echo skipped\n"}, message="Tweak [skip odin]")
    assert recorded(served, skipped)["validation"] == "skipped"
    res = ctl(served, config, "runs", "--commit", skipped[:10])
    assert ok(res) == "" and f"commit {skipped[:12]} asked to be skipped" in res.stderr

    absorbed = served.remote.commit({"notes.txt": "1"}, message="first of a push", push=False)
    tip = served.remote.commit({"notes.txt": "2"}, message="tip of a push")
    recorded(served, tip)
    assert recorded(served, absorbed)["absorbed_by"] == tip
    res = ctl(served, config, "runs", "--commit", absorbed)
    assert ok(res) == "" and f"was absorbed by {tip}" in res.stderr and f"odinctl runs --commit {tip}" in res.stderr
    res = ctl(served, config, "runs", "--commit", tip)
    assert ok(res) == "" and f"commit {tip[:12]} changed no pipeline" in res.stderr

    res = ctl(served, config, "runs", "--commit", "0123456789abcdef")
    assert ok(res) == "" and "Odin has not recorded commit 0123456789abcdef" in res.stderr


def _failure_block(text: str, run_id: str) -> None:
    assert "✗ talk failed (attempt 1, exit 3)" in text, text
    assert "│ line 8\n" in text and text.index("│ line 8") < text.index("│ bye"), "the log's last lines, in order"
    assert f"more: odinctl logs {run_id} talk" in text


def test_a_failed_run_shows_its_failing_tasks_last_log_lines(served: Served, config: Path) -> None:
    env = {**_clean_env(), "ODIN_CONFIG_DIR": str(config), "ODIN_SERVER": served.url, "NO_COLOR": "1"}
    waiting = subprocess.Popen(
        [str(BIN / "odinctl"), "run", "talky", "--wait"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        run_id = wait_until(lambda: _latest_run(served, "talky"), 30, message="the run started")
        wait_until(lambda: running(served, run_id), 30, message="its task runs")
        served.release(run_id)
        out, err = waiting.communicate(timeout=60)
    finally:
        waiting.kill()
    assert waiting.returncode == 1, err
    _failure_block(out, run_id)
    _failure_block(ok(ctl(served, config, "watch", run_id), 1), run_id)
    res = ctl(served, config, "watch", run_id, "-o", "json")
    assert json.loads(ok(res, 1))["status"] == "failed", "-o json keeps stdout a document"
    _failure_block(res.stderr, run_id)


def _latest_run(served: Served, pipeline: str) -> str | None:
    items = served.get("/v1/runs", params={"pipeline": pipeline, "limit": 1}).json()["items"]
    return str(items[0]["id"]) if items and items[0]["status"] not in ("failed", "succeeded") else None


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}


def test_the_live_view_ticks_and_tails_the_running_tasks_log(served: Served) -> None:
    import asyncio
    import io

    from rich.console import Console

    from odin.cli.watch import watch_run

    run = served.start("talky")
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=160, color_system=None)

    def ticked() -> bool:
        drawn = screen.getvalue()
        seconds = set(re.findall(r"▶ talk\s+running\s+1\s+-\s+(\d+)s", drawn))
        return len(seconds) >= 2 and "line 8" in drawn.split("talk: last lines of its log")[-1]

    async def scenario() -> str:
        watching = asyncio.create_task(watch_run(served.url, served.admin_token, run["id"], console=console, live=True))
        await asyncio.to_thread(wait_until, ticked, 30, message="the running task's time ticks and its log shows")
        served.release(run["id"])
        return (await asyncio.wait_for(watching, 60)).status

    assert asyncio.run(scenario()) == "failed"


def test_list_commands_print_wide_and_name_like_kubectl(served: Served, config: Path, tmp_path: Path) -> None:
    out = ok(ctl(served, config, "run", "ok", "--wait"))
    run_id = out.split("started ", 1)[1].split()[0]
    sha = served.get(f"/v1/runs/{run_id}").json()["commit_sha"]
    names = ok(ctl(served, config, "runs", "-p", "ok", "-o", "name")).splitlines()
    assert run_id in names and all(" " not in n for n in names)
    wide = ok(ctl(served, config, "runs", "-p", "ok", "-o", "wide"))
    assert "BRANCH" in wide and "MESSAGE" in wide and sha in wide, "wide shows the whole commit"
    assert sha not in ok(ctl(served, config, "runs", "-p", "ok")), "the table keeps it short"
    assert sha in ok(ctl(served, config, "commits", "-o", "name")).splitlines()
    assert "ABSORBED BY" in ok(ctl(served, config, "commits", "-o", "wide"))
    listed = ctl(served, config, "pipelines", "-o", "name")  # exit 1 when a pipeline at the tip is invalid
    assert {"ok", "flaky", "vision/detector"} <= set(listed.stdout.splitlines()), listed.stderr
    assert "admin" in ok(ctl(served, config, "users", "list", "-o", "name")).splitlines()
    assert ok(ctl(served, config, "show", run_id, "-o", "name")) == run_id + "\n"
    events = ok(ctl(served, config, "events", run_id, "-o", "name")).split()
    assert events and all(e.isdigit() for e in events)
    assert "prep" in ok(ctl(served, config, "show", run_id, "-o", "wide"))

    bad = tmp_path / "bad" / "main.yml"
    bad.parent.mkdir()
    bad.write_text("name: b\ntasks:\n  - {name: t, image: x, command: [echo], depends: ghost}\n")
    good = tmp_path / "good" / "main.yml"
    good.parent.mkdir()
    good.write_text("name: g\ntasks:\n  - {name: t, image: x, command: [echo]}\n")
    for remote in ([], ["--remote"]):
        assert ok(ctl(served, config, "validate", *remote, "-o", "name", str(bad), str(good)), 1) == f"{bad}\n"
        report = yaml.safe_load(ok(ctl(served, config, "validate", *remote, "-o", "yaml", str(bad)), 1))
        assert report["pipelines"][0]["ok"] is False
        assert "ghost" in ok(ctl(served, config, "validate", *remote, "-o", "wide", str(bad)), 1)
    res = ctl(served, config, "runs", "-o", "xml")
    assert res.returncode == 2 and "table" in res.stderr and "wide" in res.stderr and "name" in res.stderr


def test_run_ids_never_wrap_in_a_narrow_table(served: Served, config: Path) -> None:
    ok(ctl(served, config, "run", "ok", "--wait"))
    ids = [r["id"] for r in json.loads(ok(ctl(served, config, "runs", "-o", "json")))["items"]]
    narrow = ok(ctl(served, config, "runs", COLUMNS="50"))
    for run_id in ids:
        assert run_id in narrow, f"{run_id} is split over lines:\n{narrow}"
    sha = served.remote.head
    assert sha[:12] in ok(ctl(served, config, "commits", COLUMNS="40"))


def test_help_names_values_not_python_types(tmp_path: Path) -> None:
    from odin.cli import admin
    from odin.cli import odinctl as ctl_module
    from odin.cli.help_style import plain_help

    def helps(command: Any, path: list[str]) -> list[tuple[str, str]]:
        ctx = command.context_class(command, info_name=" ".join(path))
        found = [(" ".join(path), command.get_help(ctx))]
        for name, sub in getattr(command, "commands", {}).items():
            found += helps(sub, [*path, name])
        return found

    import typer

    every = helps(plain_help(typer.main.get_command(ctl_module.app)), ["odinctl"])
    every += helps(plain_help(typer.main.get_command(admin.app)), ["odin"])
    assert len(every) > 30
    for name, text in every:
        assert not re.search(r"<(str|int|float|bool|path|list\[[^]]*\])>|\{[a-z_]+\}", text), f"{name}:\n{text}"
        assert "╭" not in text, f"{name}: one plain help style"
    for program in ("odin", "odinctl"):
        shown = subprocess.run(
            [str(BIN / program), "run", "--help"], capture_output=True, text=True, timeout=60, check=False,
            env={"PATH": "/usr/bin:/bin", "COLUMNS": "120"},
        )  # fmt: skip
        assert shown.returncode == 0 and shown.stdout.startswith(f"Usage: {program} run [OPTIONS]"), shown.stdout
        assert "-p, --param KEY=VALUE" in shown.stdout and "<" not in shown.stdout
