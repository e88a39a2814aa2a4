"""JSON Schema violations become one clear problem per place, located at the node to change."""

from __future__ import annotations

import pytest

from odin.schema import Problem

from .helpers import load, one_task, problems


def test_problem_prints_like_a_compiler() -> None:
    [problem] = load("tasks: []\n").problems
    assert problem == Problem("main.yml", 1, 8, "`tasks` must not be empty")
    assert str(problem) == "main.yml:1:8: `tasks` must not be empty"


def test_missing_tasks_points_at_the_document() -> None:
    assert problems("name: a\n") == ["1:1: missing required field `tasks`"]


def test_unknown_top_level_field_with_suggestion_points_at_the_key() -> None:
    assert problems("name: a\ntask:\n  - {name: a, image: b, command: c}\n") == [
        "1:1: missing required field `tasks`",
        "2:1: unknown top-level field `task` (did you mean `tasks`?)",
    ]


def test_unknown_top_level_field_without_suggestion_mentions_extensions() -> None:
    assert problems("tasks: [{name: a, image: b, command: c}]\nfoo: 1\n") == [
        "2:1: unknown top-level field `foo`; extension fields must start with `x-`"
    ]
    assert load("tasks: [{name: a, image: b, command: c}]\nx-foo: {anything: [1]}\n").ok


def test_unknown_task_field_suggests_the_closest() -> None:
    assert problems(one_task("command: c\ndepend: a")) == [
        "5:5: unknown field `depend` in task (did you mean `depends`?)"
    ]
    assert problems(one_task("command: c\nnum_gpu: 1\nEnv: {}")) == [
        "5:5: unknown field `num_gpu` in task (did you mean `num_gpus`?)",
        "6:5: unknown field `Env` in task (did you mean `env`?)",
    ]


def test_unknown_field_in_a_nested_mapping() -> None:
    assert problems(one_task("command: c\ncpu: {request: 1}")) == [
        "5:11: unknown field `request` in `cpu` (did you mean `requests`?)"
    ]


def test_missing_required_task_fields_point_at_the_task() -> None:
    assert problems("tasks:\n  - name: a\n  - image: b\n    command: c\n") == [
        "2:5: missing required fields `image` and `command` in task",
        "3:5: missing required field `name` in task",
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "Train_Model",
            "task name: `Train_Model` must be lowercase letters, digits and `-`, starting and ending with a letter or "
            "digit (e.g. `train-model`)",
        ),
        (
            "-x",
            "task name: `-x` must be lowercase letters, digits and `-`, starting and ending with a letter or digit "
            "(e.g. `x`)",
        ),
        ("a" * 64, "task name is too long (64 characters; at most 63)"),
        ("''", "task name: `` must be lowercase letters, digits and `-`, starting and ending with a letter or digit"),
        ("7", "task name must be a string, not a number (7)"),
    ],
)
def test_task_names(name: str, message: str) -> None:
    assert problems(f"tasks:\n  - name: {name}\n    image: b\n    command: c\n") == [f"2:11: {message}"]


def test_one_message_per_place() -> None:
    # Both too long and badly spelled: the user sees one problem at that place, not two.
    found = problems(f"tasks:\n  - name: {'A' * 70}\n    image: b\n    command: c\n")
    assert len(found) == 1


