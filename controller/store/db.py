"""Database engine, sessions and migrations, for SQLite (embedded default) and Postgres (production).

SQLite is opened in WAL mode with a busy timeout so the API's readers never block the engine's writer; foreign keys
are switched on (SQLite leaves them off by default). Migrations are Alembic scripts shipped inside the package and
applied on start, so `pip install odin && odin serve` needs no separate step; Alembic itself is imported only when
there is a migration to apply (`schema_version.py`: an up-to-date store is told by one query, a brand-new SQLite file
is created from the models).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection as SaConnection
from sqlalchemy.engine import Engine as SaEngine
from sqlalchemy.exc import InterfaceError, OperationalError

from odin.controller.store.schema_version import SchemaState, create_fresh_schema, schema_state

if TYPE_CHECKING:
    from alembic.config import Config

# Re-exported: the API and webhooks annotate with the store's engine type without importing SQLAlchemy themselves.
__all__ = ["DbEngine"]

log = logging.getLogger(__name__)

DbEngine: TypeAlias = SaEngine
"""The database handle (a pool) the rest of the controller holds and passes back to the store's functions. It and
`Connection` (what `transaction` yields) are named through this module so that only the store imports SQLAlchemy."""
Connection: TypeAlias = SaConnection


IMMEDIATE_OPTION = "odin_write_transaction"

MIGRATION_LOCK_KEY = 0x0D1_0001
"""Postgres advisory lock held while migrating (the leader lock uses another key)."""


class StoreError(Exception):
    """The database failed a request; the store's own errors derive from it, so callers outside the store never
    catch SQLAlchemy's."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or is locked; the caller should retry later (nothing was written)."""


class InvalidText(ValueError):
    """A text value the store refuses: it holds a NUL character (or, on Postgres, a JSON `\\u0000`), which Postgres
    cannot store and SQLite would store silently. Raised before or instead of the write; nothing was written. The API
    answers 400: the input is at fault, not the server."""


UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError, sa.exc.TimeoutError)
"""SQLAlchemy's errors for "the database cannot be reached or is busy" (connection refused or dropped, pool
exhausted); callers that do not go through `transaction`/`reading` map them as `StoreUnavailable`."""


def is_unavailable(e: BaseException) -> bool:
    """Whether `e` means "the database cannot be reached right now" (the API answers 503 with Retry-After)."""
    if isinstance(e, (StoreUnavailable, *UNAVAILABLE_ERRORS)):
        return True
    return isinstance(e, sa.exc.DBAPIError) and e.connection_invalidated


_UNSTORABLE_TEXT = {"22P05", "22021"}  # untranslatable_character (JSONB "\u0000"), character_not_in_repertoire


