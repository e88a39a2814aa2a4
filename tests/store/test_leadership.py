"""Leadership epochs and the fence (issue 14 item 4), on SQLite and real Postgres.

A stale epoch's engine batch, sync record or scheduled slot is refused with `LeadershipLost` and writes nothing; on
Postgres the lease is taken over when it expires (a paused leader) or at once when the leader's connection is gone
(a dead one), and a takeover waits for, or outlives, a transaction that checked the old epoch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from odin.controller.store.db import create_db_engine, transaction
from odin.controller.store.leadership import (
    SCHEDULER,
    EpochLease,
    Fence,
    LeadershipLost,
    advance_epoch,
    current_epoch,
)
from odin.controller.store.runs import EVENTS, WriteBatch, write_batch
from tests.support.wait import wait_until


def _event_count(db: Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(EVENTS)).scalar_one())


def _batch() -> WriteBatch:
    batch = WriteBatch()
    batch.event("test.fenced")
    return batch


def test_each_holder_gets_a_new_epoch_and_a_stale_one_writes_nothing(db: Engine) -> None:
    first = advance_epoch(db, SCHEDULER, holder="a")
    second = advance_epoch(db, SCHEDULER, holder="b")
    assert second == first + 1 == current_epoch(db)
    write_batch(db, _batch(), fence=Fence(SCHEDULER, second))
    assert _event_count(db) == 1
    with pytest.raises(LeadershipLost, match=f"epoch {first} is over"):
        write_batch(db, _batch(), fence=Fence(SCHEDULER, first))
    assert _event_count(db) == 1, "the refused batch wrote nothing"


def test_a_fence_name_is_checked() -> None:
    with pytest.raises(ValueError, match="leadership name"):
        Fence("x'; DROP TABLE runs; --", 1)


# -- the Postgres lease --------------------------------------------------------------------------------------------


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Engine]:
    """The session's Postgres database with no leadership and no events (SQLite's leadership is a file lock)."""
    engine = create_db_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM leadership"))
        conn.execute(sa.text("DELETE FROM events"))
    yield engine
    engine.dispose()


def _lease(url: sa.URL, holder: str, ttl: float) -> tuple[EpochLease, Engine]:
    engine = create_db_engine(url.render_as_string(hide_password=False))
    return EpochLease(engine, SCHEDULER, ttl=ttl, holder=holder), engine


@pytest.mark.postgres
def test_a_dead_leaders_lease_is_taken_over_at_once(pg: Engine) -> None:
    a, a_db = _lease(pg.url, "a", ttl=60)
    b, b_db = _lease(pg.url, "b", ttl=60)
    try:
        assert a.try_acquire()
        assert a.fence is not None
        assert not b.try_acquire(), "a live leader keeps its lease"
        assert a.try_acquire() and a.held(), "the leader renews"
        with pg.begin() as conn:  # the leader's connection dies with its process
            pid = conn.execute(sa.text("SELECT backend_pid FROM leadership WHERE name = 'scheduler'")).scalar_one()
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

        def gone() -> bool:  # pg_terminate_backend only signals: the backend leaves pg_stat_activity a moment later
            with pg.connect() as conn:
                return not conn.execute(sa.text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}).all()

        wait_until(gone, 10, message="the terminated backend is gone")
        started = time.monotonic()
        assert b.try_acquire(), "no need to wait 60 s for a lease whose holder is gone"
        assert time.monotonic() - started < 5
        assert b.fence is not None and b.fence.epoch == a.fence.epoch + 1
        assert not a.held(), "the old leader learns it lost"
        with pytest.raises(LeadershipLost):
            write_batch(a_db, _batch(), fence=a.fence)
        write_batch(b_db, _batch(), fence=b.fence)
        assert _event_count(pg) == 1
    finally:
        a.release()
        b.release()
        a_db.dispose()
        b_db.dispose()


@pytest.mark.postgres
def test_a_paused_leaders_lease_expires_and_its_writes_are_refused(pg: Engine) -> None:
    a, a_db = _lease(pg.url, "a", ttl=1)
    b, b_db = _lease(pg.url, "b", ttl=1)
    try:
        assert a.try_acquire()
        assert not b.try_acquire()
        # `a` stops renewing (paused) but keeps its connection: `b` takes over once the lease expires.
        wait_until(b.try_acquire, 10, interval=0.1, message="the follower takes the expired lease")
        assert a.fence is not None and b.fence is not None and b.fence.epoch == a.fence.epoch + 1
        with pytest.raises(LeadershipLost):
            write_batch(a_db, _batch(), fence=a.fence)
        assert not a.held(), "renewing a lease taken over fails"
        assert b.held()
    finally:
        a.release()
        b.release()
        a_db.dispose()
        b_db.dispose()


@pytest.mark.postgres
def test_release_hands_over_at_once(pg: Engine) -> None:
    a, a_db = _lease(pg.url, "a", ttl=60)
    b, b_db = _lease(pg.url, "b", ttl=60)
    try:
        assert a.try_acquire()
        a.release()
        assert b.try_acquire(), "a released lease is free without waiting for its expiry"
    finally:
        a.release()
        b.release()
        a_db.dispose()
        b_db.dispose()


@pytest.mark.postgres
def test_a_takeover_outlives_a_write_paused_inside_its_transaction(pg: Engine) -> None:
    """The old leader checked its fence and then stalled mid-transaction: the takeover waits for the row lock, the
    stalled session is ended by its idle timeout (the lease's length), and its write never lands."""
    a, a_db = _lease(pg.url, "a", ttl=1)
    b, b_db = _lease(pg.url, "b", ttl=1)
    stalled = threading.Event()
    resume = threading.Event()
    outcome: list[BaseException | None] = []

    def stalled_write() -> None:
        try:
            with transaction(a_db) as conn:
                assert a.fence is not None
                a.fence.hold(conn)
                stalled.set()
                resume.wait(20)
                conn.execute(EVENTS.insert().values(kind="stale", time=sa.func.now(), data={}))
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    try:
        assert a.try_acquire()
        writer = threading.Thread(target=stalled_write)
        writer.start()
        assert stalled.wait(10)
        wait_until(b.try_acquire, 15, interval=0.2, message="the follower takes over despite the stalled write")
        resume.set()
        writer.join(10)
        assert outcome and outcome[0] is not None, "the stalled transaction could not commit"
        assert _event_count(pg) == 0
    finally:
        resume.set()
        a.release()
        b.release()
        a_db.dispose()
        b_db.dispose()