def test_pipeline_name() -> None:
    assert problems("name: My Pipeline\ntasks: [{name: a, image: b, command: c}]\n") == [
        "1:7: pipeline name: `My Pipeline` must be lowercase letters, digits and `-`, starting and ending with a "
        "letter or digit (e.g. `my-pipeline`)"
    ]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("command: 5", "4:14: `command` must be a string or a list of strings"),
        ("command: {run: x}", "4:14: `command` must be a string or a list of strings"),
        ("command: [python, {a: 1}]", "4:23: `command[1]` must be a string or a number, not a mapping"),
        ("command: ''", "4:14: `command` must not be empty"),
        ("command: []", "4:14: `command` must not be empty"),
        ("command: c\nargs: [a, [b]]", "5:15: `args[1]` must be a string, a number or a boolean, not a list"),
        ("command: c\nargs: a b", "5:11: `args` must be a list, not a string (`a b`)"),
        ("command: c\ndepends: 5", "5:14: `depends` must be a task name or a list of task names"),
        ("command: c\ndepends: [5]", "5:15: `depends[0]` must be a string, not a number (5)"),
        ("command: c\nnum_gpus: -1", "5:15: `num_gpus` must be at least 0, not -1"),
        ("command: c\nnum_gpus: two", "5:15: `num_gpus` must be an integer, not a string (`two`)"),
        ("command: c\nnum_gpus: 1.5", "5:15: `num_gpus` must be an integer, not a number (1.5)"),
        ("command: c\nnum_gpus: true", "5:15: `num_gpus` must be an integer, not `true`"),
        ("command: c\nnum_workers: 0", "5:18: `num_workers` must be at least 1, not 0"),
        ("command: c\nretries: 101", "5:14: `retries` must be at most 100, not 101"),
        (
            "command: c\npull_policy: always",
            "5:18: `pull_policy` must be one of Always, IfNotPresent, Never, not `always` (did you mean `Always`?)",
        ),
        (
            "command: c\nresource_type: pytorchjob",
            "5:20: `resource_type` must be one of Pod, Job, PyTorchJob, TFJob, MPIJob, ElasticJob, TrainJob, not "
            "`pytorchjob` (did you mean `PyTorchJob`?)",
        ),
        (
            "command: c\ncpu: {requests: 1 core}",
            "5:21: `cpu.requests`: `1 core` is not a Kubernetes quantity (e.g. `500m`, `2`, `1.5`, `4Gi`, `512Mi`)",
        ),
        ("command: c\ncpu: {}", "5:10: `cpu` must not be empty"),
        ("command: c\nmemory: {requests: -1}", "5:24: `memory.requests` must be at least 0, not -1"),
        (
            "command: c\nmemory: {requests: [1]}",
            "5:24: `memory.requests` must be a Kubernetes quantity (e.g. `500m`, `2`, `4Gi`)",
        ),
        (
            "command: c\ntimeout: 1x",
            "5:14: `timeout`: `1x` is not a duration (e.g. `90s`, `30m`, `2h`, `1h30m`, `1d`)",
        ),
        (
            "command: c\ntimeout: 30m1h",
            "5:14: `timeout`: `30m1h` is not a duration (e.g. `90s`, `30m`, `2h`, `1h30m`, `1d`)",
        ),
        (
            "command: c\ntimeout: [1]",
            "5:14: `timeout` must be a number of seconds or a duration such as `90s`, `30m`, `2h`, `1h30m`",
        ),
        ("command: c\nenv: {A: null}", "5:14: `env.A` is empty; it must be a string, a number or a boolean"),
        ("command: c\nenv: {A: [1]}", "5:14: `env.A` must be a string, a number or a boolean, not a list"),
        (
            "command: c\nenv: {1A: x}",
            "5:11: `1A` is not a valid environment variable name (letters, digits, `_`, `-`, `.`; not starting with a "
            "digit)",
        ),
        (
            "command: c\nimage_pull_secrets: Regcred",
            "5:25: `image_pull_secrets` must be a list, not a string (`Regcred`)",
        ),
        (
            "command: c\nsecurity_context: {runAsUser: -1}",
            "5:35: `security_context.runAsUser` must be at least 0, not -1",
        ),
        (
            "command: c\nsecurity_context: {run_as: 1}",
            "5:24: unknown field `run_as` in `security_context` (did you mean `run_as_user`?)",
        ),
        (
            "command: c\ntolerations: [{key: a, operator: Exist}]",
            "5:38: `tolerations[0].operator` must be one of Equal, Exists, not `Exist` (did you mean `Exists`?)",
        ),
        (
            "command: c\nresource_type: ElasticJob\nelastic: {min_replicas: 0}",
            "6:29: `elastic.min_replicas` must be at least 1, not 0",
        ),
        ("command: c\nservice_account: Default", None),
    ],
)
def test_task_field_problems(body: str, expected: str | None) -> None:
    found = problems(one_task(body))
    if expected is None:
        assert len(found) == 1
        assert "must be a Kubernetes object name" in found[0]
    else:
        assert found == [expected]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (  # without `claim`, a mount names one of the task's ephem_volumes (the original Odin's format)
            "command: c\nmounts: [{name: m, path: /m}]",
            "5:14: mount `m` has no `claim`: name a PersistentVolumeClaim, or declare `m` under `ephem_volumes`",
        ),
        (
            "command: c\nmounts: {name: m, path: m, claim: c}",
            "5:29: `mounts.path`: `m` must be an absolute path (starting with `/`)",
        ),
        (
            "command: c\nmounts: [{name: m, path: /m, claim: c, sub_path: ../etc}]",
            "5:54: `mounts[0].sub_path`: `../etc` must be a relative path without `..` components",
        ),
        ("command: c\nmounts: 5", "5:13: `mounts` must be a mount (`{name, path, claim}`) or a list of mounts"),
        (
            "command: c\nmount: [{name: m, path: /m, claim: c, ro: true}]",
            "5:43: unknown field `ro` in `mount[0]` (expected one of: name, path, claim, read_only, sub_path)",
        ),
        ("command: c\nsecrets: [{name: s}]", "5:15: missing required field `path` in `secrets[0]`"),
        (
            "command: c\nsecrets: [My_Secret]",
            "5:15: `secrets[0]`: `My_Secret` must be a Kubernetes object name: lowercase letters, digits, `-` and `.`, "
            "starting and ending with a letter or digit",
        ),
        ("command: c\nsecret: {name: s, path: /s, mode: 1000}", "5:39: `secret.mode` must be at most 511, not 1000"),
        (
            "command: c\nconfig_maps: [5]",
            "5:19: `config_maps[0]` must be a ConfigMap name or a mapping `{name, path, sub_path?}`",
        ),
    ],
)
def test_volume_problems(body: str, expected: str) -> None:
    assert problems(one_task(body)) == [expected]


