"""Tracking against a real `mlflow server` (SQLite backend): runs, nested task runs, results, the task environment,
and an outage that never raises. The outage test stops the module's server, so it comes last in this file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from odin.controller.backoff import Backoff
from odin.controller.tracking import TrackedRun, TrackingSettings, TrackingWarning, open_tracker
from odin.controller.tracking.client import MlflowTracker, redact
from tests.support.mlflow_server import MlflowServer, mlflow_server
from tests.support.server import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as running:
        yield running


def tracker_for(url: str, **kw: object) -> MlflowTracker:
    settings = TrackingSettings(tracking_uri=url, attempts=3, retry_initial=0.05, retry_max=0.2, **kw)  # type: ignore[arg-type]
    tracker = open_tracker(settings)
    assert tracker is not None
    return tracker


def start(tracker: MlflowTracker, run_id: int, pipeline: str = "train") -> TrackedRun:
    run = tracker.start_run(
        repository="demo",
        pipeline=pipeline,
        odin_run_id=run_id,
        commit="0123456789abcdef0123456789abcdef01234567",
        branch="main",
        repository_url="https://git.example/demo.git",
        trigger="push",
        params={"sweep": "lr"},
    )
    assert isinstance(run, TrackedRun), run
    return run


def test_tracking_is_off_without_a_uri() -> None:
    assert open_tracker(TrackingSettings(tracking_uri=None)) is None


def test_run_and_nested_task_runs(server: MlflowServer) -> None:
    tracker = tracker_for(server.url)
    run = start(tracker, 1)
    task = tracker.start_task(run, task="train", params={"lr": 0.1, "depth": 4})
    assert isinstance(task, TrackedRun)
    assert tracker.log_results(task, {"accuracy": 0.93, "converged": True, "best": "epoch-3"}) is None
    assert tracker.finish(task) is None
    assert tracker.finish(run, "FAILED") is None

    client = MlflowClient(tracking_uri=server.url)
    experiment = client.get_experiment(run.experiment_id)
    assert experiment.name == "demo/train"
    parent = client.get_run(run.run_id)
    assert parent.data.tags["odin.commit"] == "0123456789abcdef0123456789abcdef01234567"
    assert parent.data.tags["odin.branch"] == "main"
    assert parent.data.tags["odin.repository"] == "demo"
    assert parent.data.tags["odin.run_id"] == "1"
    assert parent.data.tags["odin.trigger"] == "push"
    assert parent.data.tags["mlflow.source.git.commit"].startswith("0123456789ab")
    assert parent.data.params == {"sweep": "lr"}
    assert parent.info.status == "FAILED"
    child = client.get_run(task.run_id)
    assert child.data.tags["mlflow.parentRunId"] == run.run_id
    assert child.info.run_name == "train"
    assert child.data.params == {"lr": "0.1", "depth": "4"}
    assert child.data.metrics == {"accuracy": 0.93, "converged": 1.0}
    assert child.data.tags["odin.result.best"] == "epoch-3"
    assert child.info.status == "FINISHED"
    assert tracker.run_url(task) == f"{server.url}/#/experiments/{run.experiment_id}/runs/{task.run_id}"


def test_start_is_idempotent(server: MlflowServer) -> None:
    tracker = tracker_for(server.url)
    first = start(tracker, 2)
    assert start(tracker_for(server.url), 2) == first, "a restarted controller finds the run it created"
    one = tracker.start_task(first, task="eval")
    assert tracker.start_task(first, task="eval") == one
    assert start(tracker, 2, pipeline="export").experiment_id != first.experiment_id, "an experiment per pipeline"


def test_a_refused_request_is_a_warning_without_retries(server: MlflowServer) -> None:
    tracker = tracker_for(server.url)
    run = start(tracker, 3)
    assert tracker.log_params(run, {"lr": "0.1"}) is None
    warning = tracker.log_params(run, {"lr": "0.2"})  # MLflow params are immutable: a 400
    assert isinstance(warning, TrackingWarning)
    assert warning.attempts == 1
    assert not warning.retryable


def test_user_code_logs_into_the_task_run(server: MlflowServer, tmp_path: Path) -> None:
    """What a task's own `mlflow.log_metric` does with the environment Odin gives it (a real process)."""
    tracker = tracker_for(server.url)
    task = tracker.start_task(start(tracker, 4), task="train")
    assert isinstance(task, TrackedRun)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | tracker.task_env(task)
    code = "import mlflow; mlflow.log_metric('loss', 0.25); mlflow.log_param('from_user', 'yes')"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    data = MlflowClient(tracking_uri=server.url).get_run(task.run_id).data
    assert data.metrics["loss"] == 0.25
    assert data.params["from_user"] == "yes"


def test_unreachable_server_never_raises() -> None:
    slept: list[float] = []
    tracker = MlflowTracker(
        TrackingSettings(tracking_uri=f"http://user:hunter2@127.0.0.1:{free_port()}", attempts=3),
        backoff=Backoff(initial=0.01, maximum=0.02),
        sleep=slept.append,
    )
    outcome = tracker.start_run(repository="demo", pipeline="train", odin_run_id=9, commit="abc")
    assert isinstance(outcome, TrackingWarning)
    assert outcome.attempts == 3
    assert outcome.retryable
    assert len(slept) == 2, "retried with the backoff between attempts"
    assert "hunter2" not in str(outcome)


def test_redact() -> None:
    assert redact("https://u:p@mlflow.example:5000/x") == "https://***@mlflow.example:5000/x"
    assert redact("http://mlflow:5000") == "http://mlflow:5000"


def test_outage_mid_run_returns_warnings(server: MlflowServer) -> None:
    """Keep last: stops the module's server."""
    tracker = tracker_for(server.url)
    run = start(tracker, 5)
    task = tracker.start_task(run, task="train")
    assert isinstance(task, TrackedRun)
    server.stop()
    began = time.monotonic()
    warnings = [
        tracker.log_results(task, {"accuracy": 0.5}),
        tracker.start_task(run, task="eval"),
        tracker.finish(task, "FAILED"),
        tracker.finish(run, "FAILED"),
    ]
    assert all(isinstance(w, TrackingWarning) and w.retryable for w in warnings), warnings
    assert time.monotonic() - began < 30, "an outage costs seconds per call, not MLflow's minutes of retries"
    assert tracker.task_env(task)["MLFLOW_RUN_ID"] == task.run_id, "the environment needs no server"
