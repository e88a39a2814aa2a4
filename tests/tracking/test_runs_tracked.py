"""Runs tracked in MLflow through a real `odin serve` against a real `mlflow server` (SQLite backend): the run and
its nested task runs with their tags, params and statuses, a task's own `mlflow.log_metric` landing in its nested run,
declared results as metrics, the links in the API and `odinctl show`, and a restart that finishes what it opened.

Slow: a cold MLflow server and `odin serve` importing MLflow take tens of seconds on a loaded machine."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy.engine import Engine

from odin.controller.bus import EventBus
from odin.controller.store.db import transaction
from odin.controller.store.runs import NewRun, WriteBatch, create_run, write_batch
from odin.controller.store.tracking import tracked_run
from odin.controller.tracking import TrackingSettings, open_run_tracking
from odin.controller.vocabulary import RunContext, TaskLaunch, TaskPaths, Trigger
from odin.schema.model import PipelineSpec, TaskSpec
from tests.support.git import GitRemote
from tests.support.mlflow_server import MlflowServer, mlflow_server
from tests.support.server import BIN, OdinServer, odinctl
from tests.support.wait import wait_until
from tests.tracking.odin_runs import GATED, SAMPLE, Api, commit_pipelines, server_env, token_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow")) as running:
        yield running


def mlflow_status(client: MlflowClient, run_id: str) -> str:
    return str(client.get_run(run_id).info.status)


def test_run_tasks_and_results_land_in_mlflow(
    mlflow: MlflowServer, db_url: str, git_remote: GitRemote, tmp_path: Path
) -> None:
    sha = commit_pipelines(git_remote)
    client = MlflowClient(tracking_uri=mlflow.url)
    with OdinServer(tmp_path / "state", server_env(db_url, git_remote, mlflow.url)) as server, Api(server) as api:
        run_id = api.start("tracked", epochs="7")
        run = api.finished(run_id)
        assert run["status"] == "succeeded", run
        tracking = wait_until(lambda: (t := api.run(run_id)["tracking"]) and t["status"] == "FINISHED" and t, 60)
        tasks = {t["name"]: t for t in api.run(run_id)["tasks"]}

        parent = client.get_run(tracking["run_id"])
        assert parent.info.status == "FINISHED"
        assert client.get_experiment(tracking["experiment_id"]).name == "demo/tracked"
        tags = parent.data.tags
        assert (tags["odin.commit"], tags["odin.branch"], tags["odin.repository"]) == (sha, "main", "demo")
        assert (tags["odin.run_id"], tags["odin.trigger"], tags["odin.triggered_by"]) == (run_id, "api", "admin")
        assert parent.data.params == {"epochs": "7"}
        assert tracking["url"] == f"{mlflow.url}/#/experiments/{tracking['experiment_id']}/runs/{tracking['run_id']}"

        train = client.get_run(tasks["train"]["tracking"]["run_id"])
        assert train.data.tags["mlflow.parentRunId"] == tracking["run_id"]
        assert (train.data.tags["odin.task"], train.data.tags["odin.attempt"]) == ("train", "1")
        assert train.info.status == "FINISHED"
        assert train.data.metrics["final_loss"] == pytest.approx(float(tasks["train"]["results"]["final_loss"]))
        history = client.get_metric_history(train.info.run_id, "loss")
        assert [m.step for m in history] == list(range(7)), "the task's own mlflow.log_metric, in its nested run"
        assert {"w", "b"} <= set(train.data.params)
        report = client.get_run(tasks["report"]["tracking"]["run_id"])
        assert (report.info.status, report.data.tags["odin.task"]) == ("FINISHED", "report")

        shown = odinctl("show", run_id, server=server, config_dir=tmp_path / "config", env=token_env(api))
        assert shown.returncode == 0, shown.stderr
        assert tracking["url"] in shown.stdout
        assert tasks["train"]["tracking"]["url"] in shown.stdout

        failed_id = api.start("broken")
        assert api.finished(failed_id)["status"] == "failed"
        failed = wait_until(lambda: (t := api.run(failed_id)["tracking"]) and t["status"] == "FAILED" and t, 60)
        assert mlflow_status(client, failed["run_id"]) == "FAILED"
        [fails] = api.run(failed_id)["tasks"]
        assert mlflow_status(client, fails["tracking"]["run_id"]) == "FAILED"


def test_the_mlflow_sample_as_shipped_logs_its_sweep_into_mlflow(
    mlflow: MlflowServer, git_remote: GitRemote, tmp_path: Path
) -> None:
    """`sample-pipelines/mlflow` exactly as committed (its main.yml: a 2-member `lr` sweep, `python3` from PATH, and
    a report reading the sweep's results) through a real `odin serve`: one MLflow run with the parameters, one nested
    run per sweep member with its `lr` as a param, `final_loss` as a metric and train.py's own loss curve and
    params, and one for the report; read back through MLflow's client."""
    sha = git_remote.commit({f"mlflow/{f.name}": f.read_text() for f in SAMPLE.iterdir() if f.is_file()})
    env = server_env(f"sqlite:///{tmp_path / 'odin.db'}", git_remote, mlflow.url)
    # The local executor runs the sample's `python3` from PATH: this interpreter's, which has the mlflow client (what
    # the sample's image provides on Kubernetes).
    env["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    members = {"train-lr-0-1": "0.1", "train-lr-0-01": "0.01"}
    with OdinServer(tmp_path / "state", env) as server, Api(server) as api:
        run_id = api.start("mlflow", epochs="6")
        assert api.finished(run_id)["status"] == "succeeded", api.run(run_id)
        tracking = wait_until(lambda: (t := api.run(run_id)["tracking"]) and t["status"] == "FINISHED" and t, 60)
        tasks = {t["name"]: t for t in api.run(run_id)["tasks"]}
    assert sorted(tasks) == sorted([*members, "report"])

    client = MlflowClient(tracking_uri=mlflow.url)
    parent = client.get_run(tracking["run_id"])
    assert client.get_experiment(tracking["experiment_id"]).name == "demo/mlflow"
    assert (parent.info.status, parent.data.params) == ("FINISHED", {"epochs": "6"})
    assert (parent.data.tags["odin.commit"], parent.data.tags["odin.run_id"]) == (sha, run_id)
    nested = client.search_runs(
        [tracking["experiment_id"]], filter_string=f"tags.mlflow.parentRunId = '{tracking['run_id']}'"
    )
    assert sorted(r.data.tags["odin.task"] for r in nested) == sorted(tasks), "one nested run per task"
    for name, lr in members.items():
        run_id_of = tasks[name]["tracking"]["run_id"]
        # The member's `matrix` values are logged as params (after the run opens, for a prefetched run): wait.
        member = wait_until(
            lambda i=run_id_of: (r := client.get_run(i)) and "lr" in r.data.params and r,
            60,
            message=f"the nested run of {name} has its matrix value `lr` as a param",
        )
        assert member.info.status == "FINISHED" and member.data.tags["mlflow.parentRunId"] == tracking["run_id"]
        assert member.data.params["lr"] == lr, member.data.params
        assert {"w", "b"} <= set(member.data.params), "train.py's own mlflow.log_params"
        final_loss = float(tasks[name]["results"]["final_loss"])
        assert member.data.metrics["final_loss"] == pytest.approx(final_loss), "the declared result, as a metric"
        history = client.get_metric_history(member.info.run_id, "loss")
        assert [m.step for m in history] == list(range(6)), "train.py's mlflow.log_metric, one point per epoch"
        assert history[-1].value == pytest.approx(final_loss, rel=1e-4)
    report = client.get_run(tasks["report"]["tracking"]["run_id"])
    assert (report.info.status, report.data.tags["odin.task"]) == ("FINISHED", "report")


def test_a_restart_finishes_the_mlflow_run_it_opened(
    mlflow: MlflowServer, git_remote: GitRemote, tmp_path: Path
) -> None:
    """SIGKILL while a task runs: the restarted server ends the same MLflow runs, without opening new ones."""
    go = tmp_path / "go"
    commit_pipelines(git_remote, **{"gated/main.yml": GATED.format(go=go)})
    env = server_env(f"sqlite:///{tmp_path / 'odin.db'}", git_remote, mlflow.url)
    first = OdinServer(tmp_path / "state", env).start()
    try:
        with Api(first) as api:
            run_id = api.start("gated")
            opened = wait_until(lambda: (r := api.run(run_id))["tasks"][0].get("tracking") and r, 60)
    finally:
        first.kill()
    go.touch()  # the task ends while no Odin is up
    with OdinServer(tmp_path / "state", env) as second, Api(second) as api:  # a fresh port: the old may be taken
        assert api.finished(run_id)["status"] == "succeeded"
        tracking = wait_until(lambda: (t := api.run(run_id)["tracking"]) and t["status"] == "FINISHED" and t, 60)
    assert tracking["run_id"] == opened["tracking"]["run_id"]
    client = MlflowClient(tracking_uri=mlflow.url)
    runs = client.search_runs([tracking["experiment_id"]], filter_string=f"tags.`odin.run_id` = '{run_id}'")
    assert sorted(r.data.tags["odin.kind"] for r in runs) == ["run", "task"], "one MLflow run each, not two"
    assert {r.info.status for r in runs} == {"FINISHED"}


def test_the_sweep_ends_runs_left_open(mlflow: MlflowServer, db: Engine) -> None:
    """A run opened in MLflow whose end was never mirrored (the process died, or MLflow was down then): the next
    worker's sweep ends it, with the ids recorded on the rows, and records that it did."""
    spec = PipelineSpec(name="p", tasks=(TaskSpec("only", "x", ("true",)),))
    with transaction(db) as conn:
        run_id = create_run(conn, NewRun("p", spec, Trigger.MANUAL, {"lr": "0.3"}, commit_sha="a" * 40)).run_id
    settings = TrackingSettings(tracking_uri=mlflow.url, retry_initial=0.05, retry_max=0.2)
    first = open_run_tracking(db, EventBus(), settings)
    assert first is not None
    first.start()
    try:
        env = first.task_env(launch_of(run_id, spec))
    finally:
        first.stop()
    assert set(env) == {"MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID"}
    batch = WriteBatch()  # the run and its task end while nothing mirrors them
    batch.task(run_id, "only", status="succeeded")
    batch.run(run_id, status="succeeded")
    write_batch(db, batch)
    row = tracked_run(db, run_id)
    assert row is not None and row.mlflow_run_id and row.mlflow_status is None

    second = open_run_tracking(db, EventBus(), settings)
    assert second is not None
    second.start()
    try:
        closed = wait_until(lambda: (r := tracked_run(db, run_id)) and r.mlflow_status == "FINISHED" and r, 120)
    finally:
        second.stop()
    client = MlflowClient(tracking_uri=mlflow.url)
    assert closed.mlflow_run_id == row.mlflow_run_id
    assert mlflow_status(client, row.mlflow_run_id) == "FINISHED"
    assert mlflow_status(client, env["MLFLOW_RUN_ID"]) == "FINISHED"
    assert client.get_run(row.mlflow_run_id).data.params == {"lr": "0.3"}
    assert client.get_experiment(row.mlflow_experiment_id).name == "local/p", "a run without a repository"


def launch_of(run_id: str, spec: PipelineSpec) -> TaskLaunch:
    ctx = RunContext(run_id, "p", "a" * 40, None, "manual", None, None)
    return TaskLaunch(ctx, spec.tasks[0], 1, ("true",), (), {}, TaskPaths("/w", "/r", "/"))
