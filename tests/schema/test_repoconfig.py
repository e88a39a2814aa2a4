"""`.odin.yml`: the schema, located problems, and what the filters mean."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from odin.schema import PipelineFilters, RepoConfig, load_repo_config, repo_schema
from odin.schema.model import ParamSpec


def test_the_published_schema_is_valid_json_schema() -> None:
    Draft202012Validator.check_schema(repo_schema())


def test_a_full_config_loads() -> None:
    result = load_repo_config(
        b"version: 1\ndefaults:\n  ignore_paths: ['*.md']\npipelines:\n  train:\n    branches: [main, 'release/*']\n"
        b"    paths: [/shared/]\n  nightly: {branches: []}\n"
    )
    assert result.problems == []
    config = result.config
    assert isinstance(config, RepoConfig)
    train = config.filters_for("train")
    assert train == PipelineFilters(branches=("main", "release/*"), paths=("/shared/",), ignore_paths=("*.md",))
    assert config.filters_for("nightly").branches == ()
    assert config.filters_for("other") == PipelineFilters(ignore_paths=("*.md",))


@pytest.mark.parametrize("text", [b"", b"# only a comment\n", b"{}\n", b"pipelines: {}\n"])
def test_an_empty_config_configures_nothing(text: bytes) -> None:
    result = load_repo_config(text)
    assert result.problems == [] and result.config is not None and result.config.is_default


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        (b"version: 2\n", 1, 10, "`version` must be 1"),
        (b"pipelines:\n  train:\n    branchez: [main]\n", 3, 5, "did you mean `branches`"),
        (b"pipelines:\n  /train/: {}\n", 2, 3, "not a pipeline directory"),
        (b"pipelines:\n  train:\n    paths: shared/\n", 3, 12, "must be a list"),
        (b"pipelines:\n  train:\n    paths: [a, a]\n", 3, 12, "same pattern twice"),
        (b"pipelines:\n  train:\n    paths: ['']\n", 3, 13, "must not be empty"),
        (b"defaults:\n  ignore_paths: ['[z-a]']\n", 2, 18, "not a valid pattern"),
        (b"pipelines: [train]\n", 1, 12, "must be a mapping"),
        (b"- a\n", 1, 1, "top level must be a mapping"),
        (b"pipelines:\n  train: {paths: [x]\n", 3, 1, ""),
        (b"a: 1\na: 2\n", 2, 1, "duplicate"),
    ],
)
def test_problems_point_at_the_line_and_column(text: bytes, line: int, column: int, words: str) -> None:
    result = load_repo_config(text)
    assert result.config is None
    assert any((p.line, p.column) == (line, column) and words in p.message for p in result.problems), result.problems
    assert all(p.file == ".odin.yml" for p in result.problems)


def test_patterns_are_gitignore_patterns() -> None:
    f = PipelineFilters(branches=("main", "release/*"), paths=("/shared/", "requirements*.txt"), ignore_paths=("*.md",))
    assert f.runs_on("main") and f.runs_on("release/2.0") and not f.runs_on("dev") and not f.runs_on("mainline")
    assert f.counts("shared/lib/x.py", owned=False) and not f.counts("vendor/shared/x.py", owned=False)
    assert f.counts("requirements-gpu.txt", owned=False) and not f.counts("setup.cfg", owned=False)
    assert f.counts("train/fit.py", owned=True) and not f.counts("train/README.md", owned=True)
    assert not f.counts("shared/README.md", owned=False), "ignore_paths wins over paths"
    assert PipelineFilters(branches=()).runs_on("main") is False


ODIN_SCHEDULES = b"""\
schedules:
  - {pipeline: train, cron: "0 3 * * *", timezone: Europe/Berlin, catchup: latest, params: {epochs: 10}}
  - pipeline: train
    cron: "0 4 * * 0"
    params: {epoch: 100, lr: x}
  - {pipeline: gone, cron: "@daily"}
"""


def test_odin_yml_schedules_are_resolved_against_the_pipeline_with_located_problems() -> None:
    result = load_repo_config(ODIN_SCHEDULES)
    assert result.problems == [] and result.config is not None and result.config.is_default
    nightly, weekly, gone = result.config.schedules
    declared = (ParamSpec("epochs", default="1", type="integer"), ParamSpec("lr", default="0.1", type="number"))
    schedule, problems = nightly.resolve(declared)
    assert problems == [] and schedule is not None
    assert (schedule.timezone, schedule.catchup, schedule.params, schedule.source) == (
        "Europe/Berlin", "latest", (("epochs", "10"),), ".odin.yml",
    )  # fmt: skip
    schedule, problems = weekly.resolve(declared)
    assert schedule is None
    assert [(p.file, p.line, p.column, p.message) for p in problems] == [
        (".odin.yml", 5, 14, "schedule for `train`: unknown parameter `epoch` (did you mean `epochs`?)"),
        (".odin.yml", 5, 30, "schedule for `train`: parameter `lr`: `x` is not a number"),
    ]
    schedule, problems = gone.resolve(None)
    assert schedule is None and [(p.line, p.column) for p in problems] == [(6, 16)]
    assert "no valid pipeline" in problems[0].message


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        (b"schedules:\n  - {pipeline: t, cron: '0 3 * *'}\n", 2, 25, "has five fields"),
        (b"schedules:\n  - {pipeline: t, cron: '@daily', timezone: Mars/Base}\n", 2, 45, "unknown time zone"),
        (b"schedules:\n  - {pipeline: t, cron: '@daily', catchup: some}\n", 2, 44, "must be one of"),
        (b"schedules:\n  - {pipeline: t, crom: '@daily'}\n", 2, 19, "did you mean `cron`"),
    ],
)
def test_a_bad_odin_yml_schedule_is_a_located_problem(text: bytes, line: int, column: int, words: str) -> None:
    problems = load_repo_config(text).problems
    assert any((p.line, p.column) == (line, column) and words in p.message for p in problems), problems
