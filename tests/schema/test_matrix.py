"""Sweeps (issue 11, item 3): `matrix:` expands at normalisation into one task per combination, named by its values,
capped, with dependents depending on every member."""

from __future__ import annotations

import json

from odin.schema import Limits, PipelineSpec, load_pipeline
from odin.schema.matrix import display_name, member_names

from .helpers import problems, spec

SWEEP = """\
tasks:
  - name: prepare
    image: i
    command: c
  - name: train
    image: i
    command: python train.py --lr ${matrix.lr} --depth ${matrix.depth}
    env: {OPT: "${matrix.opt}", LITERAL: "$${matrix.lr}"}
    depends: prepare
    matrix: {lr: [0.10, 0.03], depth: [4, 8], opt: [adam]}
    outputs: {results: [accuracy]}
    when: ${matrix.opt} == "adam" and ${matrix.depth} > 4
  - name: pick
    image: i
    command: [python, pick.py, "${tasks.train.results.accuracy}"]
    depends: train
"""


def test_a_matrix_expands_in_product_order_with_values_substituted() -> None:
    pipeline = spec(SWEEP)
    names = [t.name for t in pipeline.tasks]
    assert names == [
        "prepare",
        "train-lr-0-10-depth-4-opt-adam",
        "train-lr-0-10-depth-8-opt-adam",
        "train-lr-0-03-depth-4-opt-adam",
        "train-lr-0-03-depth-8-opt-adam",
        "pick",
    ]
    member = pipeline.tasks[2]
    assert member.command == ("python", "train.py", "--lr", "0.10", "--depth", "8")  # as written: 0.10 stays 0.10
    assert member.env == {"OPT": "adam", "LITERAL": "$${matrix.lr}"}  # the escape is left for run time
    assert member.when == '"adam" == "adam" and 8 > 4'
    assert (member.sweep, member.matrix, member.depends) == (
        "train",
        {"lr": 0.1, "depth": 8, "opt": "adam"},
        ("prepare",),
    )
    assert display_name(member.sweep, member.matrix) == 'train[lr=0.1,depth=8,opt="adam"]'


def test_dependents_depend_on_every_member_and_read_the_sweep() -> None:
    pipeline = spec(SWEEP)
    pick = pipeline.task("pick")
    assert pick.depends == tuple(t.name for t in pipeline.tasks[1:5])
    assert [r.task for r in pick.references] == ["train"]
    assert [t.name for t in pipeline.producers("train")] == list(pick.depends)
    assert pipeline.producers("prepare") == (pipeline.task("prepare"),)


def test_the_expanded_spec_round_trips_through_json() -> None:
    pipeline = spec(SWEEP)
    frozen = json.loads(json.dumps(pipeline.to_dict()))
    assert PipelineSpec.from_dict(frozen) == pipeline


def test_names_fall_back_to_a_digest_only_where_readable_names_are_ambiguous_or_too_long() -> None:
    def combo(**values: object) -> dict[str, tuple[object, str]]:
        return {key: (value, str(value)) for key, value in values.items()}

    names = member_names("t", [combo(v="0.1"), combo(v="0-1"), combo(v="x")], {})
    assert names[2] == "t-v-x"
    assert names[0] != names[1] and all(len(n) == len("t-v-0-1-") + 8 for n in names[:2])
    assert member_names("t", [combo(v=".")], {})[0].startswith("t-v-")
    [long] = member_names("t" * 60, [combo(v="abc")], {})
    assert len(long) == 63
    assert member_names("t", [combo(v="x")], {"t-v-x": 0})[0] != "t-v-x"  # another task has the readable name
    # A member's name depends on its own values only: adding a value does not rename the others.
    assert member_names("t", [combo(v="a"), combo(v="b")], {})[1] == member_names("t", [combo(v="b")], {})[0]


def test_every_member_name_is_a_dns_label() -> None:
    pipeline = spec(SWEEP.replace("opt: [adam]", "opt: [Adam_W, 'sgd+momentum', '☃', true]"))
    for task in pipeline.tasks:
        assert len(task.name) <= 63 and task.name == task.name.lower()
        assert all(c.isascii() and (c.isalnum() or c == "-") for c in task.name), task.name


def test_matrix_problems() -> None:
    assert problems(SWEEP.replace("depth: [4, 8]", "depth: [4, 4.0]")) == [
        "10:43: `matrix.depth` lists `4.0` twice (first at line 10)"
    ]
    assert problems(SWEEP.replace("${matrix.depth}", "${matrix.deph}", 1)) == [
        "7:56: `${matrix.deph}`: `matrix` has no key `deph` (did you mean `${matrix.depth}`?)"
    ]
    assert problems(SWEEP.replace('accuracy}"]', 'accuracy}", "${matrix.lr}"]')) == [
        "15:68: `${matrix.lr}`: task `pick` has no `matrix`"
    ]
    assert problems(SWEEP.replace("depth: [4, 8]", "depth: []"))[0].endswith("`matrix.depth` must not be empty")


def test_the_number_of_combinations_is_capped() -> None:
    big = SWEEP.replace("depth: [4, 8]", f"depth: {list(range(200))}")
    assert problems(big) == [
        "10:5: `matrix` makes more than 256 combinations (the limit per task); split the sweep or shorten its lists"
    ]
    result = load_pipeline(big.encode(), file="main.yml", default_name="p", limits=Limits(max_matrix=400))
    assert result.ok and result.spec is not None and len(result.spec.tasks) == 402
    capped = load_pipeline(
        big.encode(), file="main.yml", default_name="p", limits=Limits(max_matrix=400, max_tasks=300)
    )
    assert [p.message for p in capped.problems] == [
        "the pipeline expands to 402 tasks with its sweeps; the limit is 300"
    ]


def test_a_reference_to_a_whole_sweep_cannot_be_compared_in_when() -> None:
    found = problems(SWEEP + "    when: ${tasks.train.results.accuracy} > 0.9\n")
    assert found == [
        "17:11: `when`: `${tasks.train.results.accuracy}` is a list (`train` is a `matrix` sweep, one value per "
        "member), which `when` cannot compare; let a task that depends on the sweep pick one and declare it as a result"
    ]
