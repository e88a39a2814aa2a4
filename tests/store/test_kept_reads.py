"""`read_once`: the API's busiest reads on connections kept aside from the pool (Postgres), which must never turn a
database restart into an error the pool's ping would have avoided, nor outlive the engine."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from odin.controller.store.db import _KEPT_READS, Connection, create_db_engine, read_once
from tests.support.wait import wait_until


def backend_pid(conn: Connection) -> int:
    return int(conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def test_reads_reuse_a_kept_connection_outside_a_transaction(db: Engine) -> None:
    if db.dialect.name != "postgresql":
        assert read_once(db, lambda conn: conn.execute(sa.text("SELECT 1")).scalar_one()) == 1  # through the pool
        return
    first = read_once(db, backend_pid)
    assert read_once(db, backend_pid) == first, "the same connection, not one from the pool each time"
    assert read_once(db, lambda conn: conn.execute(sa.text("SELECT now() = statement_timestamp()")).scalar_one()), (
        "autocommit: the statement is its own transaction (no BEGIN sent before it)"
    )


def test_a_kept_connection_that_died_costs_no_error(db: Engine, postgres_admin_url: str) -> None:
    if db.dialect.name != "postgresql":
        return
    pid = read_once(db, backend_pid)
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:  # what a database restart or a failover does to it
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        admin.dispose()
    again = read_once(db, backend_pid)  # repeated on a pooled (pinged) connection instead of failing
    assert again != pid
    assert read_once(db, backend_pid) != pid


def test_an_idle_kept_connection_goes_back_to_the_pool_and_dispose_closes_them(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        return
    engine = create_db_engine(db_url)
    try:
        kept = engine.__dict__[_KEPT_READS]
        first = read_once(engine, backend_pid)
        kept.idle = 0.0  # every kept connection is now stale: given back to the pool, a new one opened
        second = read_once(engine, backend_pid)
        assert kept._open == 1, "the stale connection no longer counts as kept"
        assert engine.pool.checkedout() == 1, "only the new kept connection is out of the pool"  # type: ignore[attr-defined]
        kept.idle = 60.0
        assert read_once(engine, backend_pid) == second
        engine.dispose()
        assert kept._open == 0 and not kept._free
        admin = create_db_engine(db_url)
        try:

            def closed() -> bool:  # a backend leaves pg_stat_activity a moment after its client hung up
                with admin.connect() as conn:
                    alive = set(conn.execute(sa.text("SELECT pid FROM pg_stat_activity")).scalars())
                return first not in alive and second not in alive

            wait_until(closed, 10, message="dispose closed the kept connections")
        finally:
            admin.dispose()
    finally:
        engine.dispose()
