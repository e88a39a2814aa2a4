"""Checks across tasks: names, dependencies, cycles, variables, and which resource types run several workers."""

from __future__ import annotations

import pytest

from .helpers import load, one_task, problems


def test_duplicate_task_names_point_at_the_second_and_name_the_first_line() -> None:
    assert problems(
        """
        tasks:
          - {name: a, image: x, command: c}
          - {name: b, image: x, command: c}
          - {name: a, image: x, command: c}
        """
    ) == ["4:12: duplicate task name `a` (first at line 2)"]


def test_unknown_dependency_with_suggestion_in_both_forms() -> None:
    assert problems(
        """
        tasks:
          - {name: train, image: x, command: c}
          - {name: eval, image: x, command: c, depends: trian}
          - {name: report, image: x, command: c, depends: [eval, publish]}
        """
    ) == [
        "3:49: depends on unknown task `trian` (did you mean `train`?)",
        "4:58: depends on unknown task `publish`",
    ]


def test_self_dependency() -> None:
    assert problems("tasks:\n  - {name: a, image: x, command: c, depends: [a]}\n") == [
        "2:47: task `a` depends on itself"
    ]


def test_two_task_cycle_is_named_once() -> None:
    assert problems(
        """
        tasks:
          - name: train
            image: x
            command: c
            depends: eval
          - name: eval
            image: x
            command: c
            depends: [train]
        """
    ) == ["5:14: dependency cycle: train → eval → train"]


def test_three_task_cycle_follows_depends_from_the_first_task_in_the_file() -> None:
    assert problems(
        """
        tasks:
          - {name: c, image: x, command: c, depends: [b]}
          - {name: a, image: x, command: c, depends: [c]}
          - {name: b, image: x, command: c, depends: [a]}
          - {name: ok, image: x, command: c, depends: [a, b, c]}
        """
    ) == ["2:47: dependency cycle: c → b → a → c"]


def test_separate_cycles_are_each_reported_and_the_shortest_cycle_is_named() -> None:
    assert problems(
        """
        tasks:
          - {name: a, image: x, command: c, depends: [b, c]}
          - {name: b, image: x, command: c, depends: [c]}
          - {name: c, image: x, command: c, depends: [a]}
          - {name: p, image: x, command: c, depends: [q]}
          - {name: q, image: x, command: c, depends: [p]}
        """
    ) == [
        "2:50: dependency cycle: a → c → a",
        "5:47: dependency cycle: p → q → p",
    ]


def test_a_long_chain_is_not_a_cycle_and_does_not_recurse() -> None:
    n = 3000
    lines = ["tasks:", "  - {name: t0, image: x, command: c}"]
    lines += [f"  - {{name: t{i}, image: x, command: c, depends: t{i - 1}}}" for i in range(1, n)]
    assert load("\n".join(lines) + "\n").ok
    lines[1] = f"  - {{name: t0, image: x, command: c, depends: t{n - 1}}}"
    [problem] = load("\n".join(lines) + "\n").problems
    assert problem.message.startswith("dependency cycle: t0 → t2999 → t2998 → ")
    assert problem.message.endswith(" → t1 → t0")


def test_schema_problems_and_dag_problems_come_together() -> None:
    assert problems(
        """
        tasks:
          - {name: a, image: x, command: c, depends: b, num_gpu: 1}
          - {name: b, image: x, command: c, depends: a}
        """
    ) == [
        "2:46: dependency cycle: a → b → a",
        "2:49: unknown field `num_gpu` in task (did you mean `num_gpus`?)",
    ]


# --- workers ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("resource_type", ["Pod", "Job", None])
def test_several_workers_need_a_distributed_resource_type(resource_type: str | None) -> None:
    kind = f"\nresource_type: {resource_type}" if resource_type else ""
    found = problems(one_task(f"command: c\nnum_workers: 4{kind}"))
    shown = resource_type or "Pod"
    assert found == [
        f"5:18: num_workers: 4 needs a distributed resource_type (PyTorchJob, TFJob, MPIJob, ElasticJob or TrainJob); "
        f"a {shown} runs one worker"
    ]


