"""Normalisation: every field's shorthand and spelling ends up in one form in PipelineSpec / TaskSpec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from odin.schema import (
    Artifact,
    ConfigMapMount,
    Mount,
    ParamSpec,
    PipelineSpec,
    Resources,
    Result,
    SecretMount,
    TaskSpec,
    validate_path,
)

from .helpers import load, one_task, problems, spec

DATA = Path(__file__).parent / "data"


def task(body: str) -> TaskSpec:
    return spec(one_task(body)).tasks[0]


def test_minimal_task_gets_every_default() -> None:
    assert task("command: echo hi") == TaskSpec(name="t", image="busybox", command=("echo", "hi"))


def test_pipeline_name_defaults_to_the_directory_and_description_is_kept() -> None:
    pipeline = spec("description: d\ntasks: [{name: a, image: b, command: c}]\n", default_name="from-dir")
    assert (pipeline.name, pipeline.description) == ("from-dir", "d")
    assert spec("name: mine\ntasks: [{name: a, image: b, command: c}]\n", default_name="dir").name == "mine"


def test_an_invalid_directory_name_needs_an_explicit_name() -> None:
    assert problems("tasks: [{name: a, image: b, command: c}]\n", default_name="My_Pipeline") == [
        "1:1: the pipeline has no `name:` and its directory name `My_Pipeline` is not a valid pipeline name "
        "(lowercase letters, digits and `-`, at most 63 characters); add a `name:`"
    ]
    assert spec("name: ok\ntasks: [{name: a, image: b, command: c}]\n", default_name="My_Pipeline").name == "ok"


# --- command, args, env -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("python train.py", ("python", "train.py")),
        ("python  train.py\t--x 1", ("python", "train.py", "--x", "1")),
        ("""python -c 'print("a b")'""", ("python", "-c", 'print("a b")')),
        ('echo "a b" c\\ d', ("echo", "a b", "c d")),
        ("echo ${RUN_PATH}/out $HOME", ("echo", "${RUN_PATH}/out", "$HOME")),
        ("[sh, -c, 'a && b > ${RUN_PATH}/x']", ("sh", "-c", "a && b > ${RUN_PATH}/x")),
        ("[sleep, 10]", ("sleep", "10")),
    ],
)
def test_command(command: str, expected: tuple[str, ...]) -> None:
    assert task(f"command: {command}").command == expected


def test_command_that_shlex_cannot_split() -> None:
    assert problems(one_task('command: "echo \'unbalanced"')) == [
        "4:14: `command` cannot be split into words: No closing quotation; quote carefully or write it as a list"
    ]


def test_command_of_only_spaces_is_empty() -> None:
    assert problems(one_task("command: '   '")) == ["4:14: `command` is empty"]


def test_args_and_env_keep_scalars_exactly_as_written() -> None:
    t = task(
        """
        command: run
        args: [--lr, 0.10, --n, 010, --flag, NO, --t, 1:30, --big, 1_000, --yes, true, -x, .inf, ~name]
        env: {A: 1, B: 0.50, C: yes, D: "quoted", E: 2024-01-01, F: False}
        node_selector: {gpu: true, zone: 3}
        """
    )
    assert t.args == (
        "--lr", "0.10", "--n", "010", "--flag", "NO", "--t", "1:30", "--big", "1_000", "--yes", "true", "-x", ".inf",
        "~name",
    )  # fmt: skip
    assert t.env == {"A": "1", "B": "0.50", "C": "yes", "D": "quoted", "E": "2024-01-01", "F": "False"}
    assert t.node_selector == {"gpu": "true", "zone": "3"}


def test_aliased_scalars_keep_their_text_too() -> None:
    pipeline = spec(
        """
        x-lr: &lr 0.10
        tasks:
          - {name: a, image: b, command: [run, *lr], env: {LR: *lr}}
        """
    )
    assert pipeline.tasks[0].command == ("run", "0.10")
    assert pipeline.tasks[0].env == {"LR": "0.10"}


def test_explicitly_tagged_numbers_are_stringified() -> None:
    assert task("command: run\nargs: [!!int '0x10', !!float '2']").args == ("16", "2.0")


# --- depends ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("depends", "expected"),
    [("a", ("a",)), ("[a, b]", ("a", "b")), ("[b, a, b]", ("b", "a")), ("null", ()), ("[]", ())],
)
def test_depends_forms(depends: str, expected: tuple[str, ...]) -> None:
    pipeline = spec(
        f"""
        tasks:
          - {{name: a, image: x, command: c}}
          - {{name: b, image: x, command: c}}
          - {{name: t, image: x, command: c, depends: {depends}}}
        """
    )
    assert pipeline.task("t").depends == expected


# --- mounts, secrets, config maps ---------------------------------------------------------------------------------


def test_mounts_list_and_single_mapping_and_legacy_spelling() -> None:
    full = Mount(name="data", path="/data", claim="datasets", read_only=True, sub_path="v2")
    as_list = task("command: c\nmounts: [{name: data, path: /data, claim: datasets, read_only: true, sub_path: v2}]")
    single = task("command: c\nmounts: {name: data, path: /data, claim: datasets, read_only: true, sub_path: v2}")
    legacy = task("command: c\nmount: {name: data, path: /data, claim: datasets, read_only: true, sub_path: v2}")
    assert as_list.mounts == single.mounts == legacy.mounts == (full,)
    assert task("command: c\nmounts: {name: m, path: /m, claim: c}").mounts == (Mount("m", "/m", "c"),)


def test_secrets_shorthand_mapping_and_legacy_spelling() -> None:
    t = task("command: c\nsecrets: [wandb, {name: aws, path: /root/.aws, sub_path: creds, mode: 0400}]")
    assert t.secrets == (
        SecretMount(name="wandb", path="/etc/odin/secrets/wandb"),
        SecretMount(name="aws", path="/root/.aws", sub_path="creds", mode=0o400),
    )
    assert task("command: c\nsecret: wandb").secrets == (SecretMount(name="wandb", path="/etc/odin/secrets/wandb"),)
    assert task("command: c\nsecrets: wandb").secrets == task("command: c\nsecret: [wandb]").secrets


def test_config_maps_shorthand_mapping_and_legacy_spelling() -> None:
    t = task("command: c\nconfig_maps: [train, {name: eval, path: /etc/eval, sub_path: suite.yaml}]")
    assert t.config_maps == (
        ConfigMapMount(name="train", path="/etc/odin/config/train"),
        ConfigMapMount(name="eval", path="/etc/eval", sub_path="suite.yaml"),
    )
    assert task("command: c\nconfig_map: train").config_maps == t.config_maps[:1]


@pytest.mark.parametrize(
    ("canonical", "legacy"), [("mounts", "mount"), ("secrets", "secret"), ("config_maps", "config_map")]
)
def test_canonical_and_legacy_spelling_together_is_a_problem(canonical: str, legacy: str) -> None:
    value = "{name: m, path: /m, claim: c}" if canonical == "mounts" else "[x]"
    other = "{name: n, path: /n, claim: c}" if canonical == "mounts" else "[y]"
    assert problems(one_task(f"command: c\n{canonical}: {value}\n{legacy}: {other}")) == [
        f"6:5: use either `{canonical}` or its older spelling `{legacy}`, not both"
    ]


def test_two_volumes_at_one_path_and_duplicate_mount_names() -> None:
    assert problems(
        one_task(
            """
            command: c
            mounts:
              - {name: a, path: /data, claim: c1}
              - {name: a, path: /other, claim: c2}
            secrets: [{name: s, path: /data/}]
            config_maps: x
            """
        )
    ) == [
        "7:16: mount name `a` is used twice in this task",
        "8:15: `secrets[0]` mounts at `/data`, which `mounts[0]` already uses",
    ]


# --- resources and scheduling -------------------------------------------------------------------------------------


def test_resources_and_scheduling_fields() -> None:
    t = task(
        """
        command: c
        num_gpus: 2
        cpu: {requests: 500m, limits: 2}
        memory: {requests: 0.5, limits: 8Gi}
        pull_policy: Always
        resource_type: Job
        queue: team-a
        retries: 3
        service_account: trainer
        image_pull_secrets: [regcred]
        outputs: {artifacts: [model, {name: metrics, path: ./eval//metrics.json}], results: [accuracy]}
        """
    )
    assert t.num_gpus == 2
    assert t.num_workers == 1
    assert t.cpu == Resources(requests="500m", limits="2")
    assert t.memory == Resources(requests="0.5", limits="8Gi")
    assert (t.pull_policy, t.resource_type, t.queue, t.retries) == ("Always", "Job", "team-a", 3)
    assert (t.service_account, t.image_pull_secrets) == ("trainer", ("regcred",))
    assert t.artifacts == (Artifact("model", "model"), Artifact("metrics", "eval/metrics.json"))
    assert t.results == (Result("accuracy"),)


def test_resource_requests_above_limits() -> None:
    assert problems(one_task("command: c\ncpu: {requests: 2500m, limits: 2}\nmemory: {requests: 1Gi, limits: 1G}")) == [
        "5:21: `cpu.requests` (2500m) is more than `cpu.limits` (2)",
        "6:24: `memory.requests` (1Gi) is more than `memory.limits` (1G)",
    ]


@pytest.mark.parametrize(
    ("timeout", "seconds"),
    [("90", 90.0), ("1.5", 1.5), ("90s", 90.0), ("30m", 1800.0), ("2h", 7200.0), ("1h30m", 5400.0), ("1d", 86400.0),
     ("1d2h3m4s", 93784.0), ("1.5h", 5400.0), ("'600'", 600.0)],
)  # fmt: skip
def test_timeout_forms(timeout: str, seconds: float) -> None:
    assert task(f"command: c\ntimeout: {timeout}").timeout == seconds


@pytest.mark.parametrize("timeout", ["0s", "0", "400d"])
def test_timeout_out_of_range(timeout: str) -> None:
    found = problems(one_task(f"command: c\ntimeout: {timeout}"))
    assert len(found) == 1
    assert found[0].startswith("5:14: `timeout` must be more than 0")


def test_security_context_snake_and_camel_case_normalise_to_snake() -> None:
    camel = task(
        "command: c\nsecurity_context: {runAsUser: 1000, runAsNonRoot: true, readOnlyRootFilesystem: true,"
        " seccompProfile: {type: Localhost, localhostProfile: p.json}, capabilities: {drop: [ALL]}}"
    )
    snake = task(
        "command: c\nsecurity_context: {run_as_user: 1000, run_as_non_root: true, read_only_root_filesystem: true,"
        " seccomp_profile: {type: Localhost, localhost_profile: p.json}, capabilities: {drop: [ALL]}}"
    )
    assert (
        camel.security_context
        == snake.security_context
        == {
            "run_as_user": 1000,
            "run_as_non_root": True,
            "read_only_root_filesystem": True,
            "seccomp_profile": {"type": "Localhost", "localhost_profile": "p.json"},
            "capabilities": {"drop": ["ALL"]},
        }
    )


def test_security_context_with_both_spellings_of_one_key() -> None:
    assert problems(one_task("command: c\nsecurity_context:\n  run_as_user: 1\n  runAsUser: 2")) == [
        "7:7: `runAsUser` and `run_as_user` are the same setting; keep one"
    ]


def test_tolerations_keep_kubernetes_spelling() -> None:
    t = task(
        "command: c\ntolerations:\n  - {key: gpu, operator: Exists, effect: NoSchedule}\n"
        "  - {key: spot, operator: Equal, value: 'true', effect: NoExecute, toleration_seconds: 60}"
    )
    assert t.tolerations == (
        {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "spot", "operator": "Equal", "value": "true", "effect": "NoExecute", "tolerationSeconds": 60},
    )


def test_distributed_and_elastic_fields() -> None:
    t = task(
        "command: c\nresource_type: ElasticJob\nnum_workers: 4\n"
        "elastic: {min_replicas: 2, max_replicas: 8, max_restarts: 3, rdzv_backend: c10d}"
    )
    assert (t.resource_type, t.num_workers) == ("ElasticJob", 4)
    assert t.elastic == {"min_replicas": 2, "max_replicas": 8, "max_restarts": 3, "rdzv_backend": "c10d"}


def test_elastic_min_above_max() -> None:
    assert problems(one_task("command: c\nresource_type: PyTorchJob\nelastic: {min_replicas: 5, max_replicas: 2}")) == [
        "6:29: `elastic.min_replicas` (5) is more than `max_replicas` (2)"
    ]


def test_integers_written_as_floats_are_integers() -> None:
    assert task("command: c\nnum_gpus: 2.0").num_gpus == 2


# --- params -------------------------------------------------------------------------------------------------------


def test_param_shorthand_infers_type_from_the_yaml_value() -> None:
    pipeline = spec(
        """
        params:
          lr: 0.001
          epochs: 10
          fast: yes
          dataset: mnist
          token:
        tasks: [{name: a, image: b, command: c}]
        """
    )
    assert pipeline.params == (
        ParamSpec(name="lr", default="0.001", type="number"),
        ParamSpec(name="epochs", default="10", type="integer"),
        ParamSpec(name="fast", default="true", type="boolean"),
        ParamSpec(name="dataset", default="mnist", type="string"),
        ParamSpec(name="token"),
    )
    assert pipeline.param("token").required
    assert not pipeline.param("lr").required


def test_param_full_form() -> None:
    pipeline = spec(
        """
        params:
          model: {default: small, description: Model size., choices: [small, large]}
          steps: {type: integer, description: Required.}
          ratio: {default: 1, type: number, choices: [0.5, 1, 2]}
          debug: {default: "no", type: boolean}
        tasks: [{name: a, image: b, command: c}]
        """
    )
    assert pipeline.params == (
        ParamSpec(name="model", default="small", description="Model size.", type="string", choices=("small", "large")),
        ParamSpec(name="steps", description="Required.", type="integer"),
        ParamSpec(name="ratio", default="1", type="number", choices=("0.5", "1", "2")),
        ParamSpec(name="debug", default="false", type="boolean"),
    )


def test_param_numbers_in_yaml_1_1_spellings_are_numbers() -> None:
    pipeline = spec(
        """
        params:
          hex: 0x10
          big: 1_000
          sexagesimal: 1:30
          octal: {default: 010, choices: [010, 9]}
          ratio: 1_000.5
          kept: 0.10
        tasks: [{name: a, image: b, command: c}]
        """
    )
    assert [(p.name, p.default, p.type) for p in pipeline.params] == [
        ("hex", "16", "integer"),
        ("big", "1000", "integer"),
        ("sexagesimal", "90", "integer"),
        ("octal", "010", "integer"),
        ("ratio", "1000.5", "number"),
        ("kept", "0.10", "number"),
    ]
    assert pipeline.param("octal").choices == ("010", "9")


def test_param_default_must_match_type_and_choices() -> None:
    assert problems(
        """
        params:
          n: {type: integer, default: 1.5}
          m: {type: integer, choices: [1, two]}
          c: {default: z, choices: [a, b]}
          f: {type: boolean, default: maybe}
        tasks: [{name: a, image: b, command: c}]
        """
    ) == [
        "2:31: default `1.5` is not an integer",
        "3:35: choice `two` is not an integer",
        "4:16: default `z` is not one of the choices: a, b",
        "5:31: default `maybe` is not a boolean (true or false)",
    ]


# --- the frozen spec round-trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "distributed", "legacy"])
def test_fixture_pipelines_are_valid_and_round_trip_through_json(name: str) -> None:
    [(_, result)] = validate_path([DATA / name / "main.yml"])
    assert result.ok, [str(p) for p in result.problems]
    assert result.spec is not None
    frozen = json.loads(json.dumps(result.spec.to_dict()))
    assert PipelineSpec.from_dict(frozen) == result.spec
    assert PipelineSpec.from_dict(frozen).to_dict() == frozen


def test_fixture_distributed_uses_merge_keys_and_every_kind_of_field() -> None:
    [(_, result)] = validate_path([DATA / "distributed" / "main.yml"])
    assert result.spec is not None
    finetune = result.spec.task("finetune")
    assert finetune.image == "nvcr.io/nvidia/pytorch:24.05-py3"  # from the merged defaults
    assert finetune.security_context == {
        "run_as_user": 1000,
        "run_as_non_root": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert finetune.secrets[1] == SecretMount(name="wandb", path="/etc/wandb", mode=0o400)
    assert finetune.timeout == 86400.0
    assert result.spec.param("lr") == ParamSpec(name="lr", default="2.0e-5", type="number")
    assert result.spec.param("steps").required
    assert result.spec.task("elastic-eval").timeout == 12600.0


def test_valid_result_has_spec_and_no_problems() -> None:
    result = load("tasks: [{name: a, image: b, command: c}]\n")
    assert result.ok
    assert result.problems == []
    assert isinstance(result.spec, PipelineSpec)
