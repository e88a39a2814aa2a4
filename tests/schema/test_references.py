"""References between tasks (issue 11, item 2): `${tasks.T.results.R}`, `${tasks.T.artifacts.A}` and the original
Odin's `^T.key`, valid only for outputs an ancestor declares; recorded on the spec for the engine."""

from __future__ import annotations

from textwrap import dedent

from odin.schema import TaskReference

from .helpers import problems, spec

HEAD = """\
tasks:
  - name: prepare
    image: i
    command: c
    outputs: {artifacts: [data], results: [rows]}
  - name: train
    image: i
    command: c
    depends: prepare
    outputs: {artifacts: [model], results: [accuracy]}
"""


def pipeline(body: str) -> str:
    """HEAD plus one task `use`, whose lines (indented by 4) are `body`."""
    return (
        HEAD + "  - name: use\n    image: i\n" + "".join(f"    {line}\n" for line in dedent(body).strip().splitlines())
    )


def test_references_to_ancestors_are_recorded_where_used() -> None:
    use = spec(
        pipeline(
            """
            command: [python, use.py, "${tasks.train.artifacts.model}"]
            args: ["--rows=${tasks.prepare.results.rows}", "${tasks.train.results.accuracy}"]
            env: {MODEL: "${tasks.train.artifacts.model}"}
            depends: train
            when: ${tasks.train.results.accuracy} > 0.5
            """
        )
    ).task("use")
    assert use.references == (
        TaskReference("train", "artifacts", "model", "command[2]"),
        TaskReference("prepare", "results", "rows", "args[0]"),
        TaskReference("train", "results", "accuracy", "args[1]"),
        TaskReference("train", "artifacts", "model", "env.MODEL"),
        TaskReference("train", "results", "accuracy", "when"),
    )
    assert use.references[0].variable == "tasks.train.artifacts.model"
    assert use.args == ("--rows=${tasks.prepare.results.rows}", "${tasks.train.results.accuracy}")


def test_the_producer_must_be_an_ancestor() -> None:
    assert problems(pipeline("command: c ${tasks.train.results.accuracy}\ndepends: prepare")) == [
        "13:16: `${tasks.train.results.accuracy}`: `use` does not depend on `train`, so `train` may not have run yet; "
        "add `train` to `depends` (directly, or through a task that depends on it)"
    ]
    assert problems(pipeline("command: c ${tasks.use.results.x}")) == [
        "13:16: `${tasks.use.results.x}`: a task cannot read its own outputs; use `${OUTPUT_PATH}` or `${RESULTS_PATH}`"
    ]


def test_the_output_must_be_declared_with_hints() -> None:
    found = problems(
        pipeline(
            "command: c ${tasks.train.results.acuracy} ${tasks.train.results.model} ${tasks.trian.results.accuracy}"
            "\ndepends: train"
        )
    )
    assert found == [
        "13:16: `${tasks.train.results.acuracy}`: `train` declares no result `acuracy` (did you mean `accuracy`?)",
        "13:47: `${tasks.train.results.model}`: `train` declares `model` as an artifact, not a result: write "
        "`${tasks.train.artifacts.model}`",
        "13:76: `${tasks.trian.results.accuracy}`: no task `trian` (did you mean `train`?)",
    ]


def test_malformed_task_references() -> None:
    assert [
        p.split(": ", 1)[1] for p in problems(pipeline("command: c ${tasks.train} ${tasks.train.outputs.model}"))
    ] == [
        "`${tasks.train}`: a task output is written `${tasks.TASK.results.NAME}` or `${tasks.TASK.artifacts.NAME}`",
        "`${tasks.train.outputs.model}`: `outputs` is not a kind of output: write `results` or `artifacts`",
    ]


def test_legacy_caret_references_are_read_and_rewritten() -> None:
    use = spec(
        pipeline(
            """
            command: python use.py ^train.model
            args: ["^prepare.rows", "--acc={^train.accuracy}", "^foo.bar", "grep ^train.x"]
            depends: train
            """
        )
    ).task("use")
    assert use.command == ("python", "use.py", "${tasks.train.artifacts.model}")
    # `^foo.bar` names no task and a caret inside a longer word is not a reference: both pass through as written.
    assert use.args == (
        "${tasks.prepare.results.rows}",
        "--acc=${tasks.train.results.accuracy}",
        "^foo.bar",
        "grep ^train.x",
    )
    assert [r.variable for r in use.references] == [
        "tasks.train.artifacts.model",
        "tasks.prepare.results.rows",
        "tasks.train.results.accuracy",
    ]


def test_legacy_references_are_checked_like_the_others() -> None:
    assert problems(pipeline('args: ["^train.model", "x{^prepare.nope}"]\ncommand: c\ndepends: prepare')) == [
        "13:13: `^train.model`: `use` does not depend on `train`, so `train` may not have run yet; add `train` to "
        "`depends` (directly, or through a task that depends on it)",
        "13:30: `^prepare.nope`: `prepare` declares no output `nope`",
    ]


def test_a_quoted_legacy_word_in_a_command_string_is_checked_too() -> None:
    assert problems(pipeline("command: python use.py '^train.model'\ndepends: prepare")) == [
        "13:29: `^train.model`: `use` does not depend on `train`, so `train` may not have run yet; add `train` to "
        "`depends` (directly, or through a task that depends on it)"
    ]
    assert spec(pipeline("command: python use.py '^train.model'\ndepends: train")).task("use").command[-1] == (
        "${tasks.train.artifacts.model}"
    )


def test_legacy_caret_references_in_env_are_read_rewritten_and_checked() -> None:
    use = spec(
        pipeline(
            """
            command: c
            env: {MODEL: "^train.model", ACC: "acc={^train.accuracy}", PATTERN: "^foo.bar"}
            depends: train
            """
        )
    ).task("use")
    assert use.env == {
        "MODEL": "${tasks.train.artifacts.model}",
        "ACC": "acc=${tasks.train.results.accuracy}",
        "PATTERN": "^foo.bar",  # names no task: passes through as written
    }
    assert [(r.variable, r.where) for r in use.references] == [
        ("tasks.train.artifacts.model", "env.MODEL"),
        ("tasks.train.results.accuracy", "env.ACC"),
    ]
    checked = pipeline('command: c\nenv: {MODEL: "^train.model", ROWS: "{^prepare.nope}"}\ndepends: prepare')
    assert problems(checked) == [
        "14:19: `^train.model`: `use` does not depend on `train`, so `train` may not have run yet; add `train` to "
        "`depends` (directly, or through a task that depends on it)",
        "14:41: `^prepare.nope`: `prepare` declares no output `nope`",
    ]


def test_ancestry_is_transitive_and_follows_any_path() -> None:
    chain = "tasks:\n" + "".join(
        f"  - {{name: t{i}, image: i, command: c, depends: [t{i - 1}], outputs: {{results: [r]}}}}\n"
        for i in range(1, 40)
    ).replace("depends: [t0]", "depends: []")
    ok = chain + "  - {name: last, image: i, command: 'c ${tasks.t1.results.r}', depends: t39}\n"
    assert problems(ok) == []
    unrelated = chain + "  - {name: other, image: i, command: 'c ${tasks.t1.results.r}', depends: []}\n"
    assert len(problems(unrelated)) == 1