@pytest.mark.parametrize("resource_type", ["PyTorchJob", "TFJob", "MPIJob", "ElasticJob", "TrainJob"])
def test_distributed_resource_types_run_several_workers(resource_type: str) -> None:
    assert load(one_task(f"command: c\nnum_workers: 4\nresource_type: {resource_type}")).ok


def test_elastic_settings_need_an_elastic_resource_type() -> None:
    assert problems(one_task("command: c\nresource_type: TFJob\nelastic: {max_replicas: 4}")) == [
        "6:5: `elastic` needs resource_type ElasticJob or PyTorchJob, not TFJob"
    ]


# --- variables ----------------------------------------------------------------------------------------------------


def test_builtin_and_param_variables_are_accepted() -> None:
    assert load(
        """
        params: {lr: 0.1}
        tasks:
          - name: a
            image: x
            command: train --out ${RUN_PATH} --work ${WORK_PATH} --root ${ROOT_PATH}
            args: ["${TASK_ID}", "${TASK_NAME}", "${PIPE_ID}", "${COMMIT_SHA}", "${params.lr}"]
            env: {LR: "lr=${params.lr}"}
        """
    ).ok


def test_unknown_variable_points_at_the_dollar_in_a_plain_scalar() -> None:
    assert problems(one_task("command: echo ${RUNPATH}/x")) == [
        "4:19: unknown variable `${RUNPATH}` (did you mean `${RUN_PATH}`?); write `$${RUNPATH}` to pass it through "
        "literally"
    ]


def test_unknown_variables_in_quoted_scalars_lists_and_env() -> None:
    assert problems(
        one_task(
            """
            command: [sh, -c, "echo ${HOME} ${HOME}"]
            args: ['${X}']
            env:
              A: "${TASKID}"
            """
        )
    ) == [
        "4:29: unknown variable `${HOME}`; write `$${HOME}` to pass it through literally",
        "4:37: unknown variable `${HOME}`; write `$${HOME}` to pass it through literally",
        "5:13: unknown variable `${X}`; write `$${X}` to pass it through literally",
        "7:11: unknown variable `${TASKID}` (did you mean `${TASK_ID}`?); write `$${TASKID}` to pass it through "
        "literally",
    ]


def test_unknown_variable_in_a_multi_line_scalar_points_at_the_scalar() -> None:
    assert problems(one_task("command: |\n  echo\n  ${NOPE}")) == [
        "4:14: unknown variable `${NOPE}`; write `$${NOPE}` to pass it through literally"
    ]


def test_undeclared_params() -> None:
    assert problems("tasks: [{name: a, image: x, command: 'echo ${params.lr}'}]\n") == [
        "1:44: `${params.lr}`: no parameter `lr` is declared (the pipeline has no `params`)"
    ]
    assert problems(
        "params: {learning_rate: 1}\ntasks: [{name: a, image: x, command: 'run ${params.learning-rate}'}]\n"
    ) == [
        "2:43: `${params.learning-rate}`: no parameter `learning-rate` is declared "
        "(did you mean `${params.learning_rate}`?)"
    ]


def test_escapes_and_shell_variables_pass_through() -> None:
    assert load(one_task("command: [sh, -c, 'echo $${HOME} $HOME $$ $${params.x} ${RUN_PATH}']")).ok


def test_unterminated_variable() -> None:
    assert problems(one_task("command: echo ${RUN_PATH/x")) == ["4:19: unterminated `${` (no closing `}`)"]


def test_variables_elsewhere_are_not_checked() -> None:
    # Only command, args and env are substituted; other fields are taken literally.
    assert load(one_task("command: c\nnode_selector: {zone: '${whatever}'}")).ok
