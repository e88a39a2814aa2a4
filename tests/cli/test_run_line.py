"""`odin run`'s short path (cli/run_line.py): which lines it reads itself, which it leaves to typer, and that it knows
exactly the options the typer command declares (a new option added there and not here fails)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer

from odin.cli import run_line
from odin.cli.admin import app
from odin.cli.run_line import RunOptions


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["pipe"], RunOptions(Path("pipe"))),
        (["pipe/main.yml"], RunOptions(Path("pipe/main.yml"))),
        (
            ["-p", "a=1", "pipe", "--param", "b=x=y", "-pc=", "--param=d = 2 "],
            RunOptions(Path("pipe"), {"a": "1", "b": "x=y", "c": "", "d": " 2 "}),
        ),
        (["pipe", "-p", "a=1", "-p", "a=2"], RunOptions(Path("pipe"), {"a": "2"})),  # the later one wins
        (["--parallelism", "3", "pipe"], RunOptions(Path("pipe"), parallelism=3)),
        (["--parallelism=3", "--parallelism", "0", "pipe"], RunOptions(Path("pipe"), parallelism=0)),  # click: last
        (
            ["pipe", "--data-dir", "d", "--log-level", "INFO"],
            RunOptions(Path("pipe"), data_dir=Path("d"), log_level="INFO"),
        ),
        (["--data-dir=d", "--", "-odd-name"], RunOptions(Path("-odd-name"), data_dir=Path("d"))),
    ],
)
def test_parse_reads_well_formed_lines(argv: list[str], expected: RunOptions) -> None:
    assert run_line.parse(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        [],  # no directory: typer's usage error
        ["a", "b"],  # two
        [""],
        ["pipe", "--help"],
        ["pipe", "-h"],
        ["pipe", "--parallel", "2"],  # click has no abbreviations: an unknown option
        ["pipe", "--parallelism"],  # no value
        ["pipe", "--parallelism", "two"],
        ["pipe", "--parallelism", "-1"],
        ["pipe", "--parallelism", "08"],
        ["pipe", "-p", "novalue"],  # parse_params' usage error
        ["pipe", "-p", "=x"],  # a blank key
        ["pipe", "--data-dir", ""],
        ["pipe", "-x"],
        ["pipe", "--param", "-p"],  # click would take "-p" as the value: left to it
    ],
)
def test_parse_leaves_everything_else_to_typer(argv: list[str]) -> None:
    assert run_line.parse(argv) is None


def test_the_short_path_knows_every_option_of_the_typer_command() -> None:
    command = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    options = [p for p in command.params if p.param_type_name == "option"]
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    declared = {spelling for p in options for spelling in (*p.opts, *p.secondary_opts)}
    assert declared == set(run_line.OPTIONS), "teach cli/run_line.py the option (or drop the one it no longer has)"
    assert all(not p.is_flag and p.nargs == 1 and p.envvar is None for p in options), "run_line reads one value each"
    assert [(p.name, p.nargs) for p in arguments] == [("directory", 1)]
    defaults = {p.name: p.default for p in options}
    assert defaults["log_level"] == RunOptions(Path()).log_level
    assert {run_line.OPTIONS[o] for o in declared} == {p.name for p in options}
