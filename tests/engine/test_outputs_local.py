# ruff: noqa: E501 (the pipelines below are YAML, one shell command a line, as users write them)
"""What a run produced (issue 11), with real subprocesses on the local executor and a real store: per-attempt
${OUTPUT_PATH}/${RESULTS_PATH}, results and artifact digests recorded, references resolved across tasks and sweeps,
`when` gates, declared outputs that are missing or too large, reruns reusing outputs, and adoption after a restart."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine as DbEngine

from odin.controller.engine.decide import RetryPolicy
from odin.controller.engine.loop import Engine
from odin.controller.executors.base import Executor
from odin.controller.reruns import plan_rerun
from odin.controller.store.db import transaction
from odin.controller.store.runs import EVENTS, NewRun, create_run
from odin.controller.vocabulary import (
    ActiveAttempt,
    Observation,
    RunContext,
    RunStatus,
    TaskLaunch,
    TaskPaths,
    TaskStatus,
    Trigger,
)
from odin.schema import load_pipeline
from odin.schema.model import PipelineSpec
from tests.engine.test_engine_local import Harness
from tests.support.wait import wait_until

TRAIN_SAMPLE = Path(__file__).resolve().parents[2] / "sample-pipelines" / "train"


@pytest.fixture
def harness(db: DbEngine, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(db, tmp_path / "data")
    yield h
    h.close()


def pipeline(yaml: str) -> PipelineSpec:
    result = load_pipeline(yaml.encode(), file="main.yml", default_name="p")
    assert result.spec is not None, [str(p) for p in result.problems]
    return result.spec


def task_events(harness: Harness, run_id: str, task: str) -> list[dict[str, Any]]:
    with harness.db.connect() as conn:
        rows = conn.execute(sa.select(EVENTS).where(EVENTS.c.run_id == run_id, EVENTS.c.task == task)).all()
    return [dict(r.data) for r in rows]


PRODUCE = """
tasks:
  - name: train
    image: busybox
    command: [sh, -c, 'printf hello > "$OUTPUT_PATH/model"; mkdir -p "${OUTPUT_PATH}/logs/a"; printf x > "${OUTPUT_PATH}/logs/a/1";
      echo 0.93 > "$RESULTS_PATH/accuracy"; echo "{\\"loss\\": 0.2, \\"note\\": \\"ok\\"}" > "${RESULTS_PATH}/results.json"']
    outputs:
      artifacts: [model, {name: logs, path: logs}]
      results: [accuracy, loss, note]
  - name: use
    image: busybox
    command: [sh, -c, 'echo "acc=${tasks.train.results.accuracy} note=$NOTE"; cat ${tasks.train.artifacts.model}; echo; ls -A "$OUTPUT_PATH" "$RESULTS_PATH"']
    env: {NOTE: "${tasks.train.results.note}"}
    depends: train
"""


def test_results_and_artifacts_are_recorded_and_read_by_a_later_task(harness: Harness) -> None:
    engine = harness.start()
    run_id = harness.create(pipeline(PRODUCE))
    assert engine.wait(run_id, 30) == RunStatus.SUCCEEDED
    tasks = harness.tasks(run_id)
    assert tasks["train"].results == {"accuracy": 0.93, "loss": 0.2, "note": "ok"}
    model = tasks["train"].artifacts["model"]
    assert (model["type"], model["size"], model["path"]) == ("file", 5, "model")
    assert model["digest"] == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert Path(model["location"]).read_bytes() == b"hello"
    assert Path(model["location"]).is_relative_to(harness.data_dir / "outputs" / run_id / "train" / "1")
    logs = tasks["train"].artifacts["logs"]
    assert (logs["type"], logs["size"]) == ("directory", 1) and logs["digest"].startswith("sha256:")
    assert tasks["use"].results is None and tasks["use"].artifacts is None  # declares nothing: records nothing
    log = harness.log(run_id, "use")
    assert "acc=0.93 note=ok" in log and "hello" in log
    assert log.rstrip().endswith("results:")  # its own OUTPUT_PATH and RESULTS_PATH exist, empty


SWEEP = """
tasks:
  - name: train
    image: busybox
    matrix: {lr: [1, 2, 3]}
    command: [sh, -c, 'test ${matrix.lr} != 2 || exit 0; echo ${matrix.lr}0 > "$RESULTS_PATH/score"']
    outputs: {results: [score]}
    retries: 0
  - name: pick
    image: busybox
    command: [sh, -c, "echo 'scores=${tasks.train.results.score}'"]
    depends: train
"""


def test_a_sweep_reference_lists_the_members_that_succeeded(harness: Harness) -> None:
    engine = harness.start()
    run_id = harness.create(pipeline(SWEEP))
    assert engine.wait(run_id, 30) == RunStatus.FAILED  # the lr=2 member wrote no score
    tasks = harness.tasks(run_id)
    failed = tasks["train-lr-2"]
    assert (failed.status, failed.reason, failed.failure, failed.exit_code) == (
        "failed",
        "MissingResult",
        "permanent",
        0,
    )
    assert "`score`" in failed.message and "not retried" in failed.message
    assert tasks["pick"].status == "skipped"

    # The same sweep where every member succeeds: `pick` gets the JSON list, in expansion order.
    ok = pipeline(SWEEP.replace("test ${matrix.lr} != 2 || exit 0; ", ""))
    run_id = harness.create(ok)
    assert engine.wait(run_id, 30) == RunStatus.SUCCEEDED
    line = next(x for x in harness.log(run_id, "pick").splitlines() if x.startswith("scores="))
    assert json.loads(line.removeprefix("scores=")) == [
        {"task": f"train-lr-{i}", "matrix": {"lr": i}, "value": i * 10} for i in (1, 2, 3)
    ]


GATES = """
params:
  threshold: {default: "0.9"}
tasks:
  - name: eval
    image: busybox
    command: [sh, -c, 'echo 0.93 > "$RESULTS_PATH/accuracy"; echo high > "$RESULTS_PATH/level"']
    outputs: {results: [accuracy, level]}
  - name: export
    image: busybox
    command: [sh, -c, 'echo exported ${tasks.eval.results.accuracy}']
    depends: eval
    when: ${tasks.eval.results.accuracy} > ${params.threshold}
  - name: publish
    image: busybox
    command: [sh, -c, 'echo published']
    depends: eval
    when: ${tasks.eval.results.accuracy} > 0.95
  - name: after-publish
    image: busybox
    command: ["true"]
    depends: publish
  - name: broken
    image: busybox
    command: ["true"]
    depends: eval
    when: ${tasks.eval.results.level} > 3
"""


def test_when_gates_skip_or_run_and_a_bad_comparison_fails(harness: Harness) -> None:
    engine = harness.start()
    run_id = harness.create(pipeline(GATES), params={"threshold": "0.9"})
    assert engine.wait(run_id, 30) == RunStatus.FAILED  # `broken` cannot compare "high" with 3
    tasks = harness.tasks(run_id)
    assert tasks["export"].status == "succeeded" and "exported 0.93" in harness.log(run_id, "export")
    publish = tasks["publish"]
    assert (publish.status, publish.reason, publish.attempt) == ("skipped", "ConditionFalse", 0)
    assert "tasks.eval.results.accuracy = 0.93" in publish.message
    [event] = task_events(harness, run_id, "publish")
    assert (event["status"], event["reason"]) == ("skipped", "ConditionFalse")
    after = tasks["after-publish"]
    assert (after.status, after.reason) == ("skipped", "UpstreamFailed")
    broken = tasks["broken"]
    assert (broken.status, broken.reason, broken.failure, broken.attempt) == (
        "failed", "ConditionError", "permanent", 0,
    )  # fmt: skip
    assert "cannot compare" in broken.message


def test_a_gate_on_a_parameter_that_holds_runs_the_task(harness: Harness) -> None:
    engine = harness.start()
    spec = pipeline(GATES.replace("> 0.95", "> 0.5").replace("> 3", '== "high"'))
    run_id = harness.create(spec, params={"threshold": "0.99"})
    assert engine.wait(run_id, 30) == RunStatus.SUCCEEDED
    tasks = harness.tasks(run_id)
    assert (tasks["export"].status, tasks["export"].reason) == ("skipped", "ConditionFalse")
    assert {tasks[n].status for n in ("publish", "after-publish", "broken")} == {"succeeded"}


LEGACY = """
tasks:
  - name: train
    image: busybox
    command: [sh, -c, 'printf weights > "$OUTPUT_PATH/model"; echo 0.93 > "$RESULTS_PATH/accuracy"']
    outputs: {artifacts: [model], results: [accuracy]}
  - name: use
    image: busybox
    command: [sh, -c, 'echo "arg=$(cat "$1") acc=$ACC note=$NOTE model=$(cat "$MODEL")"', use]
    args: ["^train.model"]
    env: {ACC: "^train.accuracy", NOTE: "acc={^train.accuracy}!", MODEL: "^train.model"}
    depends: train
"""


def test_legacy_caret_references_reach_the_task_in_args_and_env(harness: Harness) -> None:
    """The original Odin's `^task.key` (whole value) and `{^task.key}` (inside one), in `args` and `env`: the
    dependent sees the producer's recorded result and the path of its artifact."""
    engine = harness.start()
    run_id = harness.create(pipeline(LEGACY))
    assert engine.wait(run_id, 30) == RunStatus.SUCCEEDED
    assert "arg=weights acc=0.93 note=acc=0.93! model=weights" in harness.log(run_id, "use")


def test_the_train_sample_skips_export_when_its_gate_is_false_and_still_succeeds(
    harness: Harness, tmp_path: Path
) -> None:
    """`sample-pipelines/train` as shipped, its `export` gated on `validation_loss < max_loss`: with a bar no model
    can clear, `export` is skipped (`ConditionFalse`, the values compared in its message), never started, and the run
    succeeds, as docs/pipeline-format.md says of a run whose only non-succeeded tasks were skipped by a gate."""
    work = tmp_path / "train"
    shutil.copytree(TRAIN_SAMPLE, work)  # the scripts write __pycache__ next to themselves: not into the repository
    spec = load_pipeline((work / "main.yml").read_bytes(), file="main.yml", default_name="train").spec
    assert spec is not None
    engine = harness.start()
    new = NewRun(
        pipeline="train",
        spec=spec,
        trigger=Trigger.MANUAL,
        params={"epochs": "20", "max_loss": "0"},
        work_path=str(work),
        commit_sha="a" * 40,
    )
    with transaction(harness.db) as conn:
        run_id = create_run(conn, new).run_id
    engine.submit(run_id)
    assert engine.wait(run_id, 120) == RunStatus.SUCCEEDED, {n: t.message for n, t in harness.tasks(run_id).items()}
    tasks = harness.tasks(run_id)
    ran = ["prepare", "train-lr-0-1", "train-lr-0-03", "train-lr-0-01", "evaluate"]
    assert {n: tasks[n].status for n in ran} == dict.fromkeys(ran, "succeeded")
    loss = tasks["evaluate"].results["validation_loss"]
    assert isinstance(loss, float) and loss > 0
    export = tasks["export"]
    assert (export.status, export.reason, export.attempt, export.artifacts) == ("skipped", "ConditionFalse", 0, None)
    assert f"tasks.evaluate.results.validation_loss = {loss}" in export.message, export.message
    assert not (harness.data_dir / "tasks" / run_id / "export.1.log").exists(), "a skipped task never starts"


def test_missing_and_oversized_results_fail_the_task_without_retries(harness: Harness) -> None:
    engine = harness.start()
    run_id = harness.create(
        pipeline("""
tasks:
  - name: silent
    image: busybox
    command: ["true"]
    retries: 2
    outputs: {results: [accuracy], artifacts: [model]}
  - name: chatty
    image: busybox
    command: [sh, -c, 'head -c 70000 /dev/zero | tr "\\0" a > "$RESULTS_PATH/blob"']
    outputs: {results: [blob]}
  - name: no-model
    image: busybox
    command: [sh, -c, 'echo 1 > "$RESULTS_PATH/accuracy"']
    outputs: {results: [accuracy], artifacts: [model]}
""")
    )
    assert engine.wait(run_id, 30) == RunStatus.FAILED
    tasks = harness.tasks(run_id)
    silent = tasks["silent"]
    assert (silent.status, silent.attempt, silent.reason, silent.failure) == ("failed", 1, "MissingResult", "permanent")
    assert "declared result `accuracy`" in silent.message
    assert (tasks["chatty"].reason, tasks["chatty"].status) == ("ResultTooLarge", "failed")
    assert "result `blob` is over 64 KiB" in tasks["chatty"].message
    assert tasks["no-model"].reason == "MissingArtifact" and "`model`" in tasks["no-model"].message


def test_a_rerun_reuses_the_recorded_outputs_of_the_tasks_it_reuses(harness: Harness) -> None:
    engine = harness.start()
    spec = pipeline("""
tasks:
  - name: train
    image: busybox
    command: [sh, -c, 'echo run >> "${RUN_PATH}/train-runs"; printf w > "$OUTPUT_PATH/model"; echo 7 > "$RESULTS_PATH/score"']
    outputs: {results: [score], artifacts: [model]}
  - name: use
    image: busybox
    command: [sh, -c, 'test -f "${RUN_PATH}/second" || { touch "${RUN_PATH}/second"; exit 1; }; echo "score=${tasks.train.results.score} model=$(cat ${tasks.train.artifacts.model})"']
    depends: train
""")
    parent = harness.create(spec)
    assert engine.wait(parent, 30) == RunStatus.FAILED
    parent_rows = {n: dict(r._mapping) for n, r in harness.tasks(parent).items()}
    plan = plan_rerun(spec, parent, parent_rows, failed_only=True)
    new = NewRun(
        pipeline="p", spec=spec, trigger=Trigger.RERUN, params={}, work_path=str(harness.work), commit_sha="a" * 40,
        parent_run=parent, run_path_id=parent, initial_tasks=plan.initial_tasks,
    )  # fmt: skip
    with transaction(harness.db) as conn:
        rerun = create_run(conn, new).run_id
    engine.submit(rerun)
    assert engine.wait(rerun, 30) == RunStatus.SUCCEEDED
    tasks = harness.tasks(rerun)
    assert (tasks["train"].reason, tasks["train"].results) == ("Reused", {"score": 7})
    assert tasks["train"].artifacts == parent_rows["train"]["artifacts"]
    assert "score=7 model=w" in harness.log(rerun, "use")
    assert (harness.data_dir / "runs" / parent / "train-runs").read_text() == "run\n"  # not run again


def test_outputs_of_a_task_that_ended_while_the_controller_was_down_are_recorded(harness: Harness) -> None:
    engine = harness.start()
    gate = harness.data_dir / "go"
    run_id = harness.create(
        pipeline(f"""
tasks:
  - name: slow
    image: busybox
    command: [sh, -c, 'while [ ! -f {gate} ]; do sleep 0.05; done; echo 5 > "$RESULTS_PATH/n"']
    outputs: {{results: [n]}}
  - name: next
    image: busybox
    command: [sh, -c, 'echo n=${{tasks.slow.results.n}}']
    depends: slow
""")
    )
    wait_until(lambda: harness.tasks(run_id)["slow"].status == "running", timeout=20)
    engine.stop()
    harness.engine = None
    gate.touch()
    exit_file = harness.data_dir / "tasks" / run_id / "slow.1.exit"
    wait_until(exit_file.exists, timeout=20)
    engine = harness.start()  # a new engine and executor over the same store and data directory
    assert engine.wait(run_id, 30) == RunStatus.SUCCEEDED
    assert harness.tasks(run_id)["slow"].results == {"n": 5}
    assert "n=5" in harness.log(run_id, "next")


class _NoOutputs(Executor):
    """An executor with no place for outputs (as the Kubernetes one, until the artifact store): starts succeed."""

    name = "kubernetes"

    def paths(self, run: RunContext) -> TaskPaths:
        return TaskPaths(work_path="/work", run_path="/run", root_path="/root")

    def start(self, launch: TaskLaunch) -> None:
        self.report(Observation(launch.run.run_id, launch.task, launch.attempt, TaskStatus.SUCCEEDED, exit_code=0))

    def kill(self, run_id: str, task: str, attempt: int, reason: str) -> None:
        pass

    def recover(self, attempts: list[ActiveAttempt]) -> None:
        pass


def test_outputs_on_an_executor_without_an_artifact_store_fail_permanently(harness: Harness) -> None:
    engine = Engine(harness.db, _NoOutputs(), policy=RetryPolicy(base=0.05, maximum=0.2, jitter=0.0))
    harness.engine = engine
    engine.start()
    assert engine.wait_ready(10)
    run_id = harness.create(
        pipeline("""
tasks:
  - {name: plain, image: busybox, command: ["true"]}
  - {name: makes, image: busybox, command: ["true"], outputs: {results: [x]}, retries: 3}
""")
    )
    assert engine.wait(run_id, 30) == RunStatus.FAILED
    tasks = harness.tasks(run_id)
    assert tasks["plain"].status == "succeeded"
    makes = tasks["makes"]
    assert (makes.status, makes.reason, makes.failure, makes.attempt) == (
        "failed", "OutputsUnsupported", "permanent", 1,
    )  # fmt: skip
    assert "outputs on Kubernetes need the artifact store, not configured yet (issue 11 item 4)" in makes.message
