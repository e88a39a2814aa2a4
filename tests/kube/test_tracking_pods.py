"""MLflow tracking on Kubernetes (issue 11 item 7): the pods Odin creates carry `MLFLOW_TRACKING_URI`,
`MLFLOW_RUN_ID` and `MLFLOW_EXPERIMENT_ID` in the task's container, the same values the local executor gives, so
`mlflow.log_metric` in user code lands in the task's nested run on any executor.

The real engine, store and tracking worker (`RunTracking` on the engine's bus, as `odin serve` wires it), the
Kubernetes executor on the `kube` fixture's cluster, and a real `mlflow server` (SQLite backend) whose runs the pod's
ids must name. `ODIN_MLFLOW_TASK_TRACKING_URI` is set, as an in-cluster install would (the controller reaches MLflow
by one address, pods by the Service's), to show that pods get that one.

Slow: a cold MLflow server takes tens of seconds to start on a loaded machine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy.engine import Engine as DbEngine

from odin.controller.bus import EventBus
from odin.controller.tracking import TrackingSettings, open_run_tracking
from odin.controller.tracking.worker import RunTracking
from odin.controller.vocabulary import RunStatus
from odin.testing.kube.environment import KubeEnv
from tests.kube.harness import KubeHarness, pipeline, task
from tests.support.mlflow_server import MlflowServer, mlflow_server

pytestmark = [pytest.mark.kube, pytest.mark.slow]

IN_CLUSTER_URI = "http://mlflow.ml.svc.cluster.local:5000"  # what pods are given; never dialled by this test


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as running:
        yield running


@pytest.fixture
def tracked(kube: KubeEnv, db: DbEngine, tmp_path: Path, mlflow: MlflowServer) -> Iterator[KubeHarness]:
    """A harness whose engine has MLflow tracking, wired as `controller/service.py` wires it."""
    bus = EventBus()
    settings = TrackingSettings(
        tracking_uri=mlflow.url, task_tracking_uri=IN_CLUSTER_URI, attempts=3, retry_initial=0.05, retry_max=0.2,
        start_timeout=120,  # the worker imports MLflow before its first call: seconds, more on a loaded machine
    )  # fmt: skip
    tracking = open_run_tracking(db, bus, settings)
    assert isinstance(tracking, RunTracking)
    tracking.start()
    harness = KubeHarness(kube, db, tmp_path)
    harness.engine_options = {"bus": bus, "task_env": tracking.task_env}
    yield harness
    harness.stop()
    tracking.stop()


def main_env(pod: Any) -> dict[str, str]:
    main = next(c for c in pod.spec.containers if c.name == "main")
    return {e.name: e.value for e in main.env or [] if e.value is not None}


def test_pods_carry_the_nested_runs_ids_and_the_in_cluster_uri(tracked: KubeHarness, mlflow: MlflowServer) -> None:
    h = tracked
    h.start()
    spec = pipeline(
        task("prepare", "echo prep"),
        task("train", "echo train", depends=("prepare",), env={"MLFLOW_EXPERIMENT_NAME": "kept"}),
    )
    run_id = h.create(spec)
    prepare_pod = h.wait_pod(run_id, "prepare", timeout=180)  # the first start waits for MLflow's import
    h.succeed(prepare_pod)
    train_pod = h.wait_pod(run_id, "train", timeout=60)
    h.succeed(train_pod)
    assert h.wait(run_id, 60) == RunStatus.SUCCEEDED

    client = MlflowClient(tracking_uri=mlflow.url)
    parents: set[str] = set()
    for name, pod in (("prepare", prepare_pod), ("train", train_pod)):
        env = main_env(pod)
        assert env["MLFLOW_TRACKING_URI"] == IN_CLUSTER_URI, env
        nested = client.get_run(env["MLFLOW_RUN_ID"])  # a real run on the server, not just an id-shaped string
        assert nested.info.experiment_id == env["MLFLOW_EXPERIMENT_ID"]
        assert (nested.info.run_name, nested.data.tags["odin.run_id"]) == (name, run_id)
        assert h.task_row(run_id, name).mlflow_run_id == env["MLFLOW_RUN_ID"]
        parents.add(nested.data.tags["mlflow.parentRunId"])
    assert main_env(train_pod)["MLFLOW_EXPERIMENT_NAME"] == "kept"  # the task's own env is left as it wrote it
    assert main_env(prepare_pod)["MLFLOW_RUN_ID"] != main_env(train_pod)["MLFLOW_RUN_ID"]
    (parent,) = parents  # both nested under the one MLflow run of this Odin run
    assert client.get_run(parent).data.tags["odin.run_id"] == run_id
