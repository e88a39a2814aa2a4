"""`main.yml.jinja2`: the original Odin's templated pipelines, rendered safely from the parameters of a run.

The original rendered `main.yml.jinja2` with plain Jinja2 from `odin-run --x:key value`. Here the template comes with
a commit anyone with push access chooses, so rendering is bounded like every other check of user input:

* **Sandboxed**: Jinja2's `SandboxedEnvironment` refuses attributes of Python internals (`__class__`, `mro`, ...),
  and `range` is capped by the sandbox.
* **Bounded operations** (`template_sandbox`): arithmetic, repetition, `~`, formatting and the filters and methods
  that take a size refuse, before computing it, a number over 4,096 bits or a string or list over the size limit of
  a `main.yml`: `7 ** 10 ** 7` or `'x' * 10 ** 10` is a problem at once, not seconds of the GIL or 10 GB.
* **Bounded output**: the template is rendered chunk by chunk (`generate`), and rendering stops as soon as the output
  passes `Limits.max_bytes` (the size limit of a `main.yml`), so a 100 MB template loop costs 1 MiB.
* **Bounded time**: every call, attribute and item lookup and every loop iteration checks a deadline (`seconds`),
  so nested loops stop at it; one operation between two checks is bounded by the above.
* **Never raises**: whatever compiling or rendering raises (a `MemoryError`, a `RecursionError` from a macro that
  calls itself, a bug) is a problem at the template line Jinja2 knows, never an exception out of the caller.
* **Isolated**: this module bounds what it knows of; on the server the controller renders templates in its
  validation workers (`odin.controller.validation.Validator.validate_template`), under the CPU-time budget and the
  memory limit of a worker, so even a construct not foreseen here cannot hold the server's GIL or memory. Called
  directly (offline tools, `workers=0`), it renders in the calling thread with the bounds above only.
* **Strict**: an undefined variable is a problem naming it and the template line (`StrictUndefined`), not an empty
  string that turns into a confusing YAML problem later.

Problems in the rendered text point at its line, in a file named `<template> (rendered)`, and say which template
line produced it (the line of the template statement that wrote that output, read from the generator's frame).
"""

from __future__ import annotations

import time
import traceback
from bisect import bisect_right
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import GeneratorType
from typing import cast

from jinja2 import Template, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError, UndefinedError

from .limits import DEFAULT_LIMITS, Limits, format_size
from .problems import Problem
from .template_sandbox import BoundedEnvironment, OverTime
from .validate import ValidationResult, load_pipeline

TEMPLATE_FILE = "main.yml.jinja2"
"""A pipeline directory holding this file instead of `main.yml` is a templated pipeline."""

RENDER_SECONDS = 2.0
"""Seconds a template may take to render (wall-clock by default; CPU time in a validation worker, where a busy machine
must not fail a good template): real templates take milliseconds."""

_TEMPLATE_NAME = "<template>"


@dataclass(frozen=True, slots=True)
class Rendered:
    """A rendered template: the text, and for each of its lines (0-based index) the template line that wrote it."""

    text: str
    origins: tuple[int, ...]
    variables: frozenset[str]
    """The variables the template reads: the parameters a run may give it."""

    def origin(self, line: int) -> int | None:
        """The template line (1-based) that produced rendered line `line` (1-based), when known."""
        return self.origins[line - 1] if 0 < line <= len(self.origins) and self.origins[line - 1] else None


