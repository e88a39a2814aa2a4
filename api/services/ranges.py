"""HTTP range requests (RFC 9110 §14) for artifact downloads: which bytes to send, and the headers that say so.

One range per answer: `bytes=a-b`, `bytes=a-` and `bytes=-n` (the last n bytes). A header this does not understand
(another unit, several ranges, a malformed value) is ignored and the whole body is sent, as RFC 9110 allows; a range
that starts at or past the end is `RangeNotSatisfiable` (416). `If-Range` with a validator other than the current
ETag also means "send it whole": the client's partial copy is of other bytes. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from odin.api.services.errors import RangeNotSatisfiable

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Span:
    """The bytes to send, `start` to `end` inclusive, and whether that is a part (206) or the whole (200)."""

    start: int
    end: int
    partial: bool

    @property
    def length(self) -> int:
        return self.end - self.start + 1 if self.end >= self.start else 0


def etag(validator: str) -> str:
    """A strong entity tag for a validator (a digest): quoted, as RFC 9110 spells it."""
    return f'"{validator}"'


def choose(size: int, range_header: str | None, if_range: str | None, current_etag: str) -> Span:
    """What to send of `size` bytes, given the request's `Range` and `If-Range` headers."""
    whole = Span(0, size - 1, partial=False)
    if not range_header:
        return whole
    if if_range is not None and if_range.strip() != current_etag:
        return whole
    found = _RANGE.match(range_header)
    if found is None:
        return whole
    first, last = found.group(1), found.group(2)
    if not first and not last:
        return whole
    if size == 0:
        raise RangeNotSatisfiable(size)  # RFC 9110: no range of an empty body is satisfiable
    if not first:  # the last n bytes
        n = int(last)
        if n == 0:
            raise RangeNotSatisfiable(size)
        return Span(max(0, size - n), size - 1, partial=True)
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return whole  # syntactically invalid (last < first): ignored
    if start >= size:
        raise RangeNotSatisfiable(size)
    return Span(start, end, partial=True)


def headers(span: Span, size: int, current_etag: str) -> dict[str, str]:
    """The headers of the answer: Accept-Ranges, ETag, Content-Length and, for a part, Content-Range."""
    out = {"Accept-Ranges": "bytes", "ETag": current_etag, "Content-Length": str(span.length)}
    if span.partial:
        out["Content-Range"] = f"bytes {span.start}-{span.end}/{size}"
    return out
