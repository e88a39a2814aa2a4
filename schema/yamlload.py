"""Safe, bounded, located YAML loading: `main.yml` bytes → plain Python values with the position of every node.

Why not `yaml.safe_load`? It loses positions (problems must point at a line and column), silently keeps the last of two
duplicate keys, and expands aliases without bound (a "billion laughs" file of a few hundred bytes takes the process
down). Why not compose a node graph with `get_single_node()` and walk it? libyaml's composer recurses in C once per
nesting level, and a 1 MiB file of `[` crashes the interpreter with a segmentation fault before any Python-level check
can run; it also resolves every scalar's tag through Python regexes, which costs more than the parse itself.

So this module drives the parser's event stream directly (libyaml's `CSafeLoader` when available, the pure-Python
`SafeLoader` otherwise; the parser is a state machine with a heap stack, safe at any depth) and builds values itself:
depth is checked before descending, every node (including each re-use of an anchor) counts against a budget, merge
keys (`<<`) are applied with YAML's precedence rules, and keys are compared as they are read. Scalars are resolved
with PyYAML's own YAML 1.1 rules (so `yes` is a boolean and `010` is 8, as with `safe_load`), except that timestamps
and `.nan`/`.inf` stay strings, since a pipeline is JSON-shaped data. The source text of every plain scalar that
resolved to something other than a string is kept too, so string-valued fields can use exactly what the user wrote.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

from .limits import DEFAULT_LIMITS, Limits, size_message
from .located import JsonPath, LocatedDocument, Mark, MarkEntry
from .problems import Problem, shorten

_Loader: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
"""libyaml's parser when PyYAML was built with it (several times faster), else the pure-Python one."""

_TAG = "tag:yaml.org,2002:"
_STR, _NULL, _BOOL, _INT, _FLOAT = _TAG + "str", _TAG + "null", _TAG + "bool", _TAG + "int", _TAG + "float"
_AS_TEXT = frozenset({_TAG + "timestamp", _TAG + "merge", _TAG + "value"})
_COLLECTION_TAGS = frozenset({None, "!", _TAG + "map", _TAG + "seq"})
_IMPLICIT = Resolver.yaml_implicit_resolvers
_CONSTRUCTOR = SafeConstructor()
_BOOL_VALUES: dict[str, bool] = SafeConstructor.bool_values
_MAX_INT_TEXT = 4300
"""Python's own limit on the digits of an int read from text; PyYAML builds a sexagesimal one (`1:30:00`) by repeated
multiplication, quadratic in its length, so longer texts are refused before that."""


