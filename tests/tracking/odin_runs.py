"""What the tracking tests share: pipelines, a real `odin serve`'s environment with MLflow tracking, and an API
client logged in as the admin."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx

from tests.support.git import GitRemote
from tests.support.server import OdinServer
from tests.support.wait import wait_until

PASSWORD = "correct-horse-battery"
SAMPLE = Path(__file__).resolve().parents[2] / "sample-pipelines" / "mlflow"

# The sample's script, run by this interpreter (it has the mlflow client; the local executor's PATH may not).
TRACKED = f"""\
name: tracked
params:
  epochs: {{type: integer, default: 5}}
tasks:
  - name: train
    image: python:3.12-slim
    command: ["{sys.executable}"]
    args: ["${{WORK_PATH}}/train.py", --lr, "0.1", --epochs, "${{params.epochs}}", --results, "${{RESULTS_PATH}}"]
    outputs:
      results: [final_loss]
  - name: report
    image: busybox
    command: [echo, "${{tasks.train.results.final_loss}}"]
    depends: train
"""

BROKEN = """\
name: broken
tasks:
  - name: fails
    image: busybox
    command: [sh, -c, 'exit 3']
"""

GATED = """\
name: gated
tasks:
  - name: wait
    image: busybox
    command: [sh, -c, 'while [ ! -e "{go}" ]; do sleep 0.05; done']
"""


def server_env(db_url: str, git_remote: GitRemote, tracking_uri: str) -> dict[str, str]:
    return {
        "ODIN_REPO": git_remote.file_url,
        "ODIN_REPO_NAME": "demo",
        "ODIN_DATABASE_URL": db_url,
        "ODIN_POLL_INTERVAL": "0.2",
        "ODIN_ADMIN_PASSWORD": PASSWORD,
        "ODIN_MLFLOW_TRACKING_URI": tracking_uri,
        "ODIN_MLFLOW_RETRY_INITIAL": "0.05",
        "ODIN_MLFLOW_RETRY_MAX": "0.2",
        "ODIN_MLFLOW_START_TIMEOUT": "60",  # the first start also waits for MLflow's import: seconds, tens when loaded
    }


class Api:
    """The API as the admin; a context manager (its connections are closed on exit)."""

    def __init__(self, server: OdinServer) -> None:
        token = httpx.post(f"{server.url}/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()
        self.http = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token['access_token']}"})

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def start(self, pipeline: str, **params: str) -> str:
        res = self.http.post("/v1/runs", json={"pipeline": pipeline, "params": params})
        assert res.status_code == 201, res.text
        return str(res.json()["id"])

    def run(self, run_id: str) -> dict[str, Any]:
        res = self.http.get(f"/v1/runs/{run_id}")
        assert res.status_code == 200, res.text
        return dict(res.json())

    def finished(self, run_id: str, timeout: float = 120) -> dict[str, Any]:
        return wait_until(
            lambda: (r := self.run(run_id))["status"] not in ("pending", "running") and r, timeout, interval=0.1
        )


def commit_pipelines(git_remote: GitRemote, **extra: str) -> str:
    return git_remote.commit(
        {
            "tracked/main.yml": TRACKED,
            "tracked/train.py": (SAMPLE / "train.py").read_text(),
            "broken/main.yml": BROKEN,
            **extra,
        }
    )


def token_env(api: Api) -> dict[str, str]:
    return {"ODIN_TOKEN": str(api.http.headers["Authorization"]).removeprefix("Bearer ")}
