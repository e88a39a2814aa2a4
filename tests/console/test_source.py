"""The offending lines shown next to a validation problem: which lines, and where the column mark falls."""

from __future__ import annotations

from odin.api.console.source import MAX_LINE, excerpt

LINES = ["name: bad", "tasks:", "  - name: a", "    image: busybox", "    command: [echo]", "    depends: nowhere"]


def test_two_lines_either_side_and_the_column_marked() -> None:
    shown = excerpt(LINES, 4, 12)
    assert [s.number for s in shown] == [2, 3, 4, 5, 6]
    hit = next(s for s in shown if s.marked)
    assert (hit.number, hit.before, hit.at, hit.after) == (4, "    image: ", "b", "usybox")


def test_at_the_edges_of_the_file() -> None:
    assert [s.number for s in excerpt(LINES, 1, 1)] == [1, 2, 3]
    last = excerpt(LINES, 6, 100)  # a column past the end marks a space after the line (a missing value)
    assert [s.number for s in last] == [4, 5, 6]
    assert (last[-1].before, last[-1].at) == (LINES[5], " ")
    assert excerpt(LINES, 7, 1) == [] and excerpt(LINES, 0, 1) == []


def test_a_long_line_is_cut() -> None:
    shown = excerpt(["x" * 10_000], 1, 5)
    assert len(shown[0].text) == MAX_LINE and shown[0].at == "x"
