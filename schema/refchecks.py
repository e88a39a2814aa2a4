"""What each task may name: the checks behind `${tasks...}`, `^task.key`, `${matrix.X}` and `when:`.

A `Scope` is one task's view of the pipeline: the built-in variables and declared parameters, its own matrix keys,
and the outputs of its ancestors. It is the `known` container the variable scanner tests names against (so a valid
reference costs one lookup and is never even turned into an object), and it explains the names that are not known.
Like the rest of `checks`, it reads the raw document, guarding every access by a type test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from . import conditions
from .located import JsonPath, LocatedDocument, SourceFinder
from .problems import Problem, shorten
from .references import TASKS_PREFIX, Ancestry, OutputName, legacy_references, parse_name
from .suggest import did_you_mean
from .variables import PARAMS_PREFIX

MATRIX_PREFIX = "matrix."
_WORDS = re.compile(r"\S+")
KIND_WORDS = {"results": "result", "artifacts": "artifact"}


def declared_outputs(task: Any) -> dict[str, str]:
    """`{output name: "results" | "artifacts"}` as the raw task declares them (entries of the wrong shape are the
    schema's business and are left out)."""
    found: dict[str, str] = {}
    outputs = task.get("outputs") if isinstance(task, dict) else None
    if not isinstance(outputs, dict):
        return found
    for kind in ("artifacts", "results"):
        entries = outputs.get(kind)
        for entry in entries if isinstance(entries, list) else ():
            name = entry.get("name") if isinstance(entry, dict) else entry
            if isinstance(name, str):
                found.setdefault(name, kind)
    return found


def matrix_keys(task: Any) -> frozenset[str]:
    matrix = task.get("matrix") if isinstance(task, dict) else None
    return frozenset(key for key in matrix if isinstance(key, str)) if isinstance(matrix, dict) else frozenset()


@dataclass
class Pipeline:
    """What every task's scope shares: names, outputs, sweeps and the ancestry of the raw tasks."""

    first_index: Mapping[str, int]
    outputs: Mapping[str, Mapping[str, str]]
    sweeps: frozenset[str]
    ancestry: Ancestry


class Scope:
    """The names task `index` may use in its command, args, env and `when`."""

    def __init__(
        self,
        pipeline: Pipeline,
        index: int,
        name: Any,
        known: frozenset[str],
        declared: frozenset[str],
        keys: frozenset[str],
    ) -> None:
        self.pipeline = pipeline
        self.index = index
        self.name = name if isinstance(name, str) else f"#{index + 1}"
        self.known = known
        self.declared = declared
        self.keys = keys

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        if name in self.known:
            return True
        if name.startswith(MATRIX_PREFIX):
            return name[len(MATRIX_PREFIX) :] in self.keys
        if name.startswith(TASKS_PREFIX):
            parsed = parse_name(name)
            return isinstance(parsed, OutputName) and self.output_problem(parsed) is None
        return False

    def output_problem(self, ref: OutputName, *, shown: str | None = None) -> str | None:
        """Why this task cannot read `ref`, or None when it can."""
        shown = shown or f"`${{{shorten(f'tasks.{ref.task}.{ref.kind}.{ref.output}')}}}`"
        producer = self.pipeline.first_index.get(ref.task)
        if producer is None:
            hint = did_you_mean(ref.task, self.pipeline.first_index)
            return f"{shown}: no task `{shorten(ref.task)}`{hint}"
        if producer == self.index:
            return f"{shown}: a task cannot read its own outputs; use `${{OUTPUT_PATH}}` or `${{RESULTS_PATH}}`"
        if not self.pipeline.ancestry.is_ancestor(producer, self.index):
            return (
                f"{shown}: `{self.name}` does not depend on `{ref.task}`, so `{ref.task}` may not have run yet; add "
                f"`{ref.task}` to `depends` (directly, or through a task that depends on it)"
            )
        outputs = self.pipeline.outputs.get(ref.task, {})
        kind = outputs.get(ref.output)
        if kind == ref.kind:
            return None
        word = KIND_WORDS[ref.kind]
        if kind is not None:
            right = f"${{tasks.{ref.task}.{kind}.{ref.output}}}"
            actual = _a(KIND_WORDS[kind])
            return f"{shown}: `{ref.task}` declares `{ref.output}` as {actual}, not {_a(word)}: write `{right}`"
        same_kind = [name for name, k in outputs.items() if k == ref.kind]
        if not same_kind:
            return f"{shown}: `{ref.task}` declares no {ref.kind} (add it under `outputs.{ref.kind}` of `{ref.task}`)"
        hint = did_you_mean(ref.output, same_kind)
        return f"{shown}: `{ref.task}` declares no {word} `{shorten(ref.output)}`{hint}"

    def explain(self, name: str) -> str:
        """The problem text for a `${name}` that is not in this scope."""
        shown = shorten(name)
        if name.startswith(PARAMS_PREFIX):
            param = name[len(PARAMS_PREFIX) :]
            if not self.declared:
                return f"`${{{shown}}}`: no parameter `{shorten(param)}` is declared (the pipeline has no `params`)"
            hint = did_you_mean(param, self.declared, template="`${{params.{}}}`")
            return f"`${{{shown}}}`: no parameter `{shorten(param)}` is declared{hint}"
        if name.startswith(MATRIX_PREFIX):
            key = name[len(MATRIX_PREFIX) :]
            if not self.keys:
                return f"`${{{shown}}}`: task `{self.name}` has no `matrix`"
            hint = did_you_mean(key, self.keys, template="`${{matrix.{}}}`")
            return f"`${{{shown}}}`: `matrix` has no key `{shorten(key)}`{hint}"
        if name.startswith(TASKS_PREFIX):
            parsed = parse_name(name)
            if isinstance(parsed, str):
                return f"`${{{shown}}}`: {parsed}"
            return self.output_problem(parsed) or f"`${{{shown}}}`"
        hint = did_you_mean(name, self.known, template="`${{{}}}`")  # the built-ins and `params.X` for each X
        return f"unknown variable `${{{shown}}}`{hint}; write `$${{{shown}}}` to pass it through literally"


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def legacy_problems(
    doc: LocatedDocument, file: str, scope: Scope, text: str, path: JsonPath, *, words: bool, limit: int
) -> list[Problem]:
    """Problems with the original Odin's `^task.key` references in one string (a command string is taken word by
    word, as it will be split). At most `limit`."""
    problems: list[Problem] = []
    if "^" not in text:
        return problems
    finder: SourceFinder | None = None
    pipeline = scope.pipeline
    for start, found in _legacy(text, pipeline.first_index, words):
        shown = f"`^{found.task}.{shorten(found.key)}`"
        producer = pipeline.first_index[found.task]
        outputs = pipeline.outputs.get(found.task, {})
        kind = outputs.get(found.key)
        if producer == scope.index or not pipeline.ancestry.is_ancestor(producer, scope.index):
            message = scope.output_problem(OutputName(found.task, kind or "results", found.key), shown=shown)
        elif kind is None:
            hint = did_you_mean(found.key, outputs)
            message = f"{shown}: `{found.task}` declares no output `{shorten(found.key)}`{hint}"
        else:
            continue
        assert message is not None
        if finder is None:
            finder = SourceFinder(doc, path, text)
        needle = "^" if text[start + found.start] == "^" else "{^"
        problems.append(finder.problem(file, needle, start + found.start, message))
        if len(problems) >= limit:
            break
    return problems


def _legacy(text: str, tasks: Mapping[str, int], words: bool) -> Iterator[tuple[int, Any]]:
    if not words:
        for found in legacy_references(text, tasks):
            yield 0, found
        return
    for match in _WORDS.finditer(text):
        word, start = match.group(), match.start()
        if len(word) > 2 and word[0] == word[-1] and word[0] in "'\"":  # a quoted word loses its quotes when split
            word, start = word[1:-1], start + 1
        for found in legacy_references(word, tasks):
            yield start, found


def condition_problems(
    doc: LocatedDocument, file: str, scope: Scope, text: str, path: JsonPath, *, limit: int
) -> list[Problem]:
    """A `when:` that does not parse, or that names what this task cannot read (the first `limit`, then a count)."""
    finder = SourceFinder(doc, path, text)
    try:
        condition = conditions.parse(text)
    except conditions.ConditionError as error:
        needle = error.token or text[error.offset : error.offset + 1]
        return [finder.problem(file, needle, error.offset, f"`when`: {error.message}")]
    problems: list[Problem] = []
    more = 0
    for ref in condition.references:
        if len(problems) >= limit:
            more += ref.name not in scope
            continue
        shown = f"${{{ref.name}}}"
        if ref.name not in scope:
            message = scope.explain(ref.name)
        elif ref.name.startswith(TASKS_PREFIX) and ref.name.split(".")[1] in scope.pipeline.sweeps:
            sweep = ref.name.split(".")[1]
            message = (
                f"`{shorten(shown)}` is a list (`{sweep}` is a `matrix` sweep, one value per member), which "
                "`when` cannot compare; let a task that depends on the sweep pick one and declare it as a result"
            )
        else:
            continue
        problems.append(finder.problem(file, shown if len(shown) < 200 else "${", ref.offset, f"`when`: {message}"))
    if more:
        problems.append(doc.problem(file, path, f"`when`: and {more} more unknown names here"))
    return problems
