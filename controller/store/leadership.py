"""Leadership with epochs: who schedules, and the fence that refuses the writes of a leader that no longer does.

A lock alone is not fencing. A leader paused past its lease (SIGSTOP, a long GC pause, a network partition) wakes up
believing it still leads, while another replica has taken over; whatever it writes then races the new leader. So
every acquisition of the `leadership` row adds one to its `epoch`, and the writes that start or change work (the
engine's batches, the sync's new runs, the scheduler's slots) carry the epoch they were decided under and check, in
their own transaction, that it is still the row's (`Fence.hold`). A stale leader's write is refused with
`LeadershipLost` and nothing it would have done after that write happens.

On Postgres the check is one statement, sent with the transaction's first (`SET LOCAL` and `SELECT ... FOR SHARE`
in one round trip): the shared row lock makes a takeover's epoch bump wait until the checked transaction commits, so
a write is either committed before the new leader reads the store or refused. A leader paused *inside* such a
transaction would hold the takeover up; `idle_in_transaction_session_timeout` (the lease's length) ends its session.

`EpochLease` is the Postgres lease: a row with `expires_at` (the database's clock, never a replica's), renewed by the
leader on a connection of its own whose backend pid it records. A follower takes over once the lease has expired, or
at once when that backend is gone (the leader's process or machine died and Postgres closed its connection). On
SQLite (one process by definition, behind an `flock`), `advance_epoch` gives each holder of the file lock a new
epoch, and the fence is a plain read.
"""

from __future__ import annotations

import contextlib
import logging
import re
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from odin.controller.store.db import DbEngine, StoreError, StoreUnavailable
from odin.controller.store.tables import LEADERSHIP
from odin.controller.store.types import utcnow
from odin.controller.store.upsert import insert_on_conflict

log = logging.getLogger(__name__)

SCHEDULER = "scheduler"
"""The role the engine, the pollers and the scheduler run under."""

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")


class LeadershipLost(StoreError):
    """A write was refused: it was decided under a leadership epoch that is no longer current (another replica
    leads now). Nothing of the transaction was written; the caller must stop acting, not retry."""


@dataclass(frozen=True, slots=True)
class Fence:
    """The epoch of one leadership, checked by every write that starts or changes work.

    `idle_timeout` (seconds) bounds how long a transaction that checked the fence may sit idle on Postgres: a leader
    paused mid-transaction would otherwise hold the row lock that a takeover waits on."""

    name: str
    epoch: int
    idle_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"leadership name {self.name!r}: lower-case letters, digits, '-' and '_' only")

    def hold(self, conn: Connection) -> None:
        """Raise `LeadershipLost` unless this epoch is still current; call it first in the write's transaction.

        On Postgres the row stays share-locked until that transaction ends, so no takeover commits in between. The
        statement holds only an integer and a checked name, so it is sent as is: two statements in one round trip
        (drivers bind parameters for one statement only)."""
        if conn.dialect.name == "postgresql":
            idle_ms = max(1000, round(self.idle_timeout * 1000))
            # An integer, and a name checked against _NAME: nothing a caller could inject.
            where = f"name = '{self.name}' AND epoch = {int(self.epoch)}"
            check = f"SELECT epoch FROM leadership WHERE {where} FOR SHARE"  # noqa: S608
            idle = f"SET LOCAL idle_in_transaction_session_timeout = {idle_ms}"
            current = conn.exec_driver_sql(f"{idle}; {check}").scalar()
        else:
            q = sa.select(LEADERSHIP.c.epoch).where(LEADERSHIP.c.name == self.name, LEADERSHIP.c.epoch == self.epoch)
            current = conn.execute(q).scalar()
        if current is None:
            raise LeadershipLost(
                f"leadership {self.name!r} epoch {self.epoch} is over: another replica leads now; this write was "
                "refused and this replica stops scheduling"
            )


def hold(conn: Connection, fence: Fence | None) -> None:
    """`fence.hold(conn)`, or nothing for writes made outside any leadership (tests, `odin run`)."""
    if fence is not None:
        fence.hold(conn)


def _ensure_row(conn: Connection, name: str) -> None:
    conn.execute(
        insert_on_conflict(LEADERSHIP, conn.dialect.name, conflict=("name",), values={"name": name, "epoch": 0})
    )


def advance_epoch(engine: DbEngine, name: str, *, holder: str) -> int:
    """Give a new holder of an exclusive lock (SQLite's file lock) the next epoch; returns it."""
    try:
        with engine.begin() as conn:
            _ensure_row(conn, name)
            stmt = (
                LEADERSHIP.update()
                .where(LEADERSHIP.c.name == name)
                .values(epoch=LEADERSHIP.c.epoch + 1, holder=holder[:300], acquired_at=utcnow(), expires_at=None)
                .returning(LEADERSHIP.c.epoch)
            )
            return int(conn.execute(stmt).scalar_one())
    except OperationalError as e:
        raise StoreUnavailable(f"cannot record the leadership epoch: {e.orig}") from e


