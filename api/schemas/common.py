"""Shapes shared by every domain: the error body and a located problem."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every 4xx/5xx answer: the HTTP status again, a message for a person, and details for a program."""

    status_code: int
    detail: str
    extra: dict[str, Any] | list[Any] | None = None


class ProblemOut(msgspec.Struct, kw_only=True):
    """One thing wrong with a pipeline file, located like a compiler error (1-based line and column).

    `severity`: an `error` makes the pipeline invalid; a `warning` (a deprecated resource type, say) never does."""

    file: str
    line: int
    column: int
    message: str
    severity: Literal["error", "warning"] = "error"


class Health(msgspec.Struct, kw_only=True):
    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)