def redact_db_url(url: str) -> str:
    """The URL without its password, for logs and error messages."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database url>"


def create_db_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> DbEngine:
    """An engine with the right per-backend settings; creates the SQLite file's directory when needed."""
    parsed = sa.make_url(url)
    kwargs: dict[str, Any] = {"echo": echo, "future": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        engine = sa.create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; emit BEGIN ourselves. Writers
        # (see `transaction`) take the write lock up front: two deferred transactions that both read and then
        # write deadlock in SQLite, and the busy timeout does not apply to that case.
        event.listen(engine, "begin", _sqlite_begin)
        _refuse_unstorable_text(engine)
        return engine
    kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=1800)
    engine = sa.create_engine(url, **kwargs)
    _refuse_unstorable_text(engine)
    engine.__dict__[_KEPT_READS] = _KeptReads(engine, keep=max(1, min(4, pool_size // 2)))
    event.listen(engine, "engine_disposed", lambda e: e.__dict__[_KEPT_READS].close())
    return engine


def _refuse_unstorable_text(engine: DbEngine) -> None:
    """Both backends refuse NUL the same way, with `InvalidText`: Postgres would fail in the driver (a bare
    ValueError) or the server (a DataError), SQLite would store it and differ from Postgres afterwards."""
    event.listen(engine, "before_cursor_execute", _check_parameters)
    event.listen(engine, "handle_error", _translate_text_errors)


def _check_parameters(
    _conn: Connection, _cursor: Any, _statement: str, parameters: Any, _context: Any, executemany: bool
) -> None:
    rows = parameters if executemany else (parameters,)
    for row in rows:
        refuse_nul(row.values() if isinstance(row, dict) else row or ())


def refuse_nul(values: Iterable[Any]) -> None:
    """`InvalidText` if a text value holds a NUL (every statement's parameters, whichever path sends them)."""
    for value in values:
        if isinstance(value, str) and "\0" in value:
            raise InvalidText("text with a NUL character (\\0) cannot be stored; remove it and try again")


def _translate_text_errors(context: sa.engine.ExceptionContext) -> BaseException | None:
    pgcode = getattr(context.original_exception, "pgcode", None)
    if pgcode in _UNSTORABLE_TEXT:
        return InvalidText(f"text the database cannot store: {first_line(context.original_exception)}")
    return None


def _sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(IMMEDIATE_OPTION)
    # Straight to the driver: this runs once per transaction on the engine's hot path.
    conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")  # type: ignore[union-attr]


_WRITERS: weakref.WeakKeyDictionary[DbEngine, threading.RLock] = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()


def _writer_lock(engine: DbEngine) -> threading.RLock:
    with _WRITERS_LOCK:
        lock = _WRITERS.get(engine)
        if lock is None:
            lock = _WRITERS[engine] = threading.RLock()
        return lock


@contextmanager
def transaction(engine: DbEngine) -> Iterator[Connection]:
    """A write transaction (commit on success, rollback on error); on SQLite it queues for the write lock.

    Use it for every write: plain `engine.begin()` works on Postgres but can deadlock concurrent SQLite writers.

    SQLite has one writer at a time, and a writer that finds the lock taken sleeps and polls (1, 2, 5 ... 100 ms) in
    its busy handler: with tens of threads writing (webhook handlers, the engine, the poller) that polling is unfair
    and latency collapses into seconds. So writers of one process queue on a lock here first, and wait in the
    kernel instead; SQLite's busy timeout still arbitrates between processes.
    """
    lock = _writer_lock(engine) if engine.dialect.name == "sqlite" else contextlib.nullcontext()
    try:
        with lock, engine.connect() as conn:
            conn.execution_options(**{IMMEDIATE_OPTION: True})
            with conn.begin():
                yield conn
    except OperationalError as e:
        raise StoreUnavailable(f"database unavailable: {first_line(e)}") from e


class Writer:
    """One connection kept by a busy writer (the engine) across its transactions.

    The engine commits several times a second; checking a connection out of the pool each time (and, on Postgres,
    pinging it first) cost a good share of its per-task overhead. The connection is dropped after any connection
    error and made again on the next transaction; between transactions it holds no lock and no snapshot.
    """

    def __init__(self, engine: DbEngine) -> None:
        self.engine = engine
        self._conn: Connection | None = None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        lock = _writer_lock(self.engine) if self.engine.dialect.name == "sqlite" else contextlib.nullcontext()
        with lock:
            try:
                if self._conn is None or self._conn.closed or self._conn.invalidated:
                    self._conn = self.engine.connect()
                    self._conn.execution_options(**{IMMEDIATE_OPTION: True})
                with self._conn.begin():
                    yield self._conn
            except OperationalError as e:
                self.close()
                raise StoreUnavailable(f"database unavailable: {first_line(e)}") from e

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


@contextmanager
def reading(engine: DbEngine) -> Iterator[Connection]:
    """A connection for reads; connection failures become `StoreUnavailable`."""
    try:
        with engine.connect() as conn:
            yield conn
    except OperationalError as e:
        raise StoreUnavailable(f"database unavailable: {first_line(e)}") from e


T = TypeVar("T")

_KEPT_READS = "_odin_kept_reads"


def read_once(engine: DbEngine, read: Callable[[Connection], T]) -> T:
    """`read(conn)` on a connection kept for the API's busiest reads, on Postgres; `reading` otherwise.

    `read` must change nothing and be safe to run twice: it runs outside a transaction (autocommit: no BEGIN and
    ROLLBACK round trips; at READ COMMITTED each statement sees its own snapshot either way), and once more on a
    pooled connection if the kept one turns out to be gone. Taking a connection from the pool costs more CPU than
    `GET /v1/runs?commit=`'s query (a checkout, a ping, a rollback at checkin: ~0.5 ms of 1 ms in all), so a few
    connections are kept aside for these reads: `bench_api.py`'s numbers are in docs/api.md.
    """
    kept: _KeptReads | None = engine.__dict__.get(_KEPT_READS)
    if kept is None:
        with reading(engine) as conn:
            return read(conn)
    return kept.run(read)


class _KeptReads:
    """Up to `keep` connections in autocommit, taken and given back without the pool. One unused for `idle` seconds
    is returned to the pool instead (whose ping on checkout then finds out whether the database restarted); one that
    fails with a connection error is dropped and the read repeated on a pooled connection, so a restarted database
    costs no request an error it would not have had anyway. `engine.dispose()` closes them."""

    def __init__(self, engine: DbEngine, *, keep: int, idle: float = 10.0) -> None:
        self.engine = engine
        self.keep = keep
        self.idle = idle
        self._free: list[tuple[Connection, float]] = []  # (connection, given back at), most recent last
        self._open = 0  # kept connections in all, in use or free
        self._lock = threading.Lock()

    def run(self, read: Callable[[Connection], T]) -> T:
        conn = self._take()
        if conn is None:
            with reading(self.engine) as pooled:
                return read(pooled)
        try:
            result = read(conn)
            conn.rollback()  # ends SQLAlchemy's own idea of a transaction; nothing is sent in autocommit
        except BaseException as e:
            unavailable = is_unavailable(e)
            self._drop(conn, invalid=unavailable)
            if not unavailable:
                raise
            with reading(self.engine) as pooled:  # the kept connection is gone (a restart, a failover): once more
                return read(pooled)
        with self._lock:
            self._free.append((conn, time.monotonic()))
        return result

    def _take(self) -> Connection | None:
        now = time.monotonic()
        stale: list[Connection] = []
        conn: Connection | None = None
        with self._lock:
            while self._free:
                candidate, since = self._free.pop()
                if now - since < self.idle:
                    conn = candidate
                    break
                stale.append(candidate)
                self._open -= 1
            opening = conn is None and self._open < self.keep
            if opening:
                self._open += 1
        for old in stale:
            with contextlib.suppress(Exception):
                old.close()
        if not opening:
            return conn
        try:
            return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except BaseException:
            with self._lock:
                self._open -= 1
            return None  # the caller reads through the pool, which reports the failure as `reading` does

    def _drop(self, conn: Connection, *, invalid: bool) -> None:
        with self._lock:
            self._open -= 1
        with contextlib.suppress(Exception):
            conn.invalidate() if invalid else conn.close()

    def close(self) -> None:
        with self._lock:
            free, self._free = self._free, []
            self._open -= len(free)
        for conn, _ in free:
            with contextlib.suppress(Exception):
                conn.invalidate()  # closed for good: `dispose` has already replaced the pool they came from


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # see the "begin" listener above
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def alembic_config(engine: DbEngine) -> Config:
    from alembic.config import Config

    script_location = str(resources.files("odin.controller.store") / "migrations")
    cfg = Config()
    cfg.set_main_option("script_location", script_location)
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: DbEngine) -> None:
    """Bring the schema to the newest revision. Safe to call on every start and from several processes.

    Cheap when there is nothing to apply (one query; Alembic is not even imported) and for a brand-new SQLite file
    (the models' tables, stamped with the head revision); everything else is Alembic's `upgrade head`.
    """
    try:
        if engine.dialect.name == "sqlite" and _is_current(engine):
            return  # the usual start: one read, and no wait for the write lock another process may hold
        if engine.dialect.name == "postgresql":
            _migrate_postgres(engine)
            return
        with engine.connect() as conn:
            # SQLite: take the write lock up front, so two processes opening one new file queue instead of both
            # reading "empty" and deadlocking on their first write (the state is read again under the lock).
            conn.execution_options(**{IMMEDIATE_OPTION: True})
            with conn.begin():
                state = schema_state(conn)
                if state is SchemaState.CURRENT:
                    return
                if state is SchemaState.EMPTY:
                    create_fresh_schema(conn)
                    return
                upgrade_with_alembic(engine, conn)
    except OperationalError as e:
        raise StoreUnavailable(f"cannot migrate {redact_db_url(str(engine.url))}: {first_line(e)}") from e


def _migrate_postgres(engine: DbEngine) -> None:
    """Postgres: Alembic runs each script in a transaction of its own, on a connection outside any transaction, so a
    script may leave its transaction for statements that cannot run in one (`CREATE INDEX CONCURRENTLY`: the online
    index builds of `online_ddl`). Two replicas starting together must not both migrate: a session-level advisory
    lock (not a transaction's, which the first script's commit would release) is held throughout."""
    with engine.connect() as conn:
        _take_migration_lock(conn)
        try:
            state = schema_state(conn)
            conn.commit()
            if state is not SchemaState.CURRENT:
                upgrade_with_alembic(engine, conn)
        finally:
            try:
                conn.rollback()  # whatever a failed script left open, so that the unlock can run
                conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                conn.commit()
            except sa.exc.SQLAlchemyError:
                conn.invalidate()  # a lost connection: its session, and the lock with it, is gone or ends now


MIGRATION_LOCK_POLL = (0.05, 1.0)
"""First and longest pause between tries for the migration lock, in seconds."""


def _take_migration_lock(conn: SaConnection) -> None:
    """The session's migration lock, tried in short transactions rather than waited for in one: a replica blocked in
    `pg_advisory_lock` is a transaction with a snapshot, and the other replica's `CREATE INDEX CONCURRENTLY` waits
    for every such transaction to end, while that one waits for its lock: Postgres then kills one as a deadlock (seen
    with two replicas starting on an empty database, `tests/webhooks/test_replica_race.py`)."""
    pause, longest = MIGRATION_LOCK_POLL
    waited = 0.0
    said = 0.0
    while True:
        taken = conn.execute(sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY}).scalar()
        conn.commit()
        if taken:
            return
        if waited - said >= 10:
            log.info("waiting for another process's migration of the database (%.0f s so far)", waited)
            said = waited
        time.sleep(pause)
        waited += pause
        pause = min(longest, pause * 2)


def _is_current(engine: DbEngine) -> bool:
    with engine.connect() as conn, conn.begin():
        return schema_state(conn) is SchemaState.CURRENT


def upgrade_with_alembic(engine: DbEngine, conn: Connection) -> None:
    """Alembic's `upgrade head` on `conn`: every migration script in turn (what `migrate` falls back to, and what the
    tests use to compare the migrations with the models). In `conn`'s transaction when it is in one (SQLite);
    otherwise each script in a transaction of its own, so a script may build an index concurrently (Postgres)."""
    from alembic import command

    cfg = alembic_config(engine)
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")


def first_line(e: BaseException) -> str:
    """The first line of a database error (its driver's message), for messages a user reads."""
    text = str(getattr(e, "orig", None) or e)
    return text.strip().splitlines()[0] if text.strip() else type(e).__name__