def current_epoch(engine: DbEngine, name: str = SCHEDULER) -> int | None:
    """The epoch of the latest leadership (None before the first); for tests and diagnostics."""
    with engine.connect() as conn:
        value = conn.execute(sa.select(LEADERSHIP.c.epoch).where(LEADERSHIP.c.name == name)).scalar()
    return None if value is None else int(value)


_TAKE = sa.text(
    """
    UPDATE leadership
       SET epoch = epoch + 1, holder = :holder, backend_pid = pg_backend_pid(), acquired_at = now(),
           expires_at = now() + make_interval(secs => :ttl)
     WHERE name = :name
       AND (expires_at IS NULL OR expires_at < now() OR backend_pid IS NULL
            OR NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = leadership.backend_pid))
    RETURNING epoch
    """
)
_RENEW = sa.text(
    """
    UPDATE leadership SET expires_at = now() + make_interval(secs => :ttl), backend_pid = pg_backend_pid()
     WHERE name = :name AND epoch = :epoch
    RETURNING epoch
    """
)
_RELEASE = sa.text(
    "UPDATE leadership SET expires_at = now() - interval '1 second', backend_pid = NULL "
    "WHERE name = :name AND epoch = :epoch"
)


class EpochLease:
    """The Postgres lease of one leadership role, with an epoch per acquisition. Not thread-safe: one owner (the
    elector) calls it.

    `ttl` is how long the lease lasts without renewal: a follower takes over a leader that stopped renewing (paused,
    partitioned) `ttl` seconds after its last renewal, and one whose connection is gone (died) at its next try. The
    owner renews (`held`) well within `ttl`.
    """

    def __init__(self, engine: DbEngine, name: str = SCHEDULER, *, ttl: float, holder: str) -> None:
        if ttl <= 0:
            raise ValueError("the lease must last more than 0 seconds")
        self.engine = engine
        self.name = name
        self.ttl = ttl
        self.holder = holder
        self._conn: Connection | None = None
        self._fence: Fence | None = None
        self._holding = False
        self._row_ensured = False

    @property
    def fence(self) -> Fence | None:
        """The fence of this lease's latest leadership; it stays after the leadership is lost, so that a write still
        in flight is refused rather than made unfenced."""
        return self._fence

    def try_acquire(self) -> bool:
        """True if this lease leads now (taken now, or still held and renewed); `StoreUnavailable` if the database
        cannot be reached."""
        if self._holding:
            return self.held()
        try:
            conn = self._connection()
            if not self._row_ensured:
                with conn.begin():
                    _ensure_row(conn, self.name)
                self._row_ensured = True
            with conn.begin():
                # A paused leader's open transaction may share-lock the row: do not wait on it here (it is ended by
                # its idle timeout, and the next try gets through).
                conn.exec_driver_sql("SET LOCAL lock_timeout = 2000")
                epoch = conn.execute(_TAKE, {"holder": self.holder[:300], "ttl": self.ttl, "name": self.name}).scalar()
        except OperationalError as e:
            self._drop_connection()
            if "lock timeout" in str(e.orig):
                return False
            raise StoreUnavailable(f"cannot take the leader lease: {e.orig}") from e
        if epoch is None:
            return False
        self._fence = Fence(self.name, int(epoch), idle_timeout=self.ttl)
        self._holding = True
        log.info("leadership %r taken: epoch %d, lease %.1f s", self.name, epoch, self.ttl)
        return True

    def held(self) -> bool:
        """Renew the lease; False (and no longer held) if another replica took it over or the database cannot be
        reached: the caller stops scheduling, and the fence refuses whatever it still tries to write."""
        if not self._holding or self._fence is None:
            return False
        try:
            conn = self._connection()
            with conn.begin():
                renewed = conn.execute(
                    _RENEW, {"ttl": self.ttl, "name": self.name, "epoch": self._fence.epoch}
                ).scalar()
        except Exception as e:
            log.error("cannot renew the leader lease (%s): stepping down", e)
            self._holding = False
            self._drop_connection()
            return False
        if renewed is None:
            log.error("leadership %r epoch %d was taken over by another replica", self.name, self._fence.epoch)
            self._holding = False
            return False
        return True

    def release(self) -> None:
        """Let a follower take over at its next try (a graceful stop)."""
        if self._holding and self._fence is not None:
            with contextlib.suppress(Exception):
                conn = self._connection()
                with conn.begin():
                    conn.execute(_RELEASE, {"name": self.name, "epoch": self._fence.epoch})
                log.info("leadership %r epoch %d released", self.name, self._fence.epoch)
        self._holding = False
        self._drop_connection()

    def _connection(self) -> Connection:
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self.engine.connect()
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


def supports_epoch_leases(engine: DbEngine) -> bool:
    """Whether this database hands out `EpochLease`s (Postgres does; SQLite, one machine by definition, does not)."""
    return engine.dialect.name == "postgresql"
