"""Small helpers so each test reads as: this YAML gives these problems at these positions."""

from __future__ import annotations

from textwrap import dedent

from odin.schema import PipelineSpec, ValidationResult, load_pipeline


def load(text: str, *, default_name: str = "demo") -> ValidationResult:
    """Validate inline YAML; the text is dedented and its first line (after the opening quotes) is line 1."""
    return load_pipeline(dedent(text).lstrip("\n").encode(), file="main.yml", default_name=default_name)


def problems(text: str, **kwargs: str) -> list[str]:
    """`line:column: message` for each problem, in order."""
    return [f"{p.line}:{p.column}: {p.message}" for p in load(text, **kwargs).problems]


def spec(text: str, **kwargs: str) -> PipelineSpec:
    result = load(text, **kwargs)
    assert result.problems == [], [str(p) for p in result.problems]
    assert result.spec is not None
    return result.spec


def one_task(body: str) -> str:
    """A pipeline with a single task `t` whose extra lines are `body` (already indented by 4)."""
    return "tasks:\n  - name: t\n    image: busybox\n" + dedent(body).strip("\n").replace("\n", "\n    ").join(
        ["    ", "\n"]
    )
