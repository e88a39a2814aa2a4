"""substitute(): run-time replacement of ${NAME} and ${params.X}, with the $${...} escape."""

from __future__ import annotations

import pytest

from odin.schema import UnknownVariable, substitute

VARIABLES = {"RUN_PATH": "/runs/42", "TASK_ID": "42--train", "params.lr": "0.1", "EMPTY": ""}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${RUN_PATH}/model", "/runs/42/model"),
        ("--lr=${params.lr}", "--lr=0.1"),
        ("${TASK_ID}${RUN_PATH}", "42--train/runs/42"),
        ("a${EMPTY}b", "ab"),
        ("$${RUN_PATH}", "${RUN_PATH}"),
        ("$${NOT_A_VARIABLE:-default} ${RUN_PATH}", "${NOT_A_VARIABLE:-default} /runs/42"),
        ("$HOME and $$ and $1", "$HOME and $$ and $1"),
        ("${unterminated", "${unterminated"),
        ("", ""),
    ],
)
def test_substitute(text: str, expected: str) -> None:
    assert substitute(text, VARIABLES) == expected


def test_values_are_not_substituted_again() -> None:
    assert substitute("${A}", {"A": "${B}", "B": "no"}) == "${B}"


def test_text_without_variables_is_returned_as_is() -> None:
    text = "python train.py --epochs 3"
    assert substitute(text, {}) is text


def test_unknown_variable_raises_a_key_error_naming_it() -> None:
    with pytest.raises(UnknownVariable) as raised:
        substitute("${RUN_PATH}/${params.missing}", VARIABLES)
    assert raised.value.name == "params.missing"
    assert isinstance(raised.value, KeyError)
    assert str(raised.value) == "unknown variable ${params.missing}"
