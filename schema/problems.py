"""A located problem in a pipeline file: what the user sees on the commit, in the log and in `odinctl validate`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

Severity = Literal["error", "warning"]
"""An `error` makes a pipeline invalid (nothing of it runs); a `warning` is shown wherever problems are, and never
fails validation or blocks a run (a deprecated resource type that still works, say)."""

MAX_MESSAGE = 1000
"""Longest problem message kept: messages quote the user's values, which may be long."""


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One thing wrong with a file, pointing at the YAML node (1-based line and column, like compilers print).

    `file` is the path as the user knows it (repository-relative at a commit, or as given on the command line).
    `severity` is `error` unless a check says the file still works as written (see `Severity`).
    """

    file: str
    line: int
    column: int
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.column}: {prefix}{self.message}"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Problem:
        """Also reads what was stored before problems had a severity (all errors then)."""
        severity: Severity = "warning" if data.get("severity") == "warning" else "error"
        return cls(
            file=data["file"],
            line=int(data["line"]),
            column=int(data["column"]),
            message=data["message"],
            severity=severity,
        )


def errors_and_warnings(problems: Iterable[Problem]) -> tuple[list[Problem], list[Problem]]:
    """`problems` split by severity, each list in the order given."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    for problem in problems:
        (errors if problem.is_error else warnings).append(problem)
    return errors, warnings


class PipelineInvalid(Exception):
    """Raised where a caller needs a valid pipeline and got problems instead; carries them all."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems) or "invalid pipeline")


def shorten(text: str, limit: int = 80) -> str:
    """`text` as quoted in a message: cut in the middle past `limit` characters (both ends are what users recognise)."""
    if len(text) <= limit:
        return text
    keep = (limit - 3) // 2
    return f"{text[:keep]}...{text[-keep:]}"


def cap_problems(problems: Iterable[Problem], limit: int, *, incomplete: bool = False) -> list[Problem]:
    """Sorted, without duplicates, at most `limit` of them, then one "and N more problems" where the first left out
    was: a hostile file yields a bounded list for the commit, the log and the API, and still says how bad it is.
    `incomplete`: the checks stopped early, so N is only a lower bound. Messages are cut in the middle to
    `MAX_MESSAGE` characters."""
    unique = sorted(set(problems), key=_order)  # a key of plain tuples: dataclass comparisons are 10x slower
    shown = [_bounded(p) for p in unique[:limit]]
    left_out = len(unique) - len(shown)
    if left_out > 0 or incomplete:
        where = unique[limit] if left_out > 0 else unique[-1]
        noun = "problem" if left_out == 1 else "problems"
        count = f"at least {left_out}" if incomplete else str(left_out)
        message = f"and {count} more {noun}" + (" (checking stopped early)" if incomplete else "")
        shown.append(Problem(where.file, where.line, where.column, message, where.severity))
    return shown


def _order(problem: Problem) -> tuple[str, int, int, str, str]:
    return problem.file, problem.line, problem.column, problem.message, problem.severity


def _bounded(problem: Problem) -> Problem:
    if len(problem.message) <= MAX_MESSAGE:
        return problem
    return replace(problem, message=shorten(problem.message, MAX_MESSAGE))