class _Abort(Exception):
    """Stops building at the first problem that makes the rest of the file meaningless (or dangerous) to read."""

    def __init__(self, mark: Mark | None, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


class _BadScalar(Exception):
    """An explicitly tagged scalar that cannot be constructed (`!!int abc`) or an unsupported tag (`!!binary`)."""


_Span = tuple[int, int, int]
"""Lengths of the builder's (marks, key_marks, texts) lists: where a subtree's entries start or end."""


class _Anchor:
    __slots__ = ("chars", "end", "path", "start", "value")

    def __init__(self, value: Any, path: JsonPath, start: _Span, end: _Span, chars: int) -> None:
        self.value = value
        self.path = path
        self.start = start
        self.end = end
        self.chars = chars  # characters of keys and scalars inside: what each use of an alias adds


def load_yaml(data: bytes, *, file: str, limits: Limits | None = None) -> tuple[LocatedDocument | None, list[Problem]]:
    """Parse one YAML document. Returns the document (None when it could not be read at all) and the problems found;
    duplicate keys are reported without discarding the document, so schema checks can still run on it."""
    limits = limits or DEFAULT_LIMITS
    if len(data) > limits.max_bytes:
        return None, [Problem(file, 1, 1, size_message(len(data), limits))]
    text, problem = _decode(data, file)
    if problem is not None:
        return None, [problem]
    loader = _Loader(text)
    builder = _Builder(loader.get_event, limits)
    try:
        value = builder.document()
    except _Abort as abort:
        return None, [_at_mark(file, abort.mark, abort.message)]
    except yaml.MarkedYAMLError as error:
        return None, [_nesting_problem(file, text, error, limits) or _syntax_problem(file, error)]
    except yaml.YAMLError as error:  # ReaderError (control characters) carries a position, not a mark
        return None, [_reader_problem(file, text, error)]
    finally:
        loader.dispose()
    problems = [_at_mark(file, mark, message) for mark, message in builder.problems]
    document = LocatedDocument(
        value, text, builder.marks, builder.key_marks, builder.texts, aliased_roots=frozenset(builder.aliased_roots)
    )
    return document, problems


class _Builder:
    """Builds values from parser events. One instance per document; not reusable.

    Three append-only lists record, by JSON path: each node's start mark, each mapping key's mark, and the source text
    of plain scalars that resolved to non-strings. An anchor remembers its span in them; each use of its alias copies
    that span under the alias's path (so the copies count against the node budget, which is what stops an alias bomb).
    """

    def __init__(self, next_event: Callable[[], Any], limits: Limits) -> None:
        self._next = next_event
        self._max_nodes = limits.max_nodes
        self._max_depth = limits.max_depth
        self._max_text = limits.max_text
        self._chars = 0  # characters of keys and scalar values so far, aliases expanded
        self._anchors: dict[str, _Anchor] = {}
        self._open_anchors: set[str] = set()
        self._expanded_alias = False
        self.marks: list[MarkEntry] = []
        self.key_marks: list[MarkEntry] = []
        self.texts: list[tuple[JsonPath, str]] = []
        self.problems: list[tuple[Mark | None, str]] = []
        self.aliased_roots: set[str] = set()  # top-level keys holding an anchor that some alias uses

    def document(self) -> Any:
        next_event = self._next
        next_event()  # StreamStartEvent
        event = next_event()
        if isinstance(event, StreamEndEvent):
            raise _Abort(None, "file is empty; expected a mapping with `tasks:`")
        event = next_event()  # the document's root node (DocumentStartEvent came first)
        value = self._node(event, (), 0)
        next_event()  # DocumentEndEvent
        event = next_event()
        if isinstance(event, DocumentStartEvent):
            raise _Abort(event.start_mark, "more than one YAML document (`---`); main.yml must hold exactly one")
        return value

    def _span(self) -> _Span:
        return len(self.marks), len(self.key_marks), len(self.texts)

    def _node(self, event: Any, path: JsonPath, depth: int) -> Any:
        kind = type(event)
        if kind is ScalarEvent:
            start = self._span()
            self.marks.append((path, event.start_mark))
            self._chars += len(event.value)
            try:
                tag = event.tag
                value = self._untagged(event, path) if tag is None or tag == "!" else _typed(tag, event.value)
            except _BadScalar as bad:
                self.problems.append((event.start_mark, str(bad)))
                value = event.value
            anchor: str | None = event.anchor
            if anchor is not None:
                self._anchors[anchor] = _Anchor(value, path, start, self._span(), len(event.value))
            return value
        if kind is MappingStartEvent:
            return self._collection(event, path, depth, self._mapping_items)
        if kind is SequenceStartEvent:
            return self._collection(event, path, depth, self._sequence_items)
        if kind is AliasEvent:
            return self._alias(event, path)
        raise AssertionError(f"unexpected YAML event {event!r}")

    def _collection(self, event: Any, path: JsonPath, depth: int, build_items: Callable[[JsonPath, int], Any]) -> Any:
        if depth >= self._max_depth:
            raise _Abort(event.start_mark, f"nesting is deeper than {self._max_depth} levels")
        tag = event.tag
        if tag not in _COLLECTION_TAGS:
            raise _Abort(event.start_mark, f"unsupported YAML tag `{tag}`")
        anchor: str | None = event.anchor
        start = self._span()
        chars = self._chars
        self.marks.append((path, event.start_mark))
        if anchor is not None:
            self._open_anchors.add(anchor)
        value = build_items(path, depth + 1)
        if len(self.marks) > self._max_nodes:
            raise _Abort(event.start_mark, self._too_many_nodes())
        if anchor is not None:
            self._open_anchors.discard(anchor)
            self._anchors[anchor] = _Anchor(value, path, start, self._span(), self._chars - chars)
        return value

    def _untagged(self, event: Any, path: JsonPath) -> Any:
        """Resolve an untagged scalar; for a plain one that is not a string (`10`, `0.10`, `no`), remember its text:
        fields that end up as strings (args, env) use what the user wrote, not Python's spelling of the value."""
        text: str = event.value
        if not event.implicit[0]:  # quoted, block, or `!`-tagged: a string
            return text
        value = _resolve_plain(text)
        if value is not text:
            self.texts.append((path, text))
        return value

    def _sequence_items(self, path: JsonPath, depth: int) -> list[Any]:
        items: list[Any] = []
        next_event = self._next
        marks = self.marks
        event = next_event()
        while type(event) is not SequenceEndEvent:
            item_path = (*path, len(items))
            if event.__class__ is ScalarEvent and event.tag is None and event.anchor is None:  # the common case, inline
                marks.append((item_path, event.start_mark))
                self._chars += len(event.value)
                items.append(self._untagged(event, item_path))
            else:
                items.append(self._node(event, item_path, depth))
            event = next_event()
        return items

    def _mapping_items(self, path: JsonPath, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_marks: dict[str, Mark | None] = {}  # where each key was first written, for duplicate-key problems
        merges: list[tuple[Any, Mark | None, JsonPath, _Span, _Span]] = []
        next_event = self._next
        key_event = next_event()
        while type(key_event) is not MappingEndEvent:
            if key_event.__class__ is not ScalarEvent:
                raise _Abort(key_event.start_mark, "mapping keys must be plain strings, not collections or aliases")
            key: str = key_event.value
            # Keys are their text: `on:` or `1:` name an env var or a parameter, not a boolean or an integer.
            if key == "<<" and key_event.implicit[0]:
                if merges:
                    self.problems.append((key_event.start_mark, "duplicate merge key `<<`; list the mappings instead"))
                merge_path = (*path, "<<")
                start = self._span()
                value_event = next_event()
                source = self._node(value_event, merge_path, depth)
                merges.append((source, value_event.start_mark, merge_path, start, self._span()))
                key_event = next_event()
                continue
            value_path = (*path, key)
            if key in first_marks:
                self.problems.append((key_event.start_mark, _duplicate_message(key, first_marks[key])))
            else:
                first_marks[key] = key_event.start_mark
            self.key_marks.append((value_path, key_event.start_mark))
            self._chars += len(key)
            event = next_event()
            if event.__class__ is ScalarEvent and event.tag is None and event.anchor is None:  # the common case, inline
                self.marks.append((value_path, event.start_mark))
                self._chars += len(event.value)
                result[key] = self._untagged(event, value_path)
            else:
                result[key] = self._node(event, value_path, depth)
            key_event = next_event()
        for source, mark, merge_path, start, end in merges:
            self._merge(result, path, source, mark, merge_path, start, end)
        return result

    def _merge(
        self,
        result: dict[str, Any],
        path: JsonPath,
        source: Any,
        mark: Mark | None,
        merge_path: JsonPath,
        start: _Span,
        end: _Span,
    ) -> None:
        """Apply `<<: *a` or `<<: [*a, *b]`: keys written in the mapping win, then earlier sources over later ones
        (YAML's merge-key rules, as PyYAML's `flatten_mapping` applies them). Positions of merged values are copied
        from where they were written, so problems inside them point at the anchored text."""
        if isinstance(source, dict):
            sources: list[tuple[dict[str, Any], JsonPath]] = [(source, merge_path)]
        elif isinstance(source, list) and all(isinstance(item, dict) for item in source):
            sources = [(item, (*merge_path, i)) for i, item in enumerate(source)]
        else:
            self.problems.append((mark, "a merge key `<<` takes a mapping or a list of mappings"))
            return
        for mapping, base in sources:
            taken = {key for key in mapping if key not in result}
            for key in mapping:
                if key in taken:
                    result[key] = mapping[key]
            if taken:
                self._graft(base, start, end, path, taken)
        if len(self.marks) > self._max_nodes:
            raise _Abort(mark, self._too_many_nodes())

    def _alias(self, event: Any, path: JsonPath) -> Any:
        name: str = event.anchor
        anchor = self._anchors.get(name)
        if anchor is None:
            if name in self._open_anchors:
                raise _Abort(event.start_mark, f"alias `*{name}` is inside its own anchor (a recursive structure)")
            raise _Abort(event.start_mark, f"alias `*{name}` refers to no anchor `&{name}` defined before it")
        self._expanded_alias = True
        if anchor.path and isinstance(anchor.path[0], str):
            self.aliased_roots.add(anchor.path[0])
        if len(self.marks) + anchor.end[0] - anchor.start[0] > self._max_nodes:
            raise _Abort(event.start_mark, self._too_many_nodes())
        self._chars += anchor.chars
        if self._chars > self._max_text:
            raise _Abort(
                event.start_mark,
                f"alias expansion exceeds {self._max_text:,} characters of text: each use of `*{name}` repeats "
                "everything its anchor holds",
            )
        # The alias's own position is where the user wrote `*name`; nodes inside point into the anchored text.
        self.marks.append((path, event.start_mark))
        self._graft(anchor.path, anchor.start, anchor.end, path, None)
        return anchor.value

    def _graft(self, base: JsonPath, start: _Span, end: _Span, to: JsonPath, keys: set[str] | None) -> None:
        """Copy the entries recorded under `base` within a span to the same relative paths under `to`: all of them
        for an alias (but the root's mark, which the alias replaces), only those under `keys` for a merge."""
        cut = len(base)
        lists: tuple[list[Any], ...] = (self.marks, self.key_marks, self.texts)
        for index, entries in enumerate(lists):
            copied = []
            for entry_path, item in entries[start[index] : end[index]]:
                if len(entry_path) > cut:
                    if (keys is not None and entry_path[cut] not in keys) or entry_path[:cut] != base:
                        continue
                elif keys is not None or index != 2 or entry_path != base:
                    continue  # a root entry: only a scalar anchor's text carries over (to its alias)
                copied.append(((*to, *entry_path[cut:]), item))
            entries.extend(copied)

    def _too_many_nodes(self) -> str:
        if self._expanded_alias:
            return (
                f"alias expansion exceeds {self._max_nodes:,} nodes: anchors (`&a`) and aliases (`*a`) multiply "
                'the document (a "billion laughs" file?)'
            )
        return f"document has more than {self._max_nodes:,} nodes"


def _duplicate_message(key: str, first: Mark | None) -> str:
    where = f" (first at line {first.line + 1})" if first is not None else ""
    return f"duplicate key `{shorten(key)}`{where}: YAML would silently keep only the last one"


def _resolve_plain(value: str) -> Any:
    """An untagged plain scalar: null, bool, int or float by PyYAML's implicit resolvers, else the string itself (also
    for an integer too long to read)."""
    resolvers = _IMPLICIT.get(value[:1])
    if resolvers:
        for resolved, regexp in resolvers:
            if regexp.match(value):
                try:
                    return _typed(resolved, value)
                except _BadScalar:  # an integer too long to read: the schema says what it expected instead
                    return value
    return value


def _typed(tag: str, value: str) -> Any:
    if tag == _STR or tag in _AS_TEXT:
        return value
    if tag == _NULL:
        return None
    try:
        if tag == _BOOL:
            return _BOOL_VALUES[value.lower()]
        if tag == _INT:
            if len(value) > _MAX_INT_TEXT:
                raise _BadScalar(f"`{shorten(value)}` is too long for an integer ({len(value):,} characters)")
            return _CONSTRUCTOR.construct_yaml_int(ScalarNode(tag, value))
        if tag == _FLOAT:
            number = _CONSTRUCTOR.construct_yaml_float(ScalarNode(tag, value))
            # JSON has no NaN or infinity, and jsonschema's range checks let NaN through: keep `.nan`/`.inf` as text.
            return number if math.isfinite(number) else value
    except (KeyError, ValueError):
        raise _BadScalar(f"`{shorten(value)}` is not a valid `!!{tag.removeprefix(_TAG)}`") from None
    raise _BadScalar(f"unsupported YAML tag `{tag}`")


def _decode(data: bytes, file: str) -> tuple[str, Problem | None]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        offset = error.start
        line = data.count(b"\n", 0, offset) + 1
        line_start = data.rfind(b"\n", 0, offset) + 1
        column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
        byte = data[offset]
        return "", Problem(file, line, column, f"not valid UTF-8 (byte 0x{byte:02x} at offset {offset})")
    return text.removeprefix("\ufeff"), None


def _at_mark(file: str, mark: Mark | None, message: str) -> Problem:
    if mark is None:
        return Problem(file, 1, 1, message)
    return Problem(file, mark.line + 1, mark.column + 1, message)


_PARSER_NESTING_LIMIT = "exceeded maximum nesting depth"
"""libyaml >= 0.2.6 (bundled by PyYAML 6.0.4) stops at 1000 flow levels while its scanner reads ahead, i.e. before
the builder has seen the events that would reach Odin's own, smaller limit."""


def _nesting_problem(file: str, text: str, error: yaml.MarkedYAMLError, limits: Limits) -> Problem | None:
    """Report the parser's own nesting limit as Odin's: the text before the point where the parser gave up is read
    again (linear, and it cannot reach the parser's limit any more), so the builder stops at `limits.max_depth` and the
    problem points where Odin's limit was crossed, whatever PyYAML version is installed."""
    mark = error.problem_mark
    if mark is None or _PARSER_NESTING_LIMIT not in (error.problem or ""):
        return None
    loader = _Loader(text[: mark.index])
    try:
        _Builder(loader.get_event, limits).document()
    except _Abort as abort:
        return _at_mark(file, abort.mark, abort.message)
    except yaml.YAMLError:
        pass  # the prefix ends mid-document: expected, since it is cut where the parser stopped
    finally:
        loader.dispose()
    return _at_mark(file, mark, f"nesting is deeper than the YAML parser's limit of {mark.column} levels")


def _syntax_problem(file: str, error: yaml.MarkedYAMLError) -> Problem:
    mark = error.problem_mark or error.context_mark
    problem = error.problem or "invalid YAML"
    message = f"YAML syntax error: {problem}"
    if error.context and error.context_mark is not None and error.context_mark is not mark:
        message += f" ({error.context} at line {error.context_mark.line + 1}, column {error.context_mark.column + 1})"
    elif error.context:
        message += f" ({error.context})"
    return _at_mark(file, mark, message)


def _reader_problem(file: str, text: str, error: yaml.YAMLError) -> Problem:
    position = getattr(error, "position", None)
    if isinstance(position, int) and 0 <= position <= len(text):
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
    else:
        line, column = 1, 1
    character = getattr(error, "character", None)
    if isinstance(character, str) and len(character) == 1:
        detail = f"character U+{ord(character):04X} is not allowed in YAML"
    elif isinstance(character, int):
        detail = f"character U+{character:04X} is not allowed in YAML"
    else:
        detail = str(error)
    return Problem(file, line, column, detail)
