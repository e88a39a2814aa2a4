"""The aggregation's HTTP/1.1 client (`odin.midgard.wire`) against real sockets: Content-Length, chunked, a body ended
by closing, a kept-alive connection the server closed meanwhile, and answers that are not HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from odin.midgard.wire import Connection, WireError

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def with_server(handler: Handler, body: Callable[[str], Awaitable[None]]) -> None:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        await body(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    finally:
        server.close()
        await server.wait_closed()


def answering(*answers: bytes, close_after: int = 99) -> tuple[Handler, list[bytes]]:
    """A server answering each request on a connection with the next of `answers`; closes after `close_after`."""
    heads: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for i, answer in enumerate(answers):
                if i >= close_after:
                    break
                heads.append(await reader.readuntil(b"\r\n\r\n"))
                writer.write(answer)
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    return handler, heads


def test_content_length_keep_alive_and_headers() -> None:
    handler, heads = answering(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", b"HTTP/1.1 401 No\r\nContent-Length: 0\r\n\r\n"
    )

    async def body(url: str) -> None:
        conn = Connection(url + "/prefix/")
        assert await conn.get("/v1/report", {"Authorization": "Bearer t"}) == (200, b"ok")
        assert await conn.get("/v1/report", {}) == (401, b"")
        conn.close()

    asyncio.run(with_server(handler, body))
    assert heads[0].startswith(b"GET /prefix/v1/report HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"Authorization: Bearer t\r\n" in heads[0]
    assert len(heads) == 2, "both requests on one connection"


def test_chunked_and_close_delimited_bodies() -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
    handler, _ = answering(chunked, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-the-end")

    async def body(url: str) -> None:
        conn = Connection(url)
        assert await conn.get("/", {}) == (200, b"abcde")
        assert await conn.get("/", {}) == (200, b"until-the-end")

    asyncio.run(with_server(handler, body))


def test_a_kept_alive_connection_closed_by_the_server_is_reopened_once() -> None:
    handler, heads = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1", close_after=1)

    async def body(url: str) -> None:
        conn = Connection(url)
        assert await conn.get("/", {}) == (200, b"1")
        await asyncio.sleep(0.05)  # the server has closed its side meanwhile
        assert await conn.get("/", {}) == (200, b"1")
        conn.close()

    asyncio.run(with_server(handler, body))
    assert len(heads) == 2


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"SSH-2.0-OpenSSH\r\n\r\n", "not an HTTP/1.1 answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "malformed answer body"),
    ],
)
def test_what_is_not_http_is_an_error_naming_it(answer: bytes, message: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer)
        await writer.drain()
        writer.close()

    async def body(url: str) -> None:
        with pytest.raises(WireError, match=message):
            await Connection(url).get("/", {})

    asyncio.run(with_server(handler, body))


def test_refused() -> None:
    async def body() -> None:
        with pytest.raises(WireError, match="cannot connect"):
            await Connection("http://127.0.0.1:1").get("/", {})

    asyncio.run(body())