def test_params_problems() -> None:
    assert problems(
        """
        params:
          "bad name": 1
          lr: [1]
          n: {type: int}
          m: {default: 1, help: x}
        tasks: [{name: a, image: b, command: c}]
        """
    ) == [
        "2:3: `bad name` is not a valid parameter name: start with a letter or `_`, then letters, digits, `_` or `-` "
        "(at most 63 characters)",
        "3:7: `params.lr` must be a default value (string, number or boolean) or a mapping with `default`, `type`, "
        "`description`, `choices`",
        "4:13: `params.n.type` must be one of string, integer, number, boolean, not `int` (did you mean `integer`?)",
        "5:19: unknown field `help` in `params.m` (expected one of: default, description, type, choices)",
    ]


def test_image_without_spaces() -> None:
    assert problems("tasks:\n  - name: a\n    image: my image\n    command: c\n") == [
        "3:12: `image`: `my image` must be an image reference without spaces"
    ]


def test_tasks_must_be_a_list_of_mappings() -> None:
    assert problems("tasks: {name: a}\n") == ["1:8: `tasks` must be a list, not a mapping"]
    assert problems("tasks: [a]\n") == ["1:9: `tasks[0]` must be a mapping, not a string (`a`)"]


def test_problems_are_sorted_by_position() -> None:
    result = load(one_task("command: c\nnum_gpus: -1\nretries: -1\ndepend: x"))
    assert result.problems == sorted(result.problems)
    assert [p.line for p in result.problems] == [5, 6, 7]
