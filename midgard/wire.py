"""A minimal HTTP/1.1 GET over one kept-alive connection: how the API asks an agent for its report.

Why not httpx: the fan-out sends one small request to each of hundreds of agents every couple of seconds, and
httpx's layers (httpcore's pool, anyio, h11) cost ~0.7 ms of CPU per request, ten times the request itself; its
shared pool also scans every open connection per request (quadratic over many hosts). This speaks just what the
agent answers -- a status line, headers, and a body by Content-Length or chunked -- over asyncio streams, with TLS
when the URL is https. Anything else (a redirect, an upgrade) is an error the caller reports for that node.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024  # a report of a 16-GPU node with MIG is ~100 KB; this only bounds a broken agent


class WireError(Exception):
    """The connection failed or the answer was not HTTP/1.1 as expected; the message says which."""


class Connection:
    """One agent's connection, reopened when the agent closed it. Not for concurrent use (one request at a time)."""

    def __init__(self, url: str, *, tls: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WireError(f"not an http(s) URL: {url!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.https else 80)
        self.prefix = parts.path.rstrip("/")
        self.tls = tls
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        authority = f"[{self.host}]" if ":" in self.host else self.host
        self._host_header = authority if parts.port is None else f"{authority}:{self.port}"

    async def get(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        """GET `path`; (status, body). A kept-alive connection the agent closed meanwhile is reopened once."""
        reused = self._writer is not None
        try:
            return await self._get(path, headers)
        except _StaleConnection:
            self.close()
            if not reused:
                raise WireError("the agent closed the connection without answering") from None
            return await self._get(path, headers)
        except BaseException:
            self.close()
            raise

    async def _get(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        if self._writer is None:
            try:
                self._reader, self._writer = await asyncio.open_connection(
                    self.host,
                    self.port,
                    ssl=(self.tls or ssl.create_default_context()) if self.https else None,
                    limit=MAX_HEAD,
                )
            except OSError as e:
                raise WireError(f"cannot connect ({e.strerror or type(e).__name__})") from e
        assert self._reader is not None and self._writer is not None
        lines = [f"GET {self.prefix}{path} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self._writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        try:
            await self._writer.drain()
            head = await self._reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            if not e.partial:
                raise _StaleConnection from e
            raise WireError("the agent closed the connection mid-answer") from e
        except asyncio.LimitOverrunError as e:
            raise WireError("the agent's answer headers are too large") from e
        except OSError as e:
            raise _StaleConnection from e
        status, fields = _parse_head(head)
        body = await self._body(fields)
        if fields.get("connection", "").lower() == "close":
            self.close()
        return status, body

    async def _body(self, fields: dict[str, str]) -> bytes:
        assert self._reader is not None
        try:
            if "chunked" in fields.get("transfer-encoding", "").lower():
                chunks: list[bytes] = []
                total = 0
                while True:
                    size_line = await self._reader.readuntil(b"\r\n")
                    size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while (await self._reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                            pass
                        return b"".join(chunks)
                    total += size
                    if total > MAX_BODY:
                        raise WireError("the agent's answer is too large")
                    chunks.append(await self._reader.readexactly(size))
                    await self._reader.readexactly(2)
            length = fields.get("content-length")
            if length is None:
                data = await self._reader.read(MAX_BODY + 1)
                self.close()  # the body ends with the connection
                return data
            n = int(length)
            if n < 0 or n > MAX_BODY:
                raise WireError("the agent's answer is too large")
            return await self._reader.readexactly(n)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            raise WireError(f"malformed answer body ({type(e).__name__})") from e

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


class _StaleConnection(Exception):
    """Nothing came back on a connection: the agent closed it (idle keep-alive) before our request."""


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    text = head.decode("latin-1")
    status_line, _, rest = text.partition("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise WireError(f"not an HTTP/1.1 answer: {status_line[:80]!r}")
    fields: dict[str, str] = {}
    for line in rest.split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return int(parts[1]), fields
