"""Which bytes a `Range` header asks for (RFC 9110 §14): the pure part of artifact downloads."""

from __future__ import annotations

import pytest

from odin.api.services.errors import RangeNotSatisfiable
from odin.api.services.ranges import Span, choose, headers

TAG = '"sha256:abc"'


@pytest.mark.parametrize(
    ("header", "span"),
    [
        (None, Span(0, 99, False)),
        ("bytes=0-0", Span(0, 0, True)),
        ("bytes=10-19", Span(10, 19, True)),
        ("bytes=90-", Span(90, 99, True)),
        ("bytes=90-500", Span(90, 99, True)),
        ("bytes=-10", Span(90, 99, True)),
        ("bytes=-500", Span(0, 99, True)),
        ("BYTES = 1 - 2", Span(1, 2, True)),
        ("bytes=5-1", Span(0, 99, False)),  # invalid: ignored
        ("bytes=0-1,4-5", Span(0, 99, False)),  # several ranges: the whole body
        ("lines=1-2", Span(0, 99, False)),
        ("bytes=-", Span(0, 99, False)),
    ],
)
def test_choose(header: str | None, span: Span) -> None:
    assert choose(100, header, None, TAG) == span


@pytest.mark.parametrize(("size", "header"), [(100, "bytes=100-"), (100, "bytes=-0"), (0, "bytes=0-"), (0, "bytes=-1")])
def test_unsatisfiable(size: int, header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        choose(size, header, None, TAG)
    assert caught.value.size == size


def test_if_range() -> None:
    assert choose(100, "bytes=1-2", TAG, TAG).partial
    assert not choose(100, "bytes=1-2", '"sha256:other"', TAG).partial


def test_headers() -> None:
    assert headers(Span(10, 19, True), 100, TAG) == {
        "Accept-Ranges": "bytes",
        "ETag": TAG,
        "Content-Length": "10",
        "Content-Range": "bytes 10-19/100",
    }
    assert "Content-Range" not in headers(Span(0, 99, False), 100, TAG)
    assert headers(Span(0, -1, False), 0, TAG)["Content-Length"] == "0"