def render_template(
    source: bytes,
    *,
    file: str,
    params: Mapping[str, str] | None = None,
    limits: Limits | None = None,
    seconds: float = RENDER_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Rendered | None, list[Problem]]:
    """Render `source` with `params` as its variables; never raises for a bad template: problems are values."""
    limits = limits or DEFAULT_LIMITS
    if len(source) > limits.max_bytes:
        message = f"template is {format_size(len(source))}; the limit is {format_size(limits.max_bytes)}"
        return None, [Problem(file, 1, 1, message)]
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, [Problem(file, 1, 1, f"template is not UTF-8 (byte {e.start})")]
    environment = BoundedEnvironment(clock() + seconds, limits.max_bytes, clock)
    try:
        template = environment.from_string(text)
        variables = frozenset(meta.find_undeclared_variables(environment.parse(text)))
    except TemplateSyntaxError as e:
        return None, [Problem(file, e.lineno or 1, 1, f"template syntax error: {e.message}")]
    except RecursionError:
        return None, [Problem(file, 1, 1, "template syntax error: expressions nested too deeply")]
    except Exception as e:  # a compiler failure on hostile input is the template's problem
        return None, [Problem(file, 1, 1, f"template failed to compile: {type(e).__name__}: {e}")]
    chunks: list[str] = []
    origins: list[int] = []
    starts = _line_starts(text)
    size = 0
    # The compiled render function is a generator: its suspended frame says which template line wrote each chunk.
    context = template.new_context(dict(params or {}))
    generator = cast("GeneratorType[str, None, None]", template.root_render_func(context))
    try:
        for chunk in generator:
            frame = generator.gi_frame
            line = template.get_corresponding_lineno(frame.f_lineno) if frame is not None else 0
            size += len(chunk.encode("utf-8"))
            if size > limits.max_bytes:
                limit = format_size(limits.max_bytes)
                message = f"the rendered pipeline passes {limit}, the limit of a main.yml; rendering stopped"
                return None, [Problem(file, line or 1, 1, message)]
            _record_origins(origins, chunk, _literal_line(text, starts, chunk, line))
            chunks.append(chunk)
    except OverTime as e:
        message = f"rendering took longer than {seconds:g} s; stopped"
        return None, [Problem(file, _failing_line(e, template), 1, message)]
    except UndefinedError as e:
        return None, [Problem(file, _failing_line(e, template), 1, f"undefined variable: {e.message}")]
    except SecurityError as e:
        return None, [Problem(file, _failing_line(e, template), 1, f"not allowed in a template: {e}")]
    except MemoryError as e:
        message = "rendering ran out of memory; stopped"
        return None, [Problem(file, _failing_line(e, template), 1, message)]
    except RecursionError as e:
        message = "template failed to render: recursion too deep (a macro that calls itself without end?)"
        return None, [Problem(file, _failing_line(e, template), 1, message)]
    except Exception as e:  # whatever a template raises is a problem on its commit, never a crash
        message = f"template failed to render: {type(e).__name__}: {e}"
        return None, [Problem(file, _failing_line(e, template), 1, message)]
    finally:
        generator.close()
    rendered = "".join(chunks)
    return Rendered(rendered, tuple(origins[: rendered.count("\n") + 1]), variables), []


def _line_starts(text: str) -> list[int]:
    starts = [0]
    at = text.find("\n")
    while at != -1:
        starts.append(at + 1)
        at = text.find("\n", at + 1)
    return starts


def _literal_line(text: str, starts: list[int], chunk: str, line: int) -> int:
    """Where a chunk that spans lines was written: Jinja's debug info maps only expressions and statements, so a
    block of literal YAML after `{% endfor %}` reports the loop's last expression. A multi-line chunk is literal text
    of the template (almost always), found at or after the reported line; anything else keeps the reported line."""
    if "\n" not in chunk or not 0 < line <= len(starts):
        return line
    found = text.find(chunk, starts[line - 1])
    if found == -1:
        return line
    return bisect_right(starts, found)


def _record_origins(origins: list[int], chunk: str, line: int) -> None:
    """`origins[i]` is the template line of the first chunk that wrote text on rendered line i (0: none yet)."""
    if not origins:
        origins.append(0)
    for index, part in enumerate(chunk.split("\n")):
        if index:
            origins.append(0)
        if part and not origins[-1]:
            origins[-1] = line + index


def _failing_line(error: BaseException, template: Template) -> int:
    """The template line where `error` was raised: the deepest frame of the compiled template (named `<template>`),
    its Python line mapped back through the template's debug info."""
    line = 1
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == _TEMPLATE_NAME and frame.lineno:
            line = template.get_corresponding_lineno(frame.lineno)
    return line


def load_template_pipeline(
    source: bytes,
    *,
    file: str,
    default_name: str,
    params: Mapping[str, str] | None = None,
    limits: Limits | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Rendered | None, ValidationResult]:
    """Render `main.yml.jinja2` and validate what it produced; problems in the rendered text name the template line
    that wrote them. `clock` measures the render's deadline."""
    rendered, problems = render_template(source, file=file, params=params, limits=limits, clock=clock)
    if rendered is None:
        return None, ValidationResult(None, problems)
    text = rendered.text.encode("utf-8")
    result = load_pipeline(text, file=f"{file} (rendered)", default_name=default_name, limits=limits)
    return rendered, ValidationResult(
        result.spec,
        [_with_origin(p, rendered, file) for p in result.problems],
        [_with_origin(n, rendered, file) for n in result.notes],
        [_with_origin(w, rendered, file) for w in result.warnings],
    )


def _with_origin(problem: Problem, rendered: Rendered, file: str) -> Problem:
    origin = rendered.origin(problem.line)
    if origin is None:
        return problem
    return Problem(problem.file, problem.line, problem.column, f"{problem.message} (from {file} line {origin})")
