"""Validation is linear in the file and its report is bounded, whatever the file holds (issue 8, item 1).

Each hostile file below is the largest a commit may carry (1 MiB). Before the fix each took from seconds (the
quadratic `${` regex, duplicate keys, did-you-mean hints against thousands of names) to hours (a regex that
backtracked exponentially over a run of spaces, shlex copying a word once per character). They are held to a
deadline that is generous for a linear pass and hopeless for a quadratic one; the pass itself is also checked for
growing linearly where that can be counted exactly (the scanners' `str.find` calls).
"""

from __future__ import annotations

import random
import re
import shlex
import time
from collections.abc import Callable

import pytest

from odin.schema import Limits, load_pipeline, load_repo_config, substitute
from odin.schema.shellwords import split
from odin.schema.variables import references, unknown_references, unterminated

MiB = 1 << 20
HEAD = "name: hostile\nparams:\n  lr: 0.1\ntasks:\n"
TASK = "  - name: a\n    image: x\n"
DEADLINE = 20.0
"""Seconds for one 1 MiB file on a loaded CI machine; each takes well under 1 s on an idle core."""


def fill(prefix: str, unit: str, suffix: str = "\n") -> bytes:
    """HEAD + prefix + as many `unit`s as fit in 1 MiB + suffix."""
    n = (MiB - 100 - len(HEAD) - len(prefix) - len(suffix)) // len(unit)
    return (HEAD + prefix + unit * n + suffix).encode()


HOSTILE: dict[str, bytes] = {
    "unclosed ${": fill(TASK + "    command: ", "${"),
    "near-matches ${a": fill(TASK + "    command: ", "${a "),
    "unknown ${x}": fill(TASK + "    command: ", "${x}"),
    "unknown ${params.x}": fill(TASK + "    command: ", "${params.lx}"),
    "${ in an env value": fill(TASK + "    command: c\n    env:\n      A: ", "${"),
    "escaped ${ on one line": fill(TASK + "    command: c\n    args: [", '"\\x24{a}", ', "]\n"),
    "quoted command": fill(TASK + "    command: \"'", "a ${", "'\"\n"),
    "spaces then a quote": fill(TASK + '    command: "a', " ", "'\"\n"),
    "duplicate keys": fill(TASK + "    command: c\n    env:\n", "      K: v\n", ""),
    "unknown dependencies": fill("", "  - {name: t, image: x, command: c, depends: tx}\n", ""),
    "invalid tasks": fill("", "  - {name: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA}\n", ""),
    "sexagesimal integer": fill(TASK + "    command: c\n    retries: 1", ":1"),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_mebibyte_is_rejected_quickly_with_a_bounded_report(name: str) -> None:
    data = HOSTILE[name]
    assert MiB - 200 < len(data) <= MiB
    started = time.perf_counter()
    result = load_pipeline(data, file="main.yml", default_name="hostile")
    elapsed = time.perf_counter() - started
    assert not result.ok
    assert 1 <= len(result.problems) <= Limits().max_problems + 1
    assert all(len(problem.message) <= 1000 for problem in result.problems)
    assert elapsed < DEADLINE, f"{name}: {elapsed:.1f} s"


def test_problems_are_capped_with_a_count_of_the_rest() -> None:
    tasks = "".join(f"  - {{name: t{i}, image: x, command: c, depends: missing{i}}}\n" for i in range(250))
    result = load_pipeline(f"tasks:\n{tasks}".encode(), file="main.yml", default_name="p")
    assert len(result.problems) == 101
    assert [p.line for p in result.problems[:100]] == list(range(2, 102))
    last = result.problems[-1]
    assert (last.line, last.message) == (102, "and 150 more problems")


def test_the_cap_is_a_limit() -> None:
    tasks = "".join(f"  - {{name: t{i}, image: x, command: c, depends: missing{i}}}\n" for i in range(12))
    result = load_pipeline(f"tasks:\n{tasks}".encode(), file="m", default_name="p", limits=Limits(max_problems=10))
    assert [p.message for p in result.problems[10:]] == ["and 2 more problems"]


def test_one_value_reports_a_few_variable_problems_then_counts_the_rest() -> None:
    result = load_pipeline(
        (HEAD + TASK + "    command: " + "${nope} " * 500 + "${" * 300 + "\n").encode(), file="m", default_name="p"
    )
    messages = [p.message for p in result.problems]
    assert "and 480 more unknown variables here" in messages
    assert "and 280 more unterminated `${` here" in messages
    assert sum(m.startswith("unknown variable `${nope}`") for m in messages) == 20


def test_a_long_value_is_shortened_in_messages() -> None:
    name = "x" * 5000
    result = load_pipeline((HEAD + TASK + f"    command: ${{{name}}}\n").encode(), file="m", default_name="p")
    [problem] = result.problems
    assert len(problem.message) < 300
    assert problem.message.startswith("unknown variable `${xxxx") and "..." in problem.message


def test_an_integer_too_long_to_read_is_a_problem_not_a_crash() -> None:
    result = load_pipeline(
        (HEAD + TASK + "    command: c\n    retries: " + "1" * 5000 + "\n").encode(), file="m", default_name="p"
    )
    [problem] = result.problems
    assert problem.message.startswith("`retries` must be an integer, not a string (`1111")


def test_aliases_cannot_multiply_long_strings() -> None:
    text = 'x-a: &a "' + "${b}" * 5000 + '"\ntasks:\n' + TASK + "    command: c\n    args: [" + "*a, " * 300 + "]\n"
    result = load_pipeline(text.encode(), file="main.yml", default_name="p")
    [problem] = result.problems
    assert problem.message.startswith("alias expansion exceeds 4,194,304 characters of text")


def test_duplicate_keys_point_at_the_first_one() -> None:
    result = load_pipeline(b"name: a\nname: b\nname: c\ntasks: []\n", file="m", default_name="p")
    assert [(p.line, p.message.split(":")[0]) for p in result.problems[:2]] == [
        (2, "duplicate key `name` (first at line 1)"),
        (3, "duplicate key `name` (first at line 1)"),
    ]


# --- the scanners, exactly -----------------------------------------------------------------------------------------

_OLD_REFERENCE = re.compile(r"\$(\$?)\{([^}]*)\}")
"""The former (quadratic) pattern: the scanner must find exactly what it found."""


def _random_texts(alphabet: str, count: int, longest: int) -> list[str]:
    rng = random.Random(8)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest))) for _ in range(count)]


