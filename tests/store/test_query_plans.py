"""The pages users wait on, and run creation, read through an index on Postgres: none of them scans a table that grows
with use (issue 15 item 5; the figures at scale are `benchmarks/bench_store_scale.py`'s).

The tables here are tiny, where a sequential scan is the planner's honest choice, so each statement is explained with
`enable_seqscan = off`: a statement that *can* use an index then does, and one that cannot still shows its Seq Scan.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from odin.api.console import views
from odin.api.services import runs as run_service
from odin.controller.store.db import transaction
from odin.controller.store.models import COMMITS, REPOSITORIES
from odin.controller.store.runs import NewRun, create_run
from odin.controller.vocabulary import Trigger
from odin.schema.model import PipelineSpec, TaskSpec

SPEC = PipelineSpec(name="p", tasks=(TaskSpec("a", "x", ("true",)), TaskSpec("b", "x", ("true",), depends=("a",))))
GROWING = ("runs", "task_runs", "events", "commits")


@contextmanager
def statements(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


def scans(engine: Engine, call: Callable[[], object]) -> list[str]:
    """The reads of whole growing tables in the plans of what `call` reads: a Seq Scan, or an index read from end to
    end (no Index Cond) other than in order under a LIMIT with nothing to filter (a page of the newest, which stops
    after its rows; a later page must start the index at its cursor, not filter its way there)."""
    with statements(engine) as seen:
        call()
    found = []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET enable_seqscan = off")
        for statement, parameters in seen:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            cursor.execute("EXPLAIN (FORMAT JSON) " + statement, parameters)
            plan = cursor.fetchone()[0][0]["Plan"]
            found += [f"{why}: {' '.join(statement.split())[:100]}" for why in _whole_reads(plan, limited=False)]
        raw.rollback()
    finally:
        raw.close()
    return found


def _whole_reads(node: dict[str, Any], *, limited: bool) -> Iterator[str]:
    table = node.get("Relation Name")
    kind = node["Node Type"]
    if table in GROWING:
        if kind == "Seq Scan":
            yield f"Seq Scan on {table}"
        elif (
            kind in ("Index Scan", "Index Only Scan") and "Index Cond" not in node and (not limited or "Filter" in node)
        ):
            yield f"{kind} of all of {node.get('Index Name')} on {table}"
    if kind == "Bitmap Index Scan" and "Index Cond" not in node:  # names its index only
        yield f"Bitmap Index Scan of all of {node.get('Index Name')}"
    for child in node.get("Plans", []):
        yield from _whole_reads(child, limited=limited or kind == "Limit")


@pytest.fixture
def pg(db: Engine) -> Engine:
    if db.dialect.name != "postgresql":
        pytest.skip("query plans are Postgres's")
    return db


def sha_of(i: int) -> str:
    return hashlib.sha1(str(i).encode()).hexdigest()


def seed(db: Engine) -> str:
    with transaction(db) as conn:
        repo = conn.execute(
            REPOSITORIES.insert().values(name="r", url="file:///r", branch="main").returning(REPOSITORIES.c.id)
        ).scalar_one()
        for i in range(1, 30):
            sha = sha_of(i)
            conn.execute(COMMITS.insert().values(repo_id=repo, sha=sha, message=f"change {i}"))
            run_id = create_run(
                conn, NewRun(pipeline="p", spec=SPEC, trigger=Trigger.POLL, params={}, commit_sha=sha, repo_id=repo)
            ).run_id
    with db.connect() as conn:
        conn.execute(sa.text("ANALYZE"))
    return run_id


def test_runs_by_commit_read_an_index(pg: Engine) -> None:
    seed(pg)
    sha = sha_of(7)
    assert scans(pg, lambda: run_service.list_runs(pg, run_service.RunFilter(commit=sha), limit=50, cursor=None)) == []
    assert scans(pg, lambda: run_service.runs_of_commit(pg, sha)) == []


def test_a_runs_page_reads_an_index(pg: Engine) -> None:
    run_id = seed(pg)
    assert scans(pg, lambda: run_service.get_run(pg, run_id)) == []
    assert scans(pg, lambda: run_service.run_tasks(pg, run_id, run_service.task_query(), limit=100, cursor=None)) == []
    assert scans(pg, lambda: run_service.run_events(pg, run_id, task=None, after=None, limit=100)) == []


def test_the_commit_timeline_reads_an_index(pg: Engine) -> None:
    seed(pg)
    first = views.timeline(pg, views.CommitFilter(), cursor=None, limit=10)
    assert first.next_cursor is not None
    assert scans(pg, lambda: views.timeline(pg, views.CommitFilter(), cursor=None, limit=10)) == []
    assert scans(pg, lambda: views.timeline(pg, views.CommitFilter(), cursor=first.next_cursor, limit=10)) == []


def test_creating_a_run_does_not_read_every_run(pg: Engine) -> None:
    """The run id's sequence number is counted among the commit's runs, not by a LIKE over every run's id."""
    seed(pg)

    def create() -> None:
        with transaction(pg) as conn:
            new = NewRun(pipeline="p", spec=SPEC, trigger=Trigger.MANUAL, params={}, commit_sha=sha_of(3))
            assert create_run(conn, new).run_id == f"p-{sha_of(3)[:7]}-2"

    assert scans(pg, create) == []
