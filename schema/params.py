"""Pipeline parameters: checking a value against a declaration, and resolving the values a run is created with.

Parameter values travel as strings (they are substituted into command lines and environment variables), so `type`
only constrains what the string may look like; the canonical spelling of booleans is `true`/`false` whatever the user
typed, so a program sees one form.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .model import ParamSpec, PipelineSpec
from .suggest import did_you_mean

PARAM_TYPES: tuple[str, ...] = ("string", "integer", "number", "boolean")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


class ParamError(ValueError):
    """Values given to a run do not fit the pipeline's declared parameters; `params` names the offending ones."""

    def __init__(self, message: str, params: tuple[str, ...]) -> None:
        super().__init__(message)
        self.params = params


def infer_type(value: Any) -> str:
    """The parameter type implied by a YAML default (`10` → integer, `0.1` → number, `true` → boolean)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def coerce(type_: str, value: str) -> str:
    """Check `value` against `type_` and return its canonical string; raises ValueError with a short reason."""
    if type_ == "string":
        return value
    text = value.strip()
    if type_ == "integer":
        if _INTEGER.fullmatch(text) is None:
            raise ValueError(f"`{value}` is not an integer")
        return text
    if type_ == "number":
        try:
            number = float(text)
        except ValueError:
            raise ValueError(f"`{value}` is not a number") from None
        if not math.isfinite(number) or "_" in text:
            raise ValueError(f"`{value}` is not a finite number")
        return text
    if type_ == "boolean":
        folded = text.lower()
        if folded in _TRUE:
            return "true"
        if folded in _FALSE:
            return "false"
        raise ValueError(f"`{value}` is not a boolean (true or false)")
    raise ValueError(f"unknown parameter type `{type_}`")


def in_choices(param: ParamSpec, value: str) -> bool:
    """Whether a coerced value is one of the choices; numbers compare by value (`0.10` is `0.1`)."""
    if not param.choices:
        return True
    if param.type in ("integer", "number"):
        try:
            return float(value) in {float(choice) for choice in param.choices}
        except ValueError:
            return False
    return value in param.choices


def check_value(param: ParamSpec, value: str) -> str:
    """Coerce `value` for `param` and check its choices; raises ValueError naming the parameter."""
    try:
        coerced = coerce(param.type, value)
    except ValueError as error:
        raise ValueError(f"parameter `{param.name}`: {error}") from None
    if not in_choices(param, coerced):
        raise ValueError(f"parameter `{param.name}`: `{value}` is not one of {', '.join(param.choices)}")
    return coerced


def resolve_params(spec: PipelineSpec, given: Mapping[str, str]) -> dict[str, str]:
    """The values of every declared parameter for a run: `given` (from the user), else the defaults.

    Unknown names, missing required parameters and values of the wrong type or outside `choices` raise one
    `ParamError` listing every problem, so the user fixes them in one go.
    """
    declared = {p.name: p for p in spec.params}
    errors: list[str] = []
    bad: list[str] = []
    for name in given:
        if name not in declared:
            hint = did_you_mean(name, declared) if declared else ""
            known = f"; declared: {', '.join(declared)}" if declared and not hint else ""
            none = " (the pipeline declares no parameters)" if not declared else ""
            errors.append(f"unknown parameter `{name}`{hint}{known}{none}")
            bad.append(name)
    values: dict[str, str] = {}
    for name, param in declared.items():
        if name in given:
            try:
                values[name] = check_value(param, str(given[name]))
            except ValueError as error:
                errors.append(str(error))
                bad.append(name)
        elif param.default is not None:
            values[name] = param.default
        else:
            errors.append(f"missing required parameter `{name}`")
            bad.append(name)
    if errors:
        raise ParamError("; ".join(errors), tuple(bad))
    return values


def given_text(value: Any) -> str | None:
    """A parameter value written in YAML (`epochs: 10`, `fast: true`) as a user would type it on a command line;
    None for a value that is not a scalar (a list, a mapping, null)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return None


def check_given(declared: Sequence[ParamSpec], given: Mapping[str, Any]) -> tuple[dict[str, str], list[ParamProblem]]:
    """Values written in a file for a run (a schedule's `params:`) against the pipeline's declared parameters: the
    canonical values, and one problem per bad name (`name` None: the mapping as a whole, for a missing required
    parameter), so each can point at its own line."""
    known = {p.name: p for p in declared}
    values: dict[str, str] = {}
    problems: list[ParamProblem] = []
    for name, raw in given.items():
        param = known.get(name)
        if param is None:
            hint = did_you_mean(name, known) if known else ""
            listed = f"; declared: {', '.join(known)}" if known and not hint else ""
            none = " (the pipeline declares no parameters)" if not known else ""
            problems.append(ParamProblem(name, f"unknown parameter `{name}`{hint}{listed}{none}"))
            continue
        text = given_text(raw)
        if text is None:
            problems.append(ParamProblem(name, f"parameter `{name}` must be a string, a number or a boolean"))
            continue
        try:
            values[name] = check_value(param, text)
        except ValueError as error:
            problems.append(ParamProblem(name, str(error)))
    for name, param in known.items():
        if name not in given and param.default is None:
            problems.append(ParamProblem(None, f"missing required parameter `{name}`"))
    return values, problems


@dataclass(frozen=True, slots=True)
class ParamProblem:
    """What is wrong with one given parameter (`name`), or with the given set (`name` None)."""

    name: str | None
    message: str
