"""Reads on the event loop, without a worker thread: psycopg2's asynchronous connections driven by asyncio.

Why: `GET /v1/runs?commit=` is the API's busiest request (CI asks it for every commit), and its query takes Postgres
about 0.1 ms. Handing it to a worker thread and back cost the server more than that: about 0.27 ms of CPU a request,
a third of the whole (`benchmarks/bench_api.py`: 0.83 → 0.57 ms with the read done in place), and two thread
wake-ups, each waiting for a core on a busy machine. In psycopg2's asynchronous mode the query is sent, and its
answer read, when the socket is ready, from the event loop, which serves other requests meanwhile.

What it covers: PostgreSQL through psycopg2 (Odin's driver), and statements whose parameters are single values. For
anything else `fetch` answers None and the caller reads the usual way, in a thread (SQLite; an `IN` list's expanding
parameter). The statement is compiled once for the engine's dialect; its parameters are converted by their types'
own bind processors and its columns by their result processors, so the rows are those `Connection.execute` returns
(tests compare them).

Connections: up to `KEEP` per event loop, opened on first use, in autocommit (psycopg2's asynchronous connections
have no transactions; a single read sees one snapshot either way). When all are busy, or one fails (a restart, a
failover, an error in the statement), `fetch` answers None and the read goes the threaded way, which has its own
retry, reports an unavailable store as such and raises what the statement raises. A read cancelled mid-way (the
client went away) closes its connection, whose state is then unknown; so does `engine.dispose()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg2
import psycopg2.extensions
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Dialect

from odin.controller.store.db import DbEngine

__all__ = ["KEEP", "fetch"]

KEEP = 4
"""Connections per event loop at most: one read takes ~0.1 ms in Postgres, so a few serve thousands a second."""
IDLE = 60.0
"""Seconds a connection may sit unused before it is closed rather than used (it may have outlived a restart)."""

_POOLS = "_odin_loop_reads"
Processor = Callable[[Any], Any] | None


@dataclass(slots=True)
class _Compiled:
    """A statement as psycopg2 runs it: its SQL, its parameters with their bind processors, and (from the first
    answer's description) its columns' result processors."""

    sql: str
    binds: tuple[tuple[str, Processor, Any], ...]  # (name, bind processor, the value when the caller gives none)
    types: tuple[sa.types.TypeEngine[Any], ...]
    results: tuple[Processor, ...] | None = None

    def parameters(self, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """The values as the driver gets them; None for one the store refuses (NUL in text: the threaded path
        raises `InvalidText` for it, as for every other statement)."""
        out: dict[str, Any] = {}
        for name, process, default in self.binds:
            value = values.get(name, default)
            if isinstance(value, str) and "\x00" in value:
                return None
            out[name] = process(value) if process is not None else value
        return out

    def rows(self, raw: Sequence[tuple[Any, ...]], description: Sequence[Any], dialect: Dialect) -> list[Any]:
        if self.results is None:
            self.results = tuple(
                t.dialect_impl(dialect).result_processor(dialect, column[1])
                for t, column in zip(self.types, description, strict=True)
            )
        processors = self.results
        if not any(processors):
            return list(raw)
        return [tuple(p(v) if p is not None else v for p, v in zip(processors, row, strict=True)) for row in raw]


_COMPILED: dict[int, tuple[sa.Executable, _Compiled | None]] = {}
"""By the statement's identity (the statement is kept beside, so that identity is never reused)."""
_COMPILED_LOCK = threading.Lock()


def _compiled(statement: sa.Executable, dialect: Dialect) -> _Compiled | None:
    """Compiled once per statement (they are built once and kept by their callers, so this stays small); None for
    one that is not a SELECT or has a parameter this module does not bind (see the module's docstring)."""
    with _COMPILED_LOCK:
        known = _COMPILED.get(id(statement))
    if known is not None:
        return known[1]
    if not isinstance(statement, sa.Select):
        return None
    compiled = statement.compile(dialect=dialect)
    binds = compiled.binds
    usable = not compiled.positional and not any(
        b.expanding or b.literal_execute or b.callable is not None for b in binds.values()
    )
    result = (
        _Compiled(
            sql=compiled.string,
            binds=tuple(
                (name, b.type.dialect_impl(dialect).bind_processor(dialect), b.value) for name, b in binds.items()
            ),
            types=tuple(c.type for c in statement.selected_columns),
        )
        if usable
        else None
    )
    with _COMPILED_LOCK:
        _COMPILED[id(statement)] = (statement, result)
    return result


class _Connections:
    """The asynchronous connections of one engine on one event loop. Touched from that loop's thread, except by
    `close_all` (from `engine.dispose()`, any thread): hence the lock."""

    def __init__(self, engine: DbEngine) -> None:
        cargs, cparams = engine.dialect.create_connect_args(engine.url)
        self._connect = (tuple(cargs), dict(cparams))
        self._free: list[tuple[Any, float]] = []  # (connection, given back at), most recent last
        self._open = 0
        self._closed = False
        self._lock = threading.Lock()

    async def take(self) -> Any | None:
        now = time.monotonic()
        stale: list[Any] = []
        with self._lock:
            if self._closed:
                return None
            conn = None
            while self._free:
                candidate, since = self._free.pop()
                if now - since < IDLE:
                    conn = candidate
                    break
                stale.append(candidate)
                self._open -= 1
            opening = conn is None and self._open < KEEP
            if opening:
                self._open += 1
        for old in stale:
            _close(old)
        if not opening:
            return conn
        cargs, cparams = self._connect
        try:
            conn = psycopg2.connect(*cargs, async_=1, **cparams)
            await _ready(conn)
        except (psycopg2.Error, OSError):
            with self._lock:
                self._open -= 1
            return None
        except BaseException:  # cancelled while connecting
            with self._lock:
                self._open -= 1
            raise
        return conn

    def give_back(self, conn: Any) -> None:
        with self._lock:
            if not self._closed and not conn.closed:
                self._free.append((conn, time.monotonic()))
                return
            self._open -= 1
        _close(conn)

    def discard(self, conn: Any) -> None:
        with self._lock:
            self._open -= 1
        _close(conn)

    def close_all(self) -> None:
        with self._lock:
            self._closed = True
            free, self._free = self._free, []
            self._open -= len(free)
        for conn, _ in free:
            _close(conn)


def _close(conn: Any) -> None:
    with contextlib.suppress(Exception):
        conn.close()


def _pools(engine: DbEngine) -> weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Connections]:
    """The engine's connections per event loop (a loop that ends takes its entry with it)."""
    pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Connections] | None = engine.__dict__.get(_POOLS)
    if pools is None:
        pools = engine.__dict__.setdefault(_POOLS, weakref.WeakKeyDictionary())
        event.listen(engine, "engine_disposed", _close_pools)
    return pools


