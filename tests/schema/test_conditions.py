"""`when:` conditions (issue 11, item 2): parsed and checked at load time, evaluated by the engine, never eval()."""

from __future__ import annotations

import pytest

from odin.schema.conditions import MAX_DEPTH, ConditionError, evaluate, literal, parse

from .helpers import problems, spec

ACC = "tasks.eval.results.accuracy"


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("${a} > 0.9", {"a": 0.95}, True),
        ("${a} > 0.9", {"a": 0.9}, False),
        ("${a} >= 0.9", {"a": 0.9}, True),
        ("${a} <= -1e-3", {"a": -0.01}, True),
        ("${a} == 'adam'", {"a": "adam"}, True),
        ('${a} != "adam"', {"a": "sgd"}, True),
        ("${a} < 'b'", {"a": "a"}, True),
        ("${a} == true", {"a": True}, True),
        ("${a}", {"a": "true"}, True),
        ("not ${a}", {"a": False}, True),
        ("${a} > 1 and ${b} < 1 or ${c}", {"a": 2, "b": 0, "c": False}, True),
        ("${a} > 1 and (${b} < 1 or ${c})", {"a": 0, "b": 0, "c": True}, False),
        ("not not (${a} == 1)", {"a": 1}, True),
        ("${a} == 10", {"a": "10"}, True),  # parameters and variables arrive as strings
        ("${a} > ${b}", {"a": "10", "b": "9"}, True),  # numeric text compares as numbers, not as strings
        ("${a} == 1", {"a": [1]}, False),
        ("${a} or ${missing}", {"a": True}, True),  # `or` stops at the first true operand
    ],
)
def test_evaluation(text: str, values: dict[str, object], expected: bool) -> None:
    assert evaluate(text, values) is expected


@pytest.mark.parametrize(
    ("text", "values", "message"),
    [
        ("${a} > 1", {}, "no value for `${a}`"),
        ("${a} > 1", {"a": "high"}, 'cannot compare `"high"` > `1`: ordering needs two numbers or two strings'),
        ("${a} > 1", {"a": [1, 2]}, "cannot compare `[1, 2]` > `1`"),
        ("${a}", {"a": 1}, "the condition is `1`, not true or false"),
        ("${a} and true", {"a": "yes"}, 'an operand of `and` is `"yes"`, not true or false'),
    ],
)
def test_evaluation_errors_are_condition_errors(text: str, values: dict[str, object], message: str) -> None:
    with pytest.raises(ConditionError) as error:
        evaluate(text, values)
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    ("text", "offset", "message"),
    [
        ("", 0, "the condition is empty"),
        ("accuracy > 1", 0, "unknown word `accuracy`: write a value as `${...}`, a number, a quoted string"),
        ("${a} > 1 > 2", 9, "comparisons do not chain; write `a < b and b < c`"),
        ("${a} && ${b}", 5, "`&&` is not an operator here; write `and`"),
        ("${a} = 1", 5, "`=` is not an operator here; write `==`"),
        ("${a} == True", 8, "`True`: write `true`"),
        ("(${a} == 1", 10, "missing `)`"),
        ("${a} == 1)", 9, "unexpected `)` after a complete condition"),
        ("${a} >", 6, "the condition ends too early: a value is missing"),
        ("${a > 1", 0, "unterminated `${` (no closing `}`)"),
        ("${a} == 'x", 8, "unterminated string (no closing quote)"),
        ("${a} > 1.2.3", 7, "`1.2.3` is not a number"),
        ("${a} ; rm -rf /", 5, "unexpected `;`"),
        ("__import__('os')", 0, "unknown word `__import__`"),
    ],
)  # fmt: skip
def test_parse_errors_point_at_the_culprit(text: str, offset: int, message: str) -> None:
    with pytest.raises(ConditionError) as error:
        parse(text)
    assert (error.value.offset, str(error.value)[: len(message)]) == (offset, message)


def test_nesting_is_capped() -> None:
    assert evaluate("(" * MAX_DEPTH + "true" + ")" * MAX_DEPTH, {})
    with pytest.raises(ConditionError, match="nested more than"):
        parse("(" * (MAX_DEPTH + 1) + "true" + ")" * (MAX_DEPTH + 1))
    with pytest.raises(ConditionError, match="nested more than"):
        parse("not " * (MAX_DEPTH + 1) + "true")


def test_literals_round_trip() -> None:
    for value in ("adam", 'a "quoted" \\ value', 0.1, -3, True, False):
        assert evaluate(f"${{x}} == {literal(value)}", {"x": value})


PIPELINE = """\
params: {threshold: 0.9}
tasks:
  - name: eval
    image: i
    command: c
    outputs: {results: [accuracy]}
  - name: export
    image: i
    command: c
    depends: eval
"""


def test_when_is_kept_and_its_references_recorded() -> None:
    export = spec(PIPELINE + f"    when: ${{{ACC}}} > ${{params.threshold}}\n").task("export")
    assert export.when == f"${{{ACC}}} > ${{params.threshold}}"
    assert [(r.variable, r.where) for r in export.references] == [(ACC, "when")]


def test_when_problems_are_located() -> None:
    assert problems(PIPELINE + f"    when: ${{{ACC}}} >> 0.9\n") == [
        "11:43: `when`: expected a value, not `>`"
    ]  # fmt: skip
    assert problems(PIPELINE + "    when: ${tasks.eval.results.acuracy} > ${params.treshold}\n") == [
        "11:11: `when`: `${tasks.eval.results.acuracy}`: `eval` declares no result `acuracy` "
        "(did you mean `accuracy`?)",
        "11:43: `when`: `${params.treshold}`: no parameter `treshold` is declared "
        "(did you mean `${params.threshold}`?)",
    ]
    assert problems(PIPELINE.replace("depends: eval", "depends: []") + f"    when: ${{{ACC}}} > 1\n")[0].startswith(
        "11:11: `when`: `${tasks.eval.results.accuracy}`: `export` does not depend on `eval`"
    )
    assert problems(PIPELINE + "    when: true\n") == ["11:11: `when` must be a string, not `true`"]
