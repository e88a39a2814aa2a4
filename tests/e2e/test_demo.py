"""The README's first command: `odin demo` follows a seeded repository; a push from its workspace becomes a run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pygit2

from tests.support.server import BIN, free_port, odinctl
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]


def push_change(workspace: Path) -> str:
    """What the demo tells the user to do with git: edit hello/main.yml, commit, push."""
    repo = pygit2.Repository(str(workspace))
    path = workspace / "hello" / "main.yml"
    path.write_text(path.read_text().replace("Hello", "Hello again"))
    repo.index.add("hello/main.yml")
    repo.index.write()
    sig = pygit2.Signature("Demo User", "user@example.invalid")
    head = repo.head.target
    sha = repo.create_commit("HEAD", sig, sig, "Say hello again", repo.index.write_tree(), [head])
    repo.remotes["origin"].push(["refs/heads/main:refs/heads/main"])
    return str(sha)


def test_demo_follows_the_seeded_repository(tmp_path: Path) -> None:
    port = free_port()
    demo_dir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    env["ODIN_DATA_DIR"] = str(tmp_path / "unused")  # the demo keeps its own state under --dir
    log = (tmp_path / "demo.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "odin"), "demo", "--dir", str(demo_dir), "--port", str(port), "--poll-interval", "0.2"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    server = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{server}/healthz", timeout=1).status_code == 200, 60)
        password = (demo_dir / "admin-password").read_text().strip()
        assert (demo_dir / "admin-password").stat().st_mode & 0o777 == 0o600
        output = (tmp_path / "demo.log").read_text()
        assert password in output and "odinctl login" in output, "the demo tells the newcomer what to do"
        for main in (demo_dir / "workspace").rglob("main.yml"):  # editors find the schema the comment names
            comment = main.read_text().splitlines()[0]
            assert comment.startswith("# yaml-language-server: $schema="), main
            assert (main.parent / comment.split("=", 1)[1]).resolve().is_file(), comment
        config = tmp_path / "config"
        env_ctl = {"ODIN_SERVER": server}
        res = odinctl("login", "--password-stdin", config_dir=config, stdin=password + "\n", env=env_ctl)
        assert res.returncode == 0, res.stderr
        wait_until(lambda: "first sync" in (tmp_path / "demo.log").read_text(), 30)
        sha = push_change(demo_dir / "workspace")

        def the_run() -> dict[str, object] | None:
            res = odinctl("runs", "--commit", sha, "-o", "json", config_dir=config, env=env_ctl)
            items = json.loads(res.stdout)["items"] if res.returncode == 0 else []
            return items[0] if items and items[0]["status"] == "succeeded" else None

        run = wait_until(the_run, 60, message="the pushed commit's run succeeds")
        assert run["pipeline"] == "hello"
        shown = odinctl("show", str(run["id"]), config_dir=config, env=env_ctl)
        assert shown.returncode == 0 and "greet" in shown.stdout
        greeting = demo_dir / "state" / "runs" / str(run["id"]) / "greeting.txt"
        assert "Hello again, world!" in greeting.read_text()
        assert sha in greeting.read_text()
        # The embedded default reports this machine itself: no agent, no GPU here, and the reason.
        gpus = odinctl("gpus", "-o", "json", config_dir=config, env=env_ctl)
        assert gpus.returncode == 0, gpus.stderr
        listing = json.loads(gpus.stdout)
        assert listing["source"] == "embedded" and len(listing["gpu_unavailable"]) + listing["total"] >= 1
        nodes = odinctl("nodes", config_dir=config, env=env_ctl)
        assert nodes.returncode == 0 and "embedded" in nodes.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        log.close()
    assert code == 0, (tmp_path / "demo.log").read_text()[-2000:]


def test_demo_on_a_taken_port_says_so_before_any_password(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
        res = subprocess.run(
            [str(BIN / "odin"), "demo", "--dir", str(tmp_path / "demo"), "--port", str(port)],
            cwd=ROOT, env={**env, "NO_COLOR": "1"}, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"port {port} on 127.0.0.1 is in use" in res.stderr and "--port" in res.stderr
    assert "password" not in (res.stdout + res.stderr).lower(), "no password for a server that cannot start"
    assert not (tmp_path / "demo").exists(), "nothing seeded"
