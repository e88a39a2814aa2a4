"""An MLflow outage never fails a run: a real `odin serve` pointed at a closed port (with credentials in the URI)
runs the sample's pipeline to success, its tasks start without MLFLOW_* variables after at most the start timeout,
and the run carries warnings that name the redacted URI, never the password."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.git import GitRemote
from tests.support.server import OdinServer, free_port
from tests.support.wait import wait_until
from tests.tracking.odin_runs import Api, commit_pipelines, server_env


def test_mlflow_down_run_succeeds_with_warnings(db_url: str, git_remote: GitRemote, tmp_path: Path) -> None:
    commit_pipelines(git_remote)
    uri = f"http://odin:hunter2@127.0.0.1:{free_port()}"  # nothing listens there
    env = server_env(db_url, git_remote, uri) | {"ODIN_MLFLOW_START_TIMEOUT": "3", "ODIN_MLFLOW_ATTEMPTS": "2"}
    with OdinServer(tmp_path / "state", env) as server, Api(server) as api:
        began = time.monotonic()
        run_id = api.start("tracked")
        run = api.finished(run_id)
        elapsed = time.monotonic() - began
        assert run["status"] == "succeeded", run
        assert run["tracking"] is None
        assert all(t["tracking"] is None and t["status"] == "succeeded" for t in run["tasks"])

        def warnings() -> list[dict[str, object]]:
            res = api.http.get(f"/v1/runs/{run_id}/events", params={"limit": 500})
            assert res.status_code == 200, res.text
            return [e for e in res.json()["items"] if e["kind"] == "run.warning"]

        found = wait_until(lambda: len(warnings()) >= 2 and warnings(), 60, interval=0.1)
        text = " ".join(str(w["data"]) for w in found)
        assert "hunter2" not in text and "***@127.0.0.1" in text
        assert {w["data"]["source"] for w in found} == {"mlflow"}  # type: ignore[index]
        assert any(w["task"] == "train" and "without MLFLOW_RUN_ID" in str(w["data"]) for w in found)
        log = api.http.get(f"/v1/runs/{run_id}/tasks/train/logs")
        assert "skipping MLflow logging" in log.text, "the task ran without the variables, and said so"
        # One start timeout at most (3 s), then the cooldown: the second task does not wait again.
        assert elapsed < 30, elapsed
