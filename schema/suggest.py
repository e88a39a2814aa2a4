"""Hints of the form "did you mean …?" for names the user mistyped (fields, task names, variables, choices).

A hint compares the word with every candidate (difflib's ratio, up to ~1 ms for two 64-character names), and a hostile
file can ask for one per unknown name against thousands of candidates: quadratic. So a file's hints share a budget
(`suggestion_budget`, set by `load_pipeline`); once it is spent, problems simply come
without hints. Words longer than `MAX_WORD` characters are not names anyone mistyped and get none.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from difflib import SequenceMatcher

MAX_WORD = 64
CUTOFF = 0.6
DEFAULT_BUDGET = 400_000
"""Work units per file (about a quarter of a microsecond each): a tenth of a second at most, and far more than any
real file uses. A hint costs `_PER_CALL`, `_PER_CANDIDATE` for each candidate looked at, and the product of the two
names' lengths for each full comparison."""
_PER_CALL = 50
_PER_CANDIDATE = 10


class _Budget:
    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left


_budget: ContextVar[_Budget | None] = ContextVar("odin_suggestion_budget", default=None)


@contextmanager
def suggestion_budget(comparisons: int = DEFAULT_BUDGET) -> Iterator[None]:
    """Bound the work of every hint asked for inside the block (per thread or task: a context variable)."""
    token = _budget.set(_Budget(comparisons))
    try:
        yield
    finally:
        _budget.reset(token)


def _spend(cost: int) -> bool:
    budget = _budget.get()
    if budget is None:
        return True
    if budget.left < cost:
        budget.left = 0  # spent: later hints are skipped whatever their size, so the cut is at one place
        return False
    budget.left -= cost
    return True


def closest(word: str, candidates: Collection[str]) -> str | None:
    """The most similar candidate, if any is similar enough to be worth suggesting; a case-only difference wins.
    The same answer as `difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)` otherwise."""
    if len(word) > MAX_WORD or not candidates or not _spend(_PER_CALL + _PER_CANDIDATE * len(candidates)):
        return None
    folded = word.casefold()
    for option in candidates:
        if len(option) <= 2 * MAX_WORD and option.casefold() == folded:
            return option
    matcher = SequenceMatcher()
    matcher.set_seq2(word)
    best: tuple[float, str] | None = None
    for option in candidates:
        matcher.set_seq1(option)
        if matcher.real_quick_ratio() < CUTOFF or matcher.quick_ratio() < CUTOFF:
            continue
        if not _spend(len(word) * max(len(option), 1)):
            break
        score = matcher.ratio()
        if score >= CUTOFF and (best is None or (score, option) > best):
            best = (score, option)
    return best[1] if best is not None else None


def did_you_mean(word: str, candidates: Collection[str], *, template: str = "`{}`") -> str:
    """` (did you mean `x`?)`, or "" when nothing is close (or the file's hint budget is spent)."""
    match = closest(word, candidates)
    return f" (did you mean {template.format(match)}?)" if match is not None else ""
