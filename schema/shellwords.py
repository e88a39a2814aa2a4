"""`command: "python train.py --lr 0.1"` split into words exactly as `shlex.split` does (POSIX mode), in linear time.

`shlex` builds each word a character at a time with `self.token += c`, copying the word so far each time: a 1 MiB
quoted command took 30 s. Here whole runs of ordinary characters, quoted strings and escapes are read by regexes
with possessive quantifiers (they cannot backtrack), so the cost is one pass over the text. The differential test in
tests/schema/test_shellwords.py holds this to shlex's answers, errors included.
"""

from __future__ import annotations

import re

_WHITESPACE = " \t\r\n"
"""What shlex splits on (not every Unicode space: `\\f` or a no-break space is part of a word)."""

_WORD = re.compile(r"""(?:[^ \t\r\n'"\\]++|'[^']*+'|"(?:[^"\\]++|\\.)*+"|\\.)++""", re.DOTALL)
_PIECE = re.compile(r"""([^'"\\]++)|'([^']*+)'|"((?:[^"\\]++|\\.)*+)"|\\(.)""", re.DOTALL)
_QUOTED_ESCAPE = re.compile(r"""\\([\\"])""")
"""Inside double quotes a backslash escapes only `"` and itself; before anything else it is kept."""
_OPEN_ESCAPE = re.compile(r"""(?:"(?:[^"\\]++|\\.)*+)?\\\Z""", re.DOTALL)
"""The text ends with a backslash escaping nothing (shlex: "No escaped character")."""

NO_CLOSING_QUOTATION = "No closing quotation"
NO_ESCAPED_CHARACTER = "No escaped character"


def split(text: str) -> list[str]:
    """The words of `text`; raises ValueError with shlex's message for an unclosed quote or a trailing backslash."""
    words: list[str] = []
    end = 0
    for match in _WORD.finditer(text):
        if text[end : match.start()].strip(_WHITESPACE):
            break  # something no word can start with: an unclosed quote
        word = match.group()
        if "'" in word or '"' in word or "\\" in word:
            word = "".join([_unquote(piece) for piece in _PIECE.finditer(word)])
        words.append(word)
        end = match.end()
    else:
        if not text[end:].strip(_WHITESPACE):
            return words
    rest = text[end:].lstrip(_WHITESPACE)
    raise ValueError(NO_ESCAPED_CHARACTER if _OPEN_ESCAPE.match(rest) else NO_CLOSING_QUOTATION)


def _unquote(piece: re.Match[str]) -> str:
    plain, single, double, escaped = piece.groups()
    if plain is not None:
        return plain
    if single is not None:
        return single
    if double is not None:
        return _QUOTED_ESCAPE.sub(r"\1", double) if "\\" in double else double
    return str(escaped)