def _close_pools(engine: DbEngine) -> None:
    pools = engine.__dict__.get(_POOLS)
    if pools is not None:
        for connections in list(pools.values()):
            connections.close_all()
        pools.clear()


async def _ready(conn: Any) -> None:
    """Drive psycopg2's asynchronous connection until its current operation is done (its documented poll loop),
    waiting for the socket on the running loop."""
    loop = asyncio.get_running_loop()
    while True:
        state = conn.poll()
        if state == psycopg2.extensions.POLL_OK:
            return
        fd = conn.fileno()
        waiter = loop.create_future()

        def wake(waiter: asyncio.Future[None] = waiter) -> None:
            if not waiter.done():
                waiter.set_result(None)

        if state == psycopg2.extensions.POLL_READ:
            watch, unwatch = loop.add_reader, loop.remove_reader
        elif state == psycopg2.extensions.POLL_WRITE:
            watch, unwatch = loop.add_writer, loop.remove_writer
        else:  # pragma: no cover (psycopg2 documents only these three)
            raise psycopg2.OperationalError(f"unexpected poll state {state}")
        watch(fd, wake)
        try:
            await waiter
        finally:
            unwatch(fd)


async def fetch(engine: DbEngine, statement: sa.Executable, values: Mapping[str, Any]) -> list[Any] | None:
    """The rows of `statement` with `values`, read on the running event loop; None when that cannot be done here
    (see the module's docstring): the caller then reads them in a thread, as before."""
    if engine.dialect.name != "postgresql" or engine.dialect.driver != "psycopg2":
        return None
    compiled = _compiled(statement, engine.dialect)
    if compiled is None:
        return None
    parameters = compiled.parameters(values)
    if parameters is None:
        return None
    pools = _pools(engine)
    loop = asyncio.get_running_loop()
    connections = pools.get(loop)
    if connections is None:
        connections = pools.setdefault(loop, _Connections(engine))
    conn = await connections.take()
    if conn is None:
        return None
    try:
        cursor = conn.cursor()
        cursor.execute(compiled.sql, parameters)
        await _ready(conn)
        raw = cursor.fetchall()
        description = cursor.description
        cursor.close()
    except psycopg2.Error:
        connections.discard(conn)
        return None  # the threaded read runs it again: its retry, its StoreUnavailable, its exceptions
    except BaseException:  # cancelled mid-read: the connection's state is unknown
        connections.discard(conn)
        raise
    connections.give_back(conn)
    return compiled.rows(raw, description, engine.dialect)