def test_the_scanner_finds_what_the_former_regex_found() -> None:
    for text in _random_texts("${}$a.", 20_000, 14):
        expected = [(m.start(), m.end(), m.group(2), bool(m.group(1))) for m in _OLD_REFERENCE.finditer(text)]
        assert [(r.start, r.end, r.name, r.escaped) for r in references(text)] == expected, text
        expected_sub = _OLD_REFERENCE.sub(lambda m: m.group(0)[1:] if m.group(1) else "<" + m.group(2) + ">", text)
        names = {r.name: f"<{r.name}>" for r in references(text)}
        assert substitute(text, names) == expected_sub, text
        covered = [(m.start(), m.end()) for m in _OLD_REFERENCE.finditer(text)]
        opens = [m.start() for m in re.finditer(r"\$\{", text)]
        assert unterminated(text) == [at for at in opens if not any(s <= at < e for s, e in covered)], text


def test_the_splitter_answers_as_shlex_does() -> None:
    for text in _random_texts("ab \t\n\"'\\\f$", 20_000, 12):
        try:
            expected: object = shlex.split(text)
        except ValueError as error:
            expected = str(error)
        try:
            got: object = split(text)
        except ValueError as error:
            got = str(error)
        assert got == expected, repr(text)


class _CountingStr(str):
    """A str that counts the scanners' `find` calls: the work, counted exactly rather than timed."""

    calls = 0

    def find(self, *args: object) -> int:  # type: ignore[override]
        _CountingStr.calls += 1
        return super().find(*args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "scan",
    [
        lambda text: list(references(text)),
        lambda text: unknown_references(text, frozenset(), 20),
        unterminated,
    ],
)
def test_scanning_work_grows_linearly(scan: Callable[[str], object]) -> None:
    def work(n: int) -> int:
        _CountingStr.calls = 0
        scan(_CountingStr("${" * n + "${a} $${b} ${" * n))
        return _CountingStr.calls

    assert work(2000) <= 2 * work(1000) + 4


def test_past_a_thousand_variable_problems_the_rest_are_counted() -> None:
    args = ", ".join(["'${x}'"] * 1500)
    text = HEAD + TASK + f"    command: c\n    args: [{args}]\n"
    result = load_pipeline(text.encode(), file="m", default_name="p", limits=Limits(max_problems=5000))
    messages = [p.message for p in result.problems]
    assert sum(m.startswith("unknown variable `${x}`") for m in messages) == 1000
    assert "and 500 more problems with variables" in messages


def test_a_repository_config_reports_a_bounded_list_with_bounded_hints() -> None:
    text = "defaults:\n" + "".join(f"  brnches{i}: [main]\n" for i in range(3000))
    started = time.perf_counter()
    result = load_repo_config(text.encode())
    assert time.perf_counter() - started < DEADLINE
    assert result.config is None and len(result.problems) == 101
    assert result.problems[-1].message == "and 2900 more problems"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("key", ["paths", "ignore_paths", "branches"])
def test_filter_patterns_match_in_linear_time_whatever_the_pattern(key: str) -> None:
    """`.odin.yml` patterns run in the sync's thread against every changed path and the branch name: Python's
    backtracking `re` took 14 s for `a*a*a*a*b` on a 400-character path (and grows as the path to the power of the
    stars); they are matched with RE2 instead."""
    hostile = "a*" * 12 + "b"
    config = load_repo_config(f"defaults:\n  {key}: ['{hostile}']\n".encode())
    assert config.problems == [] and config.config is not None
    filters = config.config.filters_for("p")
    name = "a" * 4096  # git's own path limit
    started = time.perf_counter()
    for _ in range(10):
        assert filters.runs_on(name) is (key != "branches")
        assert filters.counts(name, owned=True) is True
        assert filters.counts(name, owned=False) is False
    assert time.perf_counter() - started < DEADLINE
