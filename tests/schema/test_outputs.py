"""Declared outputs (issue 11, item 1): artifacts under ${OUTPUT_PATH}, results under ${RESULTS_PATH}, and the
former lineage-only `inputs`/`outputs` lists reported with how to migrate."""

from __future__ import annotations

import json

import pytest

from odin.schema import Artifact, PipelineSpec, Result, TaskSpec
from odin.schema.outputs import artifact_path, parse_result, results_from, sweep_value, value_text

from .helpers import one_task, problems, spec


def test_outputs_shorthand_and_full_form() -> None:
    [t] = spec(
        one_task(
            """
            command: python train.py --out ${OUTPUT_PATH}/model.pt --metrics ${RESULTS_PATH}
            outputs:
              artifacts: [data, {name: model, path: ./out//model.pt, description: Weights.}]
              results: [accuracy, {name: loss, description: Test loss.}]
            """
        )
    ).tasks
    assert t.artifacts == (Artifact("data", "data"), Artifact("model", "out/model.pt", "Weights."))
    assert t.results == (Result("accuracy"), Result("loss", "Test loss."))


def test_output_names_are_identifiers_unique_across_kinds() -> None:
    assert problems(one_task("command: c\noutputs: {artifacts: [model], results: [model]}")) == [
        "5:45: output `model` is declared twice (first at line 5)"
    ]
    assert problems(one_task("command: c\noutputs: {results: [2fast]}")) == [
        "5:25: `outputs.results[0]`: `2fast` is not a valid output name: start with a letter or `_`, then letters, "
        "digits or `_` (at most 63 characters)"
    ]


OUTSIDE = "must be a path relative to `${OUTPUT_PATH}`, without `..` components"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("../model", f"`outputs.artifacts[0].path`: `../model` {OUTSIDE}"),
        ("a/../../b", f"`outputs.artifacts[0].path`: `a/../../b` {OUTSIDE}"),
        ("/etc/passwd", f"`outputs.artifacts[0].path`: `/etc/passwd` {OUTSIDE}"),
        ("./.", "artifact path `./.` names no file or directory under `${OUTPUT_PATH}`"),
        ("${RUN_PATH}/m", "artifact path `${RUN_PATH}/m` is relative to `${OUTPUT_PATH}` and literal: variables are "
         "not substituted"),
    ],
)  # fmt: skip
def test_artifact_paths_stay_inside_output_path(path: str, message: str) -> None:
    found = problems(one_task(f"command: c\noutputs: {{artifacts: [{{name: m, path: '{path}'}}]}}"))
    assert [p.split(": ", 1)[1] for p in found] == [message]


def test_artifacts_cannot_overlap() -> None:
    found = problems(
        one_task("command: c\noutputs: {artifacts: [{name: a, path: m}, {name: b, path: m/x}, {name: c, path: ./m}]}")
    )
    assert [p.split(": ", 1)[1] for p in found] == [
        "artifact `b` (`m/x`) is inside artifact `c` (`m`); declare one or the other",
        "artifacts `a` and `c` have the same path `m`",
    ]


def test_the_lineage_lists_are_reported_with_how_to_migrate() -> None:
    found = problems(one_task("command: c\ninputs: [data]\noutputs: [model]"))
    assert len(found) == 2
    assert found[0].startswith("5:5: `inputs` (paths recorded for lineage) is no longer used: read another task's")
    assert found[1].startswith("6:14: `outputs` is now a mapping of named outputs, not a list of paths")
    assert "outputs: {artifacts: [{name: model, path: model.pt}], results: [accuracy]}" in found[1]


def test_output_and_results_path_are_known_variables() -> None:
    assert problems(one_task("command: [sh, -c, 'x > ${OUTPUT_PATH}/a; y > ${RESULTS_PATH}/b']")) == []


def test_a_frozen_spec_from_before_outputs_still_loads() -> None:
    old = {"name": "p", "tasks": [{"name": "t", "image": "i", "command": ["c"], "inputs": ["a"], "outputs": ["b"]}]}
    assert PipelineSpec.from_dict(old).tasks[0] == TaskSpec(name="t", image="i", command=("c",))


def test_result_files_and_values() -> None:
    assert [parse_result(text) for text in ("0.93\n", "true", '"a b"', "hello\n", "[1, 2]", "")] == [
        0.93, True, "a b", "hello", [1, 2], ""
    ]  # fmt: skip
    assert results_from({"acc": "0.5"}, '{"acc": 0.4, "loss": 0.1}') == {"acc": 0.5, "loss": 0.1}
    with pytest.raises(ValueError, match="must hold a JSON object"):
        results_from({}, "[1]")
    assert [value_text(v) for v in ("/out/model", 0.93, True, None, {"a": [1, 2]})] == [
        "/out/model", "0.93", "true", "null", '{"a":[1,2]}'
    ]  # fmt: skip


def test_sweep_value_shape() -> None:
    members = spec(
        one_task(
            "command: c ${matrix.lr} ${matrix.opt}\nmatrix: {lr: [0.1, 0.01], opt: [adam]}\noutputs: {results: [acc]}"
        )
    ).tasks
    value = value_text(sweep_value([(members[0], 0.9), (members[1], 0.8)]))
    assert json.loads(value) == [
        {"task": "t-lr-0-1-opt-adam", "matrix": {"lr": 0.1, "opt": "adam"}, "value": 0.9},
        {"task": "t-lr-0-01-opt-adam", "matrix": {"lr": 0.01, "opt": "adam"}, "value": 0.8},
    ]


def test_artifact_path_normalisation() -> None:
    assert artifact_path("a//b/./c/") == "a/b/c"
    assert artifact_path("..") == ("artifact path `..` must stay inside `${OUTPUT_PATH}` (no `..`)",)
