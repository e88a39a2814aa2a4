"""Hints of the form "did you mean …?" for names the user mistyped (fields, task names, variables, choices)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The most similar candidate, if any is similar enough to be worth suggesting; a case-only difference wins."""
    options = list(candidates)
    folded = word.casefold()
    for option in options:
        if option.casefold() == folded:
            return option
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str], *, template: str = "`{}`") -> str:
    """` (did you mean `x`?)`, or "" when nothing is close."""
    match = closest(word, candidates)
    return f" (did you mean {template.format(match)}?)" if match is not None else ""
