"""Problems as text and JSON, shared by `odinctl validate`, the controller's log and the API.

Text is the compiler format (`file:line:col: message`) that editors, CI annotations and pre-commit already understand;
JSON is the same data for machines.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .problems import Problem
from .validate import ValidationResult


def format_problems(problems: Iterable[Problem]) -> str:
    """One `file:line:col: message` per line (no trailing newline); a warning reads `file:line:col: warning: message`,
    as compilers print theirs."""
    return "\n".join(str(problem) for problem in problems)


def problems_to_json(problems: Iterable[Problem]) -> list[dict[str, Any]]:
    """`[{file, line, column, message, severity}, ...]`."""
    return [problem.to_dict() for problem in problems]


def results_to_json(results: Sequence[tuple[Path, ValidationResult]]) -> dict[str, Any]:
    """`{"pipelines": [{"file", "ok", "problems": [...]}]}`, the `odinctl validate -o json` document; `problems` holds
    the errors then the warnings, each with its `severity` (`ok` is true when there are only warnings)."""
    return {
        "pipelines": [
            {"file": str(path), "ok": result.ok, "problems": problems_to_json(result.shown)} for path, result in results
        ]
    }


def summary(results: Sequence[tuple[Path, ValidationResult]]) -> str:
    """`3 pipelines, 2 problems`, and `, 1 warning` when there are warnings."""
    pipelines = len(results)
    problems = sum(len(result.problems) for _, result in results)
    warnings = sum(len(result.warnings) for _, result in results)
    text = f"{_count(pipelines, 'pipeline')}, {_count(problems, 'problem')}"
    return f"{text}, {_count(warnings, 'warning')}" if warnings else text


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
