"""Reads on the event loop (`controller/store/loop_reads.py`): the same rows as the threaded read, on Postgres only,
and every case it does not take handed back (None) rather than answered differently."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from odin.api.services import runs as run_service
from odin.controller.store import loop_reads, run_queries
from odin.controller.store.db import InvalidText, create_db_engine, migrate, transaction
from odin.controller.store.models import REPOSITORIES
from odin.controller.store.runs import NewRun, create_run
from odin.controller.store.types import utcnow
from odin.controller.vocabulary import Trigger
from odin.schema.model import PipelineSpec, TaskSpec
from tests.conftest import _truncate_all

pytestmark = pytest.mark.postgres

SPEC = PipelineSpec(name="p", tasks=(TaskSpec("a", "x", ("true",)),))


def sha_of(i: int) -> str:
    return hashlib.sha1(str(i).encode()).hexdigest()


def seed(db: Engine) -> None:
    """Three runs on each of 5 commits, over two pipelines and branches, one of them rejected (failed, with its
    message and reason)."""
    with transaction(db) as conn:
        repo = conn.execute(
            REPOSITORIES.insert().values(name="r", url="file:///r", branch="main").returning(REPOSITORIES.c.id)
        ).scalar_one()
        for i in range(5):
            for j in range(3):
                create_run(
                    conn,
                    NewRun(
                        pipeline=f"p{j % 2}",
                        spec=SPEC,
                        trigger=Trigger.POLL if j else Trigger.API,
                        params={},
                        commit_sha=sha_of(i),
                        branch="main" if j < 2 else "dev",
                        repo_id=repo,
                        triggered_by="alice" if j == 1 else None,
                        rejected="refused: ünïcode" if j == 2 else None,  # a message, a reason, a finished time
                    ),
                )


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Engine]:
    """The session's Postgres database, emptied and seeded (reads on the loop are Postgres's)."""
    engine = create_db_engine(postgres_url)
    _truncate_all(engine)
    seed(engine)
    yield engine
    engine.dispose()


def on_loop(db: Engine, query: run_queries.RunQuery, **kwargs: Any) -> list[run_queries.RunSummaryRow] | None:
    async def read() -> list[run_queries.RunSummaryRow] | None:
        return await run_queries.list_runs_on_loop(db, query, limit=kwargs.pop("limit", 50), **kwargs)

    return asyncio.run(read())


QUERIES = [
    run_queries.RunQuery(commit=sha_of(2)),
    run_queries.RunQuery(commit=sha_of(3)[:7]),
    run_queries.RunQuery(commit=sha_of(3)[:7], pipeline="p1"),
    run_queries.RunQuery(branch="dev"),
    run_queries.RunQuery(triggered_by="alice"),
    run_queries.RunQuery(),
    run_queries.RunQuery(commit="0" * 40),  # no run
]


@pytest.mark.parametrize("query", QUERIES, ids=lambda q: repr(q)[9:60])
def test_the_rows_are_those_of_the_threaded_read(pg: Engine, query: run_queries.RunQuery) -> None:
    threaded = run_queries.list_runs(pg, query, limit=50)
    assert on_loop(pg, query) == threaded
    if query.commit and len(query.commit) == 40 and query.commit != "0" * 40:
        assert len(threaded) == 3


def test_times_are_bound_and_read_back_as_the_store_types_them(pg: Engine) -> None:
    """`UTCDateTime` on both sides: a timezone-aware bound parameter (the cursor), aware values read back."""
    everything = run_queries.list_runs(pg, run_queries.RunQuery(), limit=50)
    cursor = (everything[6].created_at, everything[6].id)
    after = run_queries.list_runs(pg, run_queries.RunQuery(), limit=4, after=cursor)
    assert on_loop(pg, run_queries.RunQuery(), limit=4, after=cursor) == after
    assert after and all(r.created_at.tzinfo is not None for r in after)
    window = run_queries.RunQuery(created_after=utcnow() - timedelta(hours=1), created_before=utcnow())
    assert on_loop(pg, window) == run_queries.list_runs(pg, window, limit=50)


def test_a_page_through_the_service_is_the_same_page(pg: Engine) -> None:
    f = run_service.RunFilter(pipeline="p0")
    first = run_service.list_runs(pg, f, limit=4, cursor=None)
    assert asyncio.run(run_service.list_runs_on_loop(pg, f, limit=4, cursor=None)) == first
    assert first.next_cursor is not None
    second = run_service.list_runs(pg, f, limit=4, cursor=first.next_cursor)
    assert asyncio.run(run_service.list_runs_on_loop(pg, f, limit=4, cursor=first.next_cursor)) == second


def test_sqlite_is_left_to_the_threaded_read(tmp_path: Path) -> None:
    db = create_db_engine(f"sqlite:///{tmp_path / 'odin.db'}")
    migrate(db)
    seed(db)
    assert run_queries.list_runs(db, run_queries.RunQuery(commit=sha_of(1)), limit=5)
    assert on_loop(db, run_queries.RunQuery(commit=sha_of(1))) is None
    db.dispose()


def test_lists_of_values_and_text_with_nul_are_left_to_the_threaded_read(pg: Engine) -> None:
    assert on_loop(pg, run_queries.RunQuery(status=["pending"])) is None  # an expanding IN parameter
    assert on_loop(pg, run_queries.RunQuery(pipeline="p\x00")) is None  # the threaded read refuses it: InvalidText
    with pytest.raises(InvalidText):
        run_queries.list_runs(pg, run_queries.RunQuery(pipeline="p\x00"), limit=5)


def test_connections_are_kept_reused_and_closed_by_dispose(pg: Engine) -> None:
    async def reads() -> set[int]:
        backends: set[int] = set()
        for _ in range(5):
            assert await run_queries.list_runs_on_loop(pg, run_queries.RunQuery(commit=sha_of(1)), limit=5)
            backends |= await _backend_pids(pg)
        return backends

    async def run() -> None:
        assert len(await reads()) == 1  # one read at a time: one connection, kept
        kept = _kept(pg)
        assert len(kept) == 1 and not kept[0].closed
        pg.dispose()
        assert kept[0].closed
        assert await run_queries.list_runs_on_loop(pg, run_queries.RunQuery(commit=sha_of(1)), limit=5)

    asyncio.run(run())


def test_no_more_than_keep_connections_and_the_rest_go_the_threaded_way(pg: Engine) -> None:
    statement = sa.select(sa.func.pg_sleep(0.2), sa.literal_column("1").label("one"))

    async def run() -> list[Any]:
        return await asyncio.gather(*(loop_reads.fetch(pg, statement, {}) for _ in range(loop_reads.KEEP + 3)))

    results = asyncio.run(run())
    assert sum(r is not None for r in results) == loop_reads.KEEP
    assert sum(r is None for r in results) == 3


def test_a_failed_connection_hands_the_read_back_and_is_replaced(pg: Engine) -> None:
    query = run_queries.RunQuery(commit=sha_of(4))
    expected = run_queries.list_runs(pg, query, limit=50)

    async def run() -> None:
        assert await run_queries.list_runs_on_loop(pg, query, limit=50) == expected
        (conn,) = _kept(pg)
        with pg.connect() as admin:  # the server ends that backend, as a restart or failover would
            admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": conn.info.backend_pid})
        assert await run_queries.list_runs_on_loop(pg, query, limit=50) is None  # read again in a thread
        assert await run_queries.list_runs_on_loop(pg, query, limit=50) == expected  # on a new connection

    asyncio.run(run())


def test_a_read_cancelled_mid_way_closes_its_connection(pg: Engine) -> None:
    statement = sa.select(sa.func.pg_sleep(5))

    async def run() -> None:
        read = asyncio.create_task(loop_reads.fetch(pg, statement, {}))
        while not _busy(pg):
            await asyncio.sleep(0.01)
        read.cancel()
        with pytest.raises(asyncio.CancelledError):
            await read
        assert _kept(pg) == []
        assert await run_queries.list_runs_on_loop(pg, run_queries.RunQuery(commit=sha_of(0)), limit=5)

    asyncio.run(asyncio.wait_for(run(), 4))  # well before pg_sleep(5) would have answered


def _connections(pg: Engine) -> Any:
    return loop_reads._pools(pg)[asyncio.get_running_loop()]


def _kept(pg: Engine) -> list[Any]:
    return [conn for conn, _ in _connections(pg)._free]


def _busy(pg: Engine) -> bool:
    connections = loop_reads._pools(pg).get(asyncio.get_running_loop())
    return connections is not None and connections._open == 1 and not connections._free


async def _backend_pids(pg: Engine) -> set[int]:
    return {conn.info.backend_pid for conn in _kept(pg)}


def test_the_driver_is_psycopg2_in_asynchronous_mode(pg: Engine) -> None:
    async def run() -> None:
        await run_queries.list_runs_on_loop(pg, run_queries.RunQuery(commit=sha_of(0)), limit=5)
        (conn,) = _kept(pg)
        assert isinstance(conn, psycopg2.extensions.connection) and conn.async_ == 1

    asyncio.run(run())
