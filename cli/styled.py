"""`odin run`'s progress and summary lines, coloured as rich would colour them, without importing rich.

`odin run` of a one-task pipeline has a 300 ms budget for the whole process (issue 15 item 2), and rich (its console,
styles, markup and emoji tables: about 40 modules) was 12-19 ms of it, for a few lines with a mark and three colours.
So the lines every run prints are written here: each is a sequence of pieces, plain text or (text, style), and a
style is one of `STYLES`. Whether and how they are styled is what rich's `Console` decides for the same stream and
environment (`tests/cli/test_styled.py` compares the two byte for byte):

- styles at all only on a terminal: `TTY_COMPATIBLE=1` / `0` says so, else `FORCE_COLOR` set (non-empty: yes,
  empty: no), else the stream's `isatty()`; and not when `TERM` is `dumb` or `unknown`;
- `NO_COLOR` (non-empty) keeps bold and dim but drops the colours;
- the control characters rich leaves out of text (BEL, BS, VT, FF, CR) are left out here too.

What differs from rich: text is written as it is. Rich read `[...]` in a task's message as markup (a message with
`[/x]` in it ended `odin run` with a MarkupError) and `:name:` as an emoji code. A failed run's report and the error
messages are still rich's (`odin.cli.failure`, printed through a console made when needed).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TextIO

STYLES = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2"}
"""Each style's SGR parameter, as rich writes them for its standard colours."""
COLOURS = frozenset({"green", "red", "yellow"})

Piece = str | tuple[str, str]
"""Plain text, or (text, style)."""

_STRIPPED = str.maketrans({code: None for code in (7, 8, 11, 12, 13)})  # rich.control.STRIP_CONTROL_CODES


def styling(stream: TextIO, environ: Mapping[str, str]) -> tuple[bool, bool]:
    """(styles, colours): whether lines written to `stream` get styles at all, and colours among them."""
    compatible = environ.get("TTY_COMPATIBLE", "")
    force = environ.get("FORCE_COLOR")
    if compatible in ("0", "1"):
        terminal = compatible == "1"
    elif force is not None:
        terminal = force != ""
    else:
        try:
            terminal = stream.isatty()
        except ValueError:  # a closed stream
            terminal = False
    styles = terminal and environ.get("TERM", "").lower() not in ("dumb", "unknown")
    return styles, styles and environ.get("NO_COLOR", "") == ""


class StyledLines:
    """Writes lines of pieces to a stream (`sys.stdout` when it is written, as rich's default console does), each
    flushed at once: a run's progress shows as it happens."""

    def __init__(self, stream: TextIO | None = None, environ: Mapping[str, str] | None = None) -> None:
        self._stream = stream
        self._environ = os.environ if environ is None else environ

    def line(self, *pieces: Piece) -> None:
        stream = self._stream if self._stream is not None else sys.stdout
        styles, colours = styling(stream, self._environ)
        parts: list[str] = []
        for piece in pieces:
            text, style = (piece, None) if isinstance(piece, str) else piece
            text = text.translate(_STRIPPED)
            if style is None or not text or not styles or (style in COLOURS and not colours):
                parts.append(text)
            else:
                parts.append(f"\x1b[{STYLES[style]}m{text}\x1b[0m")
        stream.write("".join(parts) + "\n")
        stream.flush()
