"""The contract the engine implements, played out on `sample-pipelines/train` with its real scripts: each task gets
its own ${OUTPUT_PATH} and ${RESULTS_PATH}, references resolve to the producers' artifact paths and result values (a
JSON list for a sweep), and `when` decides whether a task runs. A minimal sequential resolver written from the docs
only, so the format is shown to be enough to run the sample; the engine proper does the same with its executors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from odin.schema import PipelineSpec, TaskSpec, substitute, validate_path
from odin.schema.conditions import parse
from odin.schema.outputs import RESULTS_FILE, results_from, sweep_value, value_text

SAMPLE = Path(__file__).resolve().parents[2] / "sample-pipelines" / "train"


def _run(spec: PipelineSpec, params: dict[str, str], root: Path) -> dict[str, str]:
    artifacts: dict[str, dict[str, str]] = {}
    results: dict[str, dict[str, Any]] = {}
    status: dict[str, str] = {}
    for task in spec.tasks:  # file order is a topological order here
        if any(status[d] != "succeeded" for d in task.depends):
            status[task.name] = "skipped"
            continue
        values = _resolve(spec, task, artifacts, results)
        variables = {"WORK_PATH": str(SAMPLE), "COMMIT_SHA": "abc123", **{f"params.{k}": v for k, v in params.items()}}
        variables |= {"OUTPUT_PATH": str(root / task.name / "out"), "RESULTS_PATH": str(root / task.name / "results")}
        if task.when is not None:
            condition_values = {**variables, **values}
            if not parse(task.when).evaluate(condition_values):
                status[task.name] = "skipped"
                continue
        for directory in ("OUTPUT_PATH", "RESULTS_PATH"):
            Path(variables[directory]).mkdir(parents=True)
        texts = {name: value_text(value) for name, value in values.items()}
        argv = [sys.executable, *(substitute(a, variables | texts) for a in task.args)]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)
        artifacts[task.name] = {a.name: str(Path(variables["OUTPUT_PATH"]) / a.path) for a in task.artifacts}
        results_dir = Path(variables["RESULTS_PATH"])
        files = {r.name: (results_dir / r.name).read_text() for r in task.results if (results_dir / r.name).exists()}
        json_file = results_dir / RESULTS_FILE
        results[task.name] = results_from(files, json_file.read_text() if json_file.exists() else None)
        assert set(results[task.name]) >= {r.name for r in task.results}
        status[task.name] = "succeeded"
    return status


def _resolve(
    spec: PipelineSpec, task: TaskSpec, artifacts: dict[str, dict[str, str]], results: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for ref in task.references:
        table = artifacts if ref.kind == "artifacts" else results
        producers = spec.producers(ref.task)
        if producers[0].sweep == ref.task:
            values[ref.variable] = sweep_value([(p, table[p.name][ref.output]) for p in producers])
        else:
            values[ref.variable] = table[ref.task][ref.output]
    return values


@pytest.mark.timeout(300)
@pytest.mark.parametrize(("max_loss", "exported"), [("0.05", True), ("0.0001", False)])
def test_the_train_sample_runs_under_the_output_contract(tmp_path: Path, max_loss: str, exported: bool) -> None:
    [(_, result)] = validate_path([SAMPLE])
    assert result.spec is not None
    status = _run(result.spec, {"epochs": "50", "max_loss": max_loss}, tmp_path)
    assert status == {
        "prepare": "succeeded",
        "train-lr-0-1": "succeeded",
        "train-lr-0-03": "succeeded",
        "train-lr-0-01": "succeeded",
        "evaluate": "succeeded",
        "export": "succeeded" if exported else "skipped",
    }
    exported_model = tmp_path / "export" / "out" / "export" / "model.json"
    assert exported_model.exists() is exported
    if exported:
        model = json.loads(exported_model.read_text())
        assert (model["commit"], model["lr"]) == ("abc123", 0.1) and model["validation_loss"] < 0.05
