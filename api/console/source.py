"""What a commit's pages show from git itself: the lines a validation problem points at, and the files it changed.

Everything is read through the controller's facade from the commit's own tree (never a working tree), so a page
about an old commit shows that commit's file even after the branch moved on. Git being unavailable, or the commit
missing from the cache, is not an error of the page: the excerpt or the list says why it is missing instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from odin.controller.facade import FileChange, FollowedRepo, GitError, files_changed, read_file

CONTEXT = 2  # lines shown before and after the offending one
MAX_FILE = 1 << 20  # the validator reads at most 1 MiB: a problem never points past it
MAX_LINE = 400  # characters of one line shown (a minified line must not make the page heavy)


@dataclass(frozen=True, slots=True)
class SourceLine:
    number: int
    text: str
    marked: bool = False  # the problem's line; `before`/`at`/`after` split it at the column
    before: str = ""
    at: str = ""
    after: str = ""


@dataclass(frozen=True, slots=True)
class ProblemSource:
    """A problem at `file:line:col` with the lines around it, or why they cannot be shown."""

    file: str
    line: int
    column: int
    message: str
    lines: list[SourceLine] = field(default_factory=list)
    unavailable: str | None = None
    severity: str = "error"  # or "warning": listed, styled apart, never what made the commit invalid


@dataclass(frozen=True, slots=True)
class Changes:
    files: list[FileChange]
    base: str | None
    truncated: bool = False
    unavailable: str | None = None


def _split(text: str, column: int) -> tuple[str, str, str]:
    """The line around its 1-based column; a column past the end marks a space after it (a missing value)."""
    i = max(0, column - 1)
    if i >= len(text):
        return text, " ", ""
    return text[:i], text[i], text[i + 1 :]


def excerpt(lines: list[str], line: int, column: int) -> list[SourceLine]:
    """`CONTEXT` lines either side of `line` (1-based), that line split at `column`; [] when it is past the end."""
    if line < 1 or line > max(len(lines), 1):
        return []
    out = []
    for n in range(max(1, line - CONTEXT), min(len(lines), line + CONTEXT) + 1):
        text = lines[n - 1][:MAX_LINE]
        if n == line:
            before, at, after = _split(text, column)
            out.append(SourceLine(n, text, True, before, at, after))
        else:
            out.append(SourceLine(n, text))
    return out


def problem_sources(repo: FollowedRepo, sha: str, problems: list[dict[str, Any]]) -> list[ProblemSource]:
    """Each problem with the lines it points at in `sha`'s file (each file read once)."""
    files: dict[str, list[str] | str] = {}  # path: its lines, or why it cannot be read
    out = []
    for p in problems:
        path, line, column = str(p.get("file", "")), int(p.get("line", 0)), int(p.get("column", 0))
        if path not in files:
            try:
                files[path] = read_file(repo, sha, path, max_size=MAX_FILE).decode("utf-8", "replace").splitlines()
            except GitError as e:
                files[path] = f"cannot show {path} at {sha[:10]}: {e}"
        read = files[path]
        lines = excerpt(read, line, column) if isinstance(read, list) else []
        why = read if isinstance(read, str) else (None if lines else f"line {line} is not in {path}")
        severity = "warning" if p.get("severity") == "warning" else "error"
        out.append(ProblemSource(path, line, column, str(p.get("message", "")), lines, why, severity))
    return out


def changes(repo: FollowedRepo, sha: str, base: str | None = None) -> Changes:
    """The files `sha` changed against its first parent (or `base`), or why they cannot be listed."""
    try:
        found = files_changed(repo, sha, base)
    except GitError as e:
        return Changes([], base, unavailable=f"cannot list the changes of {sha[:10]}: {e}")
    return Changes(found.files, found.base, found.truncated)
