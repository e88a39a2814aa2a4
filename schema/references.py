"""References from one task to another's outputs: their names, the original Odin's `^task.key` spelling, and the
ancestry test that makes a reference valid.

`${tasks.train.results.accuracy}` and `${tasks.train.artifacts.model}` are ordinary `${...}` variables whose name
has four dot-separated parts. The original Odin wrote `^train.accuracy` for a whole argument and `{^train.accuracy}`
inside one; Odin still reads both, but only when `train` is a task of the pipeline (so an argument such as the regex
`^foo.bar` passes through untouched), and normalisation rewrites them to the `${tasks...}` form, so the engine knows
one spelling.

A task may only read what is finished before it starts: the producer must be an ancestor through `depends`. The
question "is A an ancestor of B" is asked once per reference, and a hostile file can hold tens of thousands; a
search per question would be quadratic, so `Ancestry` answers the common case (a direct dependency) from the edge
list and the rest from bit sets built once in topological order, each freed as soon as nothing needs it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from .variables import references

TASKS_PREFIX = "tasks."
KINDS = ("results", "artifacts")
OUTPUT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
"""An output's name: an identifier (it is also a file name under `${RESULTS_PATH}` and a key in JSON)."""
_LEGACY_WHOLE = re.compile(r"\^([a-z0-9][-a-z0-9]*)\.([A-Za-z_][A-Za-z0-9_]*)")
_LEGACY_INSIDE = re.compile(r"([a-z0-9][-a-z0-9]*)\.([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class OutputName:
    """A parsed `tasks.T.KIND.NAME`."""

    task: str
    kind: str
    output: str


def parse_name(name: str) -> OutputName | str:
    """`tasks.train.results.accuracy` → its parts; or a message saying what is wrong with the name."""
    parts = name.split(".")
    if len(parts) != 4 or not all(parts):
        return "a task output is written `${tasks.TASK.results.NAME}` or `${tasks.TASK.artifacts.NAME}`"
    _, task, kind, output = parts
    if kind not in KINDS:
        return f"`{kind}` is not a kind of output: write `results` or `artifacts`"
    return OutputName(task, kind, output)


@dataclass(frozen=True, slots=True)
class Legacy:
    """One `^task.key` (whole string) or `{^task.key}` (inside a string): its span in the text."""

    start: int
    end: int
    task: str
    key: str


def legacy_references(text: str, tasks: Mapping[str, object] | frozenset[str]) -> list[Legacy]:
    """The original Odin's references in `text`, only those naming a task in `tasks`. One pass: `str.find` for each
    `{^`, and a match anchored there that cannot run past the next `}`-less stretch of name characters."""
    found: list[Legacy] = []
    if "^" not in text:
        return found
    whole = _LEGACY_WHOLE.fullmatch(text)
    if whole is not None:
        if whole.group(1) in tasks:
            found.append(Legacy(0, len(text), whole.group(1), whole.group(2)))
        return found
    at = text.find("{^")
    while at != -1:
        match = _LEGACY_INSIDE.match(text, at + 2)
        if match is not None and match.group(1) in tasks:
            found.append(Legacy(at, match.end(), match.group(1), match.group(2)))
            at = text.find("{^", match.end())
        else:
            at = text.find("{^", at + 2)
    return found


def rewrite_legacy(text: str, found: Sequence[Legacy], kind_of: Mapping[tuple[str, str], str]) -> str:
    """`text` with each legacy reference written as `${tasks.T.KIND.key}`; `kind_of[(task, key)]` says whether the
    task declares `key` as a result or an artifact (validation has made sure it declares it)."""
    out: list[str] = []
    copied = 0
    for ref in found:
        out.append(text[copied : ref.start])
        out.append(f"${{tasks.{ref.task}.{kind_of[(ref.task, ref.key)]}.{ref.key}}}")
        copied = ref.end
    out.append(text[copied:])
    return "".join(out)


class Ancestry:
    """Answers "does task `a` come before task `b` through `depends`" for tasks numbered by their index.

    `edges[b]` lists the tasks `b` depends on directly. Tasks on a cycle (reported elsewhere) have no answer and are
    treated as ancestors of nothing."""

    def __init__(self, edges: Mapping[int, Sequence[int]], askers: Callable[[], Iterable[int]]) -> None:
        """`askers()` lists the tasks that may ask about more than their direct dependencies (only their sets are
        kept); it is called once, and only if such a question comes (most pipelines reference direct dependencies)."""
        self._edges = edges
        self._bits: dict[int, int] | None = None
        self._list_askers = askers
        self._askers: set[int] = set()

    def is_direct(self, a: int, b: int) -> bool:
        return a in self._edges.get(b, ())

    def is_ancestor(self, a: int, b: int) -> bool:
        if self.is_direct(a, b):
            return True
        if self._bits is None:
            self._askers = set(self._list_askers())
            self._bits = self._build()
        return bool(self._bits.get(b, 0) >> a & 1)

    def _build(self) -> dict[int, int]:
        dependents: dict[int, list[int]] = {}
        waiting: dict[int, int] = {}
        for node, targets in self._edges.items():
            waiting[node] = len(targets)
            for target in targets:
                dependents.setdefault(target, []).append(node)
        left = {node: len(dependents.get(node, ())) for node in self._edges}
        bits: dict[int, int] = {}
        ready = [node for node, count in waiting.items() if count == 0]
        kept: dict[int, int] = {}
        while ready:
            node = ready.pop()
            mine = 0
            for target in self._edges[node]:
                mine |= bits[target] | (1 << target)
                left[target] -= 1
                if left[target] == 0 and target not in self._askers:
                    del bits[target]
            bits[node] = mine
            if node in self._askers:
                kept[node] = mine
            for dependent in dependents.get(node, ()):
                waiting[dependent] -= 1
                if waiting[dependent] == 0:
                    ready.append(dependent)
        return kept


def names_in(text: str) -> Iterator[str]:
    """Every `${tasks...}` name in `text` (escapes excluded), in order."""
    if "${tasks." not in text:
        return
    for reference in references(text):
        if not reference.escaped and reference.name.startswith(TASKS_PREFIX):
            yield reference.name
