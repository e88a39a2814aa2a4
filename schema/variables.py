"""`${NAME}` variables in command, args and env: finding them (for validation) and substituting them (at run time).

The syntax is deliberately small: `${NAME}` is one of the built-in run variables, `${params.X}` a declared parameter,
`$${...}` a literal `${...}` (so a shell inside `sh -c` can still see its own `${VAR}`), and anything else, including
plain `$HOME`, passes through untouched for the shell or the program.

Every pass is a single left-to-right scan with `str.find` (linear in the text, whatever it holds). A regex such as
`${[^}]*}` would be quadratic: each unclosed `${` scans to the end of the text before failing, and a committed file
of 50 kB of `${` took seconds. The scanner knows that once no `}` follows, no later `${` can be closed either.
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass

PARAMS_PREFIX = "params."


class UnknownVariable(KeyError):
    """`substitute` met a `${NAME}` it has no value for (validation rejects such files, so this means a bug)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown variable ${{{self.name}}}"


@dataclass(frozen=True, slots=True)
class Reference:
    """One `${...}` in a string: its span, the name inside the braces, and whether it is the `$${...}` escape."""

    start: int
    end: int
    name: str
    escaped: bool

    @property
    def text(self) -> str:
        return f"${{{self.name}}}"


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """Replace `${NAME}` and `${params.X}` (keys `"RUN_PATH"`, `"params.lr"`), turn `$${X}` into `${X}`.

    Raises `UnknownVariable` for a name missing from `variables`.
    """
    if "${" not in text:
        return text
    out: list[str] = []
    copied = 0
    for reference in references(text):
        out.append(text[copied : reference.start])
        if reference.escaped:
            out.append(text[reference.start + 1 : reference.end])
        else:
            try:
                out.append(variables[reference.name])
            except KeyError:
                raise UnknownVariable(reference.name) from None
        copied = reference.end
    out.append(text[copied:])
    return "".join(out)


def references(text: str) -> Iterator[Reference]:
    """Every `${NAME}` and `$${NAME}` in `text`, left to right, without overlaps: a name runs to the first `}` (so
    `${a${b}` names `a${b`), and an unclosed `${` is not a reference. One pass: O(len(text))."""
    for start, end, escaped in _spans(text):
        yield Reference(start, end, text[start + 2 + escaped : end - 1], bool(escaped))


def _spans(text: str) -> Iterator[tuple[int, int, int]]:
    """(start, end, 1 for `$${` else 0) of each reference: `references` without building objects."""
    at = 0
    find = text.find
    while True:
        opening = find("${", at)
        if opening == -1:
            return
        closing = find("}", opening + 2)
        if closing == -1:
            return  # no `}` after this `${`, so none after any later one either
        if opening > at and text[opening - 1] == "$":
            yield opening - 1, closing + 1, 1
        else:
            yield opening, closing + 1, 0
        at = closing + 1


def unknown_references(text: str, known: Container[str], limit: int | None = None) -> tuple[list[Reference], int, bool]:
    """The first `limit` references in `text` whose name is not in `known` (escapes excluded), how many there are in
    all, and whether `text` may hold an unterminated `${` (then `unterminated` says exactly where). Built for the
    validation hot path: one scan, and objects only for what is returned."""
    unknown: list[Reference] = []
    count = 0
    matched = 0
    for start, end, escaped in _spans(text):
        matched += 1
        if escaped:
            continue
        name = text[start + 2 : end - 1]
        if name in known:
            continue
        count += 1
        if limit is None or count <= limit:
            unknown.append(Reference(start, end, name, escaped=False))
    return unknown, count, text.count("${") != matched


def unterminated(text: str) -> list[int]:
    """Offsets of `${` that no `}` closes: almost always a typo, and substitution would leave it as is. A `${` inside
    a reference's name (`${a${b}`) is part of that reference, not unterminated. One pass, merging two sorted lists."""
    found: list[int] = []
    spans = _spans(text)
    span = next(spans, None)
    at = text.find("${")
    while at != -1:
        while span is not None and span[1] <= at:
            span = next(spans, None)
        if span is None or at < span[0]:
            found.append(at)
        at = text.find("${", at + 2)
    return found


def substitute_some(text: str, variables: Mapping[str, str]) -> str:
    """Replace only the `${NAME}`s whose name is in `variables`, leaving every other reference and every `$${...}`
    escape exactly as written: how normalisation fills in a sweep's `${matrix.X}` and leaves the rest to run time."""
    if "${" not in text:
        return text
    out: list[str] = []
    copied = 0
    for start, end, escaped in _spans(text):
        if escaped:
            continue
        name = text[start + 2 : end - 1]
        if name in variables:
            out.append(text[copied:start])
            out.append(variables[name])
            copied = end
    out.append(text[copied:])
    return "".join(out)
