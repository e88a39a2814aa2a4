"""`sample-pipelines/train` caches (issue 11 item 6): through a real `odin serve` (the demo's, following a real git
repository seeded with the sample) and `odinctl`, a second run of an unchanged commit is all cache hits, shown as
such by `odinctl show`; `--no-cache` trains again."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import BIN, free_port, odinctl
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow  # trains the sample three times (about 80 s)

ROOT = Path(__file__).resolve().parents[2]
TASKS = ["prepare", "train-lr-0-1", "train-lr-0-03", "train-lr-0-01", "evaluate", "export"]


def test_a_second_run_of_the_train_sample_is_all_cache_hits(tmp_path: Path) -> None:
    samples = tmp_path / "samples"
    shutil.copytree(ROOT / "sample-pipelines" / "train", samples / "train")
    port = free_port()
    demo_dir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    env["ODIN_DATA_DIR"] = str(tmp_path / "unused")
    log = (tmp_path / "demo.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "odin"), "demo", "--dir", str(demo_dir), "--port", str(port), "--samples", str(samples)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    server = f"http://127.0.0.1:{port}"
    config = tmp_path / "config"
    ctl_env = {"ODIN_SERVER": server}

    def ctl(*args: str) -> subprocess.CompletedProcess[str]:
        return odinctl(*args, config_dir=config, env=ctl_env)

    def run(*extra: str) -> dict[str, Any]:
        res = ctl("run", "train", "-p", "epochs=50", "--wait", "--timeout", "120", *extra)
        assert res.returncode == 0, res.stdout + res.stderr
        runs = json.loads(ctl("runs", "-o", "json").stdout)["items"]
        shown = ctl("show", str(runs[0]["id"]), "-o", "json")
        assert shown.returncode == 0, shown.stderr
        detail: dict[str, Any] = json.loads(shown.stdout)
        return detail

    try:
        wait_until(lambda: httpx.get(f"{server}/healthz", timeout=1).status_code == 200, 60)
        password = (demo_dir / "admin-password").read_text().strip()
        res = odinctl("login", "--password-stdin", config_dir=config, stdin=password + "\n", env=ctl_env)
        assert res.returncode == 0, res.stderr

        first = run()
        tasks = {t["name"]: t for t in first["tasks"]}
        assert [n for n in TASKS if tasks[n]["status"] == "succeeded"] == TASKS
        assert all(tasks[n]["reason"] != "Cached" and tasks[n]["cache_key"] for n in TASKS)

        second = run()
        assert second["commit_sha"] == first["commit_sha"] and second["id"] != first["id"]
        again = {t["name"]: t for t in second["tasks"]}
        assert {n: (again[n]["status"], again[n]["reason"]) for n in TASKS} == {
            n: ("succeeded", "Cached") for n in TASKS
        }
        for n in TASKS:
            assert again[n]["message"] == f"cached from run {first['id']} (commit {first['commit_sha'][:12]})"
            assert again[n]["results"] == tasks[n]["results"] and again[n]["cache_key"] == tasks[n]["cache_key"]
        table = ctl("show", second["id"])
        assert table.returncode == 0 and f"cached from run {first['id']}" in table.stdout

        bypassed = run("--no-cache")
        fresh = {t["name"]: t for t in bypassed["tasks"]}
        assert bypassed["no_cache"] is True
        assert all(fresh[n]["status"] == "succeeded" and fresh[n]["reason"] != "Cached" for n in TASKS)
        assert "--no-cache" in ctl("show", bypassed["id"]).stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
