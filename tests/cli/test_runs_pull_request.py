"""`odinctl runs -o wide` has a PR column, `-o json`/`-o yaml` the number and provider, and `odinctl show` names the
pull request (issue 13 item 1): against a real `odin serve` that ran a GitHub pull request's head."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import yaml

from odin.api.schemas import RunSummary
from odin.cli.render import pull_request_label
from tests.support.pull_request_run import pull_request_run
from tests.support.server import odinctl

PASSWORD = "pull-request-horse-battery"


def ok(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 0, f"exit {res.returncode}\nstdout: {res.stdout}\nstderr: {res.stderr}"
    return res.stdout


def test_the_runs_list_and_the_run_show_its_pull_request(tmp_path: Path) -> None:
    with pull_request_run(tmp_path, PASSWORD) as pr:
        config = tmp_path / "config"
        ok(odinctl("login", "--password-stdin", server=pr.server, config_dir=config, stdin=PASSWORD + "\n"))

        header, *rows = ok(odinctl("runs", "-o", "wide", server=pr.server, config_dir=config)).splitlines()
        columns = header.split()
        assert columns[-3:] == ["BRANCH", "PR", "MESSAGE"], header
        [row] = [r for r in rows if r.startswith(pr.run_id)]
        assert row[header.index("PR") :].split()[0] == "#42", row
        assert "PR" not in ok(odinctl("runs", server=pr.server, config_dir=config)).split(), "the table keeps it short"

        listed = json.loads(ok(odinctl("runs", "-o", "json", server=pr.server, config_dir=config)))
        [run] = [r for r in listed["items"] if r["id"] == pr.run_id]
        assert (run["trigger"], run["pull_request"], run["pr_provider"]) == ("pull_request", 42, "github")
        as_yaml = yaml.safe_load(ok(odinctl("runs", "-o", "yaml", server=pr.server, config_dir=config)))
        assert [(r["pull_request"], r["pr_provider"]) for r in as_yaml["items"] if r["id"] == pr.run_id] == [
            (42, "github")
        ]

        shown = ok(odinctl("show", pr.run_id, server=pr.server, config_dir=config))
        assert "pull request #42 on github" in shown


def test_a_merge_request_reads_as_gitlab_writes_it() -> None:
    def summary(number: int | None, provider: str | None) -> RunSummary:
        return RunSummary(id="r-1", pipeline="p", commit_sha=None, branch=None, pull_request=number,
                          pr_provider=provider, trigger="pull_request", triggered_by=None, status="queued",
                          message=None, parent_run=None, created_at=datetime.now(UTC), started_at=None,
                          finished_at=None)  # fmt: skip

    assert pull_request_label(summary(7, "gitlab")) == "!7"
    assert pull_request_label(summary(7, "bitbucket")) == "#7"
    assert pull_request_label(summary(None, None)) == "-"
