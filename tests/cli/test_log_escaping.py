"""The text log escapes every character that could end a line or drive a terminal, whatever text a message carries.

`GET /v1/runs/<value>` puts the caller's text in the request log; a terminal or a log viewer acts on more than `\\n`:
ESC starts an ANSI sequence, C1's NEL (U+0085) ends a line and CSI (U+009B) starts a sequence on their own, and
U+2028/U+2029 end lines for many viewers and for JavaScript. Each must reach the log as a visible escape.
"""

from __future__ import annotations

import io
import logging

import pytest

from odin.cli.logs import EscapingFormatter, escape_controls

DANGEROUS = {
    "\n": "\\n",
    "\r": "\\r",
    "\x00": "\\x00",
    "\x1b": "\\x1b",
    "\x7f": "\\x7f",
    "\x85": "\\x85",
    "\x9b": "\\x9b",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


@pytest.mark.parametrize(("char", "escaped"), DANGEROUS.items(), ids=[repr(c) for c in DANGEROUS])
def test_each_dangerous_character_is_written_as_its_escape(char: str, escaped: str) -> None:
    assert escape_controls(f"run{char}x") == f"run{escaped}x"


def test_text_without_them_is_left_as_it_is() -> None:
    text = "tab\tstays, so do é, 日本, emoji 🚀 and \\n typed as two characters"
    assert escape_controls(text) is text


def test_a_formatted_line_holds_no_dangerous_character_from_a_message_or_its_arguments() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(EscapingFormatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("odin.test.escaping")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        value = "".join(DANGEROUS) + "\x1b[2J"
        logger.warning("GET /v1/runs/%s 404", value)
        logger.warning("literal " + value)
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    assert written.count("\n") == 2, written  # the handler's own line ends, nothing else
    assert not set(written.replace("\n", "")) & set(DANGEROUS), repr(written)
    assert "".join(DANGEROUS.values()) in written
