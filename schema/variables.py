"""`${NAME}` variables in command, args and env: finding them (for validation) and substituting them (at run time).

The syntax is deliberately small: `${NAME}` is one of the built-in run variables, `${params.X}` a declared parameter,
`$${...}` a literal `${...}` (so a shell inside `sh -c` can still see its own `${VAR}`), and anything else, including
plain `$HOME`, passes through untouched for the shell or the program. Substitution runs once per task launch, so it is
one precompiled regex pass with a no-`$` fast path.
"""

from __future__ import annotations

import re
from collections.abc import Container, Mapping
from dataclasses import dataclass

_REFERENCE = re.compile(r"\$(\$?)\{([^}]*)\}")
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

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return match.group(0)[1:]
        name = match.group(2)
        try:
            return variables[name]
        except KeyError:
            raise UnknownVariable(name) from None

    return _REFERENCE.sub(replace, text)


def unknown_references(text: str, known: Container[str]) -> tuple[list[Reference], bool]:
    """The references in `text` whose name is not in `known` (escapes excluded), and whether `text` may hold an
    unterminated `${` (then `unterminated` says exactly where). Built for the validation hot path: a string whose
    references are all known costs one regex scan and allocates nothing."""
    unknown: list[Reference] = []
    matched = 0
    for match in _REFERENCE.finditer(text):
        matched += 1
        if match.group(1) or match.group(2) in known:
            continue
        unknown.append(Reference(match.start(), match.end(), match.group(2), escaped=False))
    return unknown, text.count("${") != matched


def unterminated(text: str) -> list[int]:
    """Offsets of `${` that no `}` closes: almost always a typo, and substitution would leave it as is."""
    found: list[int] = []
    covered = [(m.start(), m.end()) for m in _REFERENCE.finditer(text)]
    at = text.find("${")
    while at != -1:
        if not any(start <= at < end for start, end in covered):
            found.append(at)
        at = text.find("${", at + 2)
    return found
