"""`--param key=value` is parsed by one function for both command lines, with the same usage error."""

from __future__ import annotations

import io

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from odin.cli.odinctl import app as odinctl
from odin.cli.params import parse_params


def test_split_at_the_first_equals_sign_and_later_keys_win() -> None:
    console = Console(file=io.StringIO())
    assert parse_params(["lr=0.1", " name =a=b", "empty=", "lr=0.2"], console) == {
        "lr": "0.2",
        "name": "a=b",
        "empty": "",
    }
    assert parse_params(None, console) == {}


@pytest.mark.parametrize("bad", ["oops", "=value", " =x"])
def test_anything_else_is_a_usage_error_that_names_the_parameter(bad: str) -> None:
    out = io.StringIO()
    with pytest.raises(typer.Exit) as exit_:
        parse_params(["ok=1", bad], Console(file=out))
    assert exit_.value.exit_code == 2
    assert repr(bad) in out.getvalue() and "key=value" in out.getvalue()


def test_odinctl_run_refuses_a_malformed_param_before_calling_the_server() -> None:
    result = CliRunner().invoke(odinctl, ["run", "train", "--server", "http://127.0.0.1:9", "-p", "oops"])
    assert result.exit_code == 2
    assert "key=value" in result.output
