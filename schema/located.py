"""Plain YAML values paired with where each one came from, so any later check can point at the offending node.

The loader builds ordinary dicts, lists and scalars (what jsonschema and the normaliser want) and records, for every
JSON path, the start mark of its node, and for every mapping entry the mark of its key. Marks are kept as an append-only
list and only indexed into a dict when a problem needs locating: a valid file, the common case, never pays for the
index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from .problems import Problem, Severity

JsonPath = tuple[str | int, ...]
"""Keys and list indices from the document root to a value, as jsonschema's `absolute_path` spells them."""


class Mark(Protocol):
    """What Odin uses of PyYAML's `Mark` (0-based, both from libyaml and from the pure-Python parser)."""

    @property
    def line(self) -> int: ...

    @property
    def column(self) -> int: ...


MarkEntry = tuple[JsonPath, Mark | None]
"""A node's path and start mark (PyYAML's stubs allow an event without a mark; such entries locate nothing)."""


class LocatedDocument:
    """A loaded document: `value` plus the positions of its nodes and keys, and the source text for exact columns."""

    __slots__ = (
        "_key_index",
        "_key_list",
        "_lines",
        "_mark_index",
        "_mark_list",
        "_text_index",
        "_texts",
        "aliased_roots",
        "text",
        "value",
    )

    def __init__(
        self,
        value: Any,
        text: str,
        marks: list[MarkEntry],
        key_marks: list[MarkEntry],
        texts: list[tuple[JsonPath, str]] | None = None,
        *,
        aliased_roots: frozenset[str] = frozenset(),
    ) -> None:
        self.value = value
        self.aliased_roots = aliased_roots  # top-level keys holding an anchor that an alias uses (`image: &gpu ...`)
        self.text = text
        self._texts = texts or []
        self._text_index: dict[JsonPath, str] | None = None
        self._mark_list = marks
        self._key_list = key_marks
        self._mark_index: dict[JsonPath, Mark | None] | None = None
        self._key_index: dict[JsonPath, Mark | None] | None = None
        self._lines: list[str] | None = None

    def scalar_text(self, path: Sequence[str | int], value: Any) -> str | None:
        """The source text of the plain scalar at `path` when it resolved to a non-string (`0.10`, `NO`, `010`),
        else None."""
        if not self._texts or isinstance(value, str):
            return None
        if self._text_index is None:
            self._text_index = dict(self._texts)
        return self._text_index.get(tuple(path))

    def position(self, path: Sequence[str | int]) -> tuple[int, int]:
        """1-based (line, column) of the node at `path`, or of its nearest located ancestor."""
        if self._mark_index is None:
            self._mark_index = dict(self._mark_list)
        return _nearest(self._mark_index, tuple(path))

    def key_position(self, path: Sequence[str | int]) -> tuple[int, int]:
        """1-based (line, column) of the mapping KEY whose value is at `path` (falls back to the value's position).

        `additionalProperties` and duplicate-key problems are about the key the user typed, not its value, which may
        be a whole block further down.
        """
        if self._key_index is None:
            self._key_index = dict(self._key_list)
        mark = self._key_index.get(tuple(path))
        if mark is not None:
            return mark.line + 1, mark.column + 1
        return self.position(path)

    def line_text(self, line: int) -> str:
        """Source line `line` (1-based), or "" beyond the end."""
        if self._lines is None:
            self._lines = self.text.splitlines()
        return self._lines[line - 1] if 0 < line <= len(self._lines) else ""

    def problem(
        self, file: str, path: Sequence[str | int], message: str, *, at_key: bool = False, severity: Severity = "error"
    ) -> Problem:
        line, column = self.key_position(path) if at_key else self.position(path)
        return Problem(file, line, column, message, severity)


def _nearest(index: dict[JsonPath, Mark | None], path: JsonPath) -> tuple[int, int]:
    while True:
        mark = index.get(path)
        if mark is not None:
            return mark.line + 1, mark.column + 1
        if not path:
            return 1, 1
        path = path[:-1]


def format_path(path: Sequence[str | int]) -> str:
    """`("tasks", 1, "args", 0)` → `tasks[1].args[0]`: how messages name a place in the document."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def field_label(path: Sequence[str | int]) -> str:
    """How messages name a field: relative to its task (`tasks[1].cpu.requests` → `cpu.requests`), since the
    problem's line already shows which task; otherwise the full path."""
    if len(path) > 2 and path[0] == "tasks" and isinstance(path[1], int):
        return format_path(path[2:])
    return format_path(path) or "the document"


_ESCAPE_WIDTH = 10
"""The most source characters one character of a YAML scalar can take (a `\\U` escape and 8 hex digits): how far past
a scalar's start its first line can still belong to it."""


class SourceFinder:
    """Points problems at the exact `${` on a scalar's first line when the source text shows it there (plain and
    quoted single-line scalars), otherwise at the scalar itself.

    Linear by construction: the search moves forward only, never looks further than the scalar's own text could
    reach in the source, and stops at the first miss (escapes or line breaks make the source differ from the value,
    and then nothing after it can be located reliably anyway)."""

    def __init__(self, doc: LocatedDocument, path: JsonPath, text: str) -> None:
        self.line, self.column = doc.position(path)
        self.source = doc.line_text(self.line)
        self.cursor = self.column - 1  # where the next search starts, in the source line; -1 after a miss
        self.end = self.column - 1 + _ESCAPE_WIDTH * len(text)

    def problem(self, file: str, needle: str, offset: int, message: str) -> Problem:
        """The problem for `needle` found at `offset` in the value (occurrences are asked for in increasing order)."""
        if self.cursor < 0:
            return Problem(file, self.line, self.column, message)
        at = self.source.find(needle, max(self.cursor, self.column - 1 + offset), self.end)
        if at == -1:
            self.cursor = -1
            return Problem(file, self.line, self.column, message)
        self.cursor = at + len(needle)
        return Problem(file, self.line, at + 1, message)
