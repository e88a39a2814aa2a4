"""A store that has grown for a year: the read paths users wait on and the engine's writes, on a big Postgres.

Targets (issue 15 item 5): with 1,000,000 runs, 10,000,000 task runs and 50,000,000 events in Postgres,
runs-by-commit p99 <= 15 ms, a run's page p99 <= 30 ms, a page of the commit timeline <= 50 ms (the first and a deep
one), and the engine's write path (a run's transitions) costing what it costs on an empty store.

What it does:
1. starts a **private** PostgreSQL from the installed binaries in a temporary directory (never the shared server),
   creates the schema with the real migrations up to `--before` (default 0022, the revision before this issue's
   indexes), and fills it server-side (`INSERT ... SELECT generate_series`) with a year of realistic shapes: 20
   repositories, 500 pipelines of which a few are hot (a cubed uniform draw picks the pipeline), a commit per three
   runs spread over 365 days, 1 to 19 tasks per run (10 on average), 3 events per run and 4-5 per task, in time order.
   The secondary indexes are dropped during the fill and rebuilt from their own definitions afterwards (same schema,
   a faster fill), then VACUUM ANALYZE;
2. measures through the real functions the API and the console call (`api.services.runs.list_runs` with a full SHA
   and a 7-digit prefix, `runs_of_commit`, `get_run` + `run_tasks` as `GET /v1/runs/{id}` and `/tasks` answer, the
   console's `run_view`, its `timeline` on the first page and on a deep page reached by its keyset cursor) at random
   commits and runs: p50 / p99 of `--samples` calls each; and the engine's `write_batch` for a run's transitions
   (create a 10-task run, then starting / running / succeeded for each task, as the engine commits them) on the big
   store and on an empty database of the same server;
3. prints `EXPLAIN (ANALYZE, BUFFERS)` of the statements behind any measurement over its target (`--explain all`:
   of every measured path);
4. migrates to head while a writer keeps recording transitions (the online index builds of migration 0023), prints
   how long the migration took and the writer's slowest commit during it, and measures everything again ("after");
5. runs the events retention (keep 180 days: about half of the events go) for `--retention-seconds`, as the
   leader's worker does, and measures the engine's write path meanwhile.
The load average is printed before and after each phase: on a shared machine the figures move with it.

    .venv/bin/python benchmarks/bench_store_scale.py [--runs 1000000] [--samples 300] [--before 0022]
        [--explain slow|all|none] [--retention-seconds 30] [--keep]
A quick check: `--runs 20000` (about a minute); the figures printed say which scale they come from.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from odin.api.console import views
from odin.api.services import runs as run_service
from odin.api.services.pagination import encode_cursor
from odin.controller.history_retention import HistoryPolicy, PruneReport, prune_once
from odin.controller.store.db import alembic_config, create_db_engine, migrate
from odin.controller.store.runs import NewRun, WriteBatch, create_run, write_batch
from odin.controller.vocabulary import Trigger
from odin.schema.model import PipelineSpec, TaskSpec

BIG_TABLES = ("runs", "task_runs", "events", "commits")
TARGETS_MS = {"runs by commit": 15.0, "run page": 30.0, "timeline": 50.0}


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


# -- a private server ---------------------------------------------------------------------------------------------


class Server:
    """initdb + pg_ctl in a temporary directory (as the `postgres` user when run as root: Postgres refuses root)."""

    def __init__(self, base: Path, port: int) -> None:
        found = shutil.which("pg_ctl") or next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))), None)
        if found is None:
            sys.exit("no PostgreSQL server binaries (pg_ctl) installed: this benchmark needs a private server")
        self.bin, self.base, self.port = Path(found).parent, base, port
        self.data = base / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd

            pg = pwd.getpwnam("postgres")
            os.chown(base, pg.pw_uid, pg.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_user, *args], check=True, capture_output=True, timeout=600)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")

    def start(self, *, fill: bool) -> None:
        """`fill`: no fsync while loading (what a restore would do); measured with the server's normal durability."""
        options = [
            f"-p {self.port}",
            f"-k {self.base}",
            "-c listen_addresses=127.0.0.1",
            "-c shared_buffers=512MB",
            "-c maintenance_work_mem=512MB",
            "-c max_wal_size=8GB",
            "-c checkpoint_timeout=30min",
        ]
        if fill:
            options += ["-c fsync=off", "-c full_page_writes=off", "-c synchronous_commit=off", "-c autovacuum=off"]
        pg_ctl = str(self.bin / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.data), "-o", " ".join(options), "-l", str(self.base / "log"), "-w", "start")

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
            check=False,
            capture_output=True,
            timeout=600,
        )


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the fill -----------------------------------------------------------------------------------------------------

SPEC_JSON = (
    '{"name": "p", "tasks": ['
    + ", ".join(f'{{"name": "t{i}", "image": "python:3.12", "command": ["python3", "step.py"]}}' for i in range(10))
    + "]}"
)

FILL = [
    # repositories and commits: a commit per three runs, seen over the last year, oldest first (ids follow seen_at)
    """INSERT INTO repositories (name, url, branch, poll_interval, run_policy, conditions, created_at, enabled,
         origin)
       SELECT 'repo-' || g, 'https://git.example.com/team/repo-' || g || '.git', 'main', 30, 'latest', '[]',
              now() - interval '400 days', true, 'api'
       FROM generate_series(1, 20) g""",
    """INSERT INTO commits (repo_id, sha, branch, parents, author_name, author_email, message, committed_at, seen_at,
         validation, problems, pipelines_changed)
       SELECT 1 + (g % 20), md5(g::text) || substr(md5((g + 1)::text), 1, 8), 'main', '[]',
              'Author ' || (g % 97), 'author' || (g % 97) || '@example.com',
              'Change ' || g || E'\n\nA longer body explaining the change.',
              now() - interval '365 days' + (g * interval '365 days' / :commits),
              now() - interval '365 days' + (g * interval '365 days' / :commits) + interval '5 seconds',
              CASE WHEN g % 50 = 0 THEN 'invalid' ELSE 'valid' END, '[]',
              jsonb_build_array('pipelines/p' || floor(500 * power(((g::bigint * 7919) % 1000) / 1000.0, 3))::int)
       FROM generate_series(1, :commits) g""",
    # runs: three per commit on average (a commit changes one to five pipelines); hot pipelines by a cubed draw
    """INSERT INTO runs (id, repo_id, pipeline, commit_sha, branch, trigger, params, spec, status, cancel_requested,
         no_cache, absorbed_commits, conditions, created_at, started_at, finished_at, priority, dedupe_key)
       SELECT 'p' || r.p || '-' || substr(c.sha, 1, 7) || '-' || r.g, c.repo_id, 'pipelines/p' || r.p, c.sha,
              'main', CASE WHEN r.g % 10 < 7 THEN 'poll' WHEN r.g % 10 < 9 THEN 'webhook' ELSE 'api' END,
              '{"epochs": "10"}', CAST(:spec AS jsonb),
              CASE WHEN r.g % 100 < 85 THEN 'succeeded' WHEN r.g % 100 < 97 THEN 'failed' ELSE 'cancelled' END,
              false, false, '[]', '[]', c.seen_at + interval '2 seconds', c.seen_at + interval '3 seconds',
              c.seen_at + interval '20 minutes', 0, NULL
       FROM (SELECT g, floor(500 * power(random(), 3))::int AS p,
                    1 + floor((g - 1) / 3.0 + (random() - 0.5) * 2)::int AS cid
             FROM generate_series(1, :runs) g) r
       JOIN commits c ON c.id = greatest(1, least(:commits, r.cid))""",
    # task runs: 1 to 19 per run (10 on average), succeeded with timestamps, logs on disk
    """INSERT INTO task_runs (run_id, name, status, attempt, user_failures, infra_failures, exit_code, gpus,
         log_path, started_at, finished_at)
       SELECT r.id, 't' || t, CASE WHEN r.status = 'succeeded' THEN 'succeeded' ELSE 'failed' END, 1, 0, 0, 0, '[]',
              '/data/tasks/' || r.id || '/t' || t || '.1.log', r.started_at + t * interval '1 minute',
              r.started_at + (t + 1) * interval '1 minute'
       FROM runs r, generate_series(1, 1 + (abs(hashtext(r.id)) % 19)) t""",
    # events, in time order like the engine writes them (ids follow time, which retention relies on): per run, in the
    # runs' order, its creation and start, 4 or 5 per task (the tasks counted as above, from the run's id), its end
    """INSERT INTO events (time, kind, repo_id, commit_sha, run_id, task, data)
       SELECT e.time, e.kind, r.repo_id, r.commit_sha, r.id, e.task, e.data
       FROM runs r CROSS JOIN LATERAL (
         SELECT r.created_at + k * interval '1 second' AS time,
                CASE k WHEN 0 THEN 'run.created' ELSE 'run.status' END AS kind, NULL::varchar AS task,
                jsonb_build_object('status', 'running', 'pipeline', r.pipeline) AS data
         FROM generate_series(0, 1) k
         UNION ALL
         SELECT r.started_at + t * interval '1 minute' + k * interval '5 seconds', 'task.status', 't' || t,
                jsonb_build_object('status', (ARRAY['pending', 'starting', 'running', 'succeeded', 'succeeded'])[k + 1],
                                   'attempt', 1, 'node', 'node-' || (t % 40))
         FROM generate_series(1, 1 + (abs(hashtext(r.id)) % 19)) t, generate_series(0, 3 + (t % 2)) k
         UNION ALL
         SELECT r.finished_at, 'run.status', NULL, jsonb_build_object('status', r.status, 'pipeline', r.pipeline)
       ) e""",
]


def fill(url: str, runs: int) -> None:
    engine = sa.create_engine(url)
    commits = max(1, runs // 3)
    with engine.begin() as conn:
        indexes = conn.execute(
            sa.text(
                "SELECT i.indexname, i.indexdef FROM pg_indexes i JOIN pg_class c ON c.relname = i.indexname "
                "JOIN pg_index x ON x.indexrelid = c.oid WHERE i.tablename = ANY(:t) AND NOT x.indisprimary "
                "AND NOT x.indisunique"
            ),
            {"t": list(BIG_TABLES)},
        ).all()
        for name, _ in indexes:
            conn.execute(sa.text(f'DROP INDEX "{name}"'))
    for statement in FILL:
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(sa.text(statement), {"runs": runs, "commits": commits, "spec": SPEC_JSON})
        print(f"  {statement.split('(')[0].strip():<28} {time.perf_counter() - started:7.1f} s", flush=True)
    started = time.perf_counter()
    with engine.begin() as conn:
        for _, definition in indexes:
            conn.execute(sa.text(definition))
    print(f"  {len(indexes)} secondary indexes rebuilt  {time.perf_counter() - started:5.1f} s", flush=True)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        started = time.perf_counter()
        conn.execute(sa.text("VACUUM ANALYZE"))
        print(f"  VACUUM ANALYZE               {time.perf_counter() - started:7.1f} s", flush=True)
        sizes = conn.execute(
            sa.text(
                "SELECT relname, n_live_tup, pg_size_pretty(pg_total_relation_size(relid)) FROM pg_stat_user_tables "
                "WHERE relname = ANY(:t) ORDER BY relname"
            ),
            {"t": list(BIG_TABLES)},
        ).all()
    for name, rows, size in sizes:
        print(f"  {name:<12} {rows:>13,} rows  {size}")
    engine.dispose()


# -- measuring ----------------------------------------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    target: float | None
    times: list[float]
    statements: list[tuple[str, Any]]

    @property
    def p50(self) -> float:
        return statistics.median(self.times)

    @property
    def p99(self) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


@contextmanager
def recording(engine: sa.Engine) -> Iterator[list[tuple[str, Any]]]:
    """The statements `engine` runs meanwhile (for EXPLAIN)."""
    seen: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", before)


def measure(engine: sa.Engine, name: str, target: float | None, calls: list[Callable[[], object]]) -> Figure:
    calls[0]()  # warm the pool and the statement caches
    times = []
    for call in calls:
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    with recording(engine) as statements:
        calls[len(calls) // 2]()
    figure = Figure(name, target, times, statements)
    over = " (over target)" if target is not None and figure.p99 > target else ""
    aim = f"target p99 <= {target:.0f} ms" if target is not None else ""
    print(f"  {name:<46} p50 {figure.p50:8.2f} ms  p99 {figure.p99:8.2f} ms  {aim}{over}", flush=True)
    return figure


def explain(engine: sa.Engine, figure: Figure) -> None:
    print(f"\n  EXPLAIN (ANALYZE, BUFFERS) of '{figure.name}':")
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in figure.statements:
            if not statement.lstrip().upper().startswith("SELECT"):
                continue
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            plan = [row[0] for row in cursor.fetchall()]
            top = " ".join(statement.split())[:110]
            print(f"    {top}...")
            for line in plan[:3] + [p for p in plan[3:] if "Buffers" in p or "Execution Time" in p][-2:]:
                print(f"      {line}")
        raw.rollback()
    finally:
        raw.close()


def read_paths(engine: sa.Engine, samples: int, rng: random.Random) -> list[Figure]:
    with engine.connect() as conn:
        total = conn.execute(sa.text("SELECT max(id) FROM commits")).scalar() or 1
        picked = [rng.randint(1, total) for _ in range(samples)]
        shas = conn.execute(sa.text("SELECT sha FROM commits WHERE id = ANY(:i)"), {"i": picked}).scalars().all()
        ids = conn.execute(sa.text("SELECT id FROM runs WHERE commit_sha = ANY(:s)"), {"s": list(shas)}).scalars().all()
        deep = conn.execute(sa.text("SELECT seen_at, id FROM commits WHERE id = :id"), {"id": max(1, total // 5)}).one()
    ids = list(ids)[:samples]
    rng.shuffle(ids)
    shas = list(shas)
    page = 50
    return [
        measure(
            engine,
            "runs by commit: GET /v1/runs?commit=<sha>",
            TARGETS_MS["runs by commit"],
            [lambda s=s: run_service.list_runs(engine, run_service.RunFilter(commit=s), limit=page, cursor=None)
             for s in shas],
        ),
        measure(
            engine,
            "runs by commit: 7-digit prefix",
            TARGETS_MS["runs by commit"],
            [lambda s=s: run_service.list_runs(engine, run_service.RunFilter(commit=s[:7]), limit=page, cursor=None)
             for s in shas],
        ),
        measure(
            engine,
            "runs by commit: GET /v1/commits/<sha> runs",
            TARGETS_MS["runs by commit"],
            [lambda s=s: run_service.runs_of_commit(engine, s) for s in shas],
        ),
        measure(
            engine,
            "run page: GET /v1/runs/{id} + /tasks",
            TARGETS_MS["run page"],
            [lambda i=i: (run_service.get_run(engine, i),
                          run_service.run_tasks(engine, i, run_service.task_query(), limit=100, cursor=None))
             for i in ids],
        ),
        measure(
            engine,
            "run page: GET /v1/runs/{id}/events",
            TARGETS_MS["run page"],
            [lambda i=i: run_service.run_events(engine, i, task=None, after=None, limit=100) for i in ids],
        ),
        measure(
            engine,
            "run page: console /console/runs/{id}",
            TARGETS_MS["run page"],
            [lambda i=i: views.run_view(engine, i, datetime.now(UTC)) for i in ids],
        ),
        measure(
            engine,
            "timeline: first page",
            TARGETS_MS["timeline"],
            [lambda: views.timeline(engine, views.CommitFilter(), cursor=None) for _ in range(min(samples, 100))],
        ),
        measure(
            engine,
            "timeline: deep page (keyset cursor, 80% back)",
            TARGETS_MS["timeline"],
            [lambda: views.timeline(engine, views.CommitFilter(), cursor=encode_cursor(deep.seen_at, str(deep.id)))
             for _ in range(min(samples, 100))],
        ),
        measure(
            engine,
            "timeline: invalid commits only",
            TARGETS_MS["timeline"],
            [lambda: views.timeline(engine, views.CommitFilter(status="invalid"), cursor=None)
             for _ in range(min(samples, 100))],
        ),
    ]  # fmt: skip


SPEC = PipelineSpec(
    name="bench",
    tasks=tuple(TaskSpec(name=f"t{i}", image="python:3.12", command=("true",)) for i in range(10)),
)


def one_run_of_transitions(engine: sa.Engine, sha: str) -> list[float]:
    """Create a 10-task run and commit its transitions the way the engine does (a batch per step, every task's
    change and its event together); the milliseconds of each commit."""
    times: list[float] = []
    started = time.perf_counter()
    with engine.begin() as conn:
        run_id = create_run(
            conn, NewRun(pipeline="pipelines/bench", spec=SPEC, trigger=Trigger.MANUAL, params={}, commit_sha=sha)
        ).run_id
    times.append((time.perf_counter() - started) * 1000)
    steps: list[tuple[str, dict[str, Any]]] = [
        ("starting", {"attempt": 1}),
        ("running", {"started_at": datetime.now(UTC)}),
        ("succeeded", {"finished_at": datetime.now(UTC), "exit_code": 0}),
    ]
    for status, extra in steps:
        for i in range(10):
            batch = WriteBatch()
            batch.task(run_id, f"t{i}", status=status, **extra)
            batch.event("task.status", run_id=run_id, task=f"t{i}", status=status)
            if status == "starting" and i == 0:
                batch.run(run_id, status="running", started_at=datetime.now(UTC))
                batch.event("run.status", run_id=run_id, status="running")
            began = time.perf_counter()
            write_batch(engine, batch)
            times.append((time.perf_counter() - began) * 1000)
    batch = WriteBatch()
    batch.run(run_id, status="succeeded", finished_at=datetime.now(UTC))
    batch.event("run.status", run_id=run_id, status="succeeded")
    began = time.perf_counter()
    write_batch(engine, batch)
    times.append((time.perf_counter() - began) * 1000)
    return times


def write_path(engine: sa.Engine, label: str, runs: int, rng: random.Random) -> Figure:
    """`runs` runs of transitions, each on a new commit SHA; p50/p99 per commit of the engine's batches, and of
    the transaction that creates a run (sync's and the API's write, beside the engine's)."""
    times: list[float] = []
    creates: list[float] = []
    for _ in range(runs):
        first, *rest = one_run_of_transitions(engine, f"{rng.getrandbits(160):040x}")
        creates.append(first)
        times += rest
    figure = Figure(f"engine write path: {label}", None, times, [])
    print(
        f"  {figure.name:<46} p50 {figure.p50:8.2f} ms  p99 {figure.p99:8.2f} ms  ({len(times)} commits);"
        f" creating a run: p50 {statistics.median(creates):.2f} ms, max {max(creates):.2f} ms",
        flush=True,
    )
    return figure


def migrate_online(engine: sa.Engine, url: str) -> None:
    """`upgrade head` (the online index builds) while a writer records transitions; the writer runs with a 2 s
    lock_timeout, so a blocking migration shows up as an error, not only as a slow commit."""
    writer = create_db_engine(url, pool_size=2)
    sa.event.listen(writer, "connect", lambda c, _r: c.cursor().execute("SET lock_timeout = '2s'"))
    stop = threading.Event()
    times: list[float] = []
    errors: list[BaseException] = []
    rng = random.Random(7)

    def write() -> None:
        while not stop.is_set():
            try:
                times.extend(one_run_of_transitions(writer, f"{rng.getrandbits(160):040x}"))
            except BaseException as e:  # reported below
                errors.append(e)
                return

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    started = time.perf_counter()
    migrate(engine)
    took = time.perf_counter() - started
    stop.set()
    thread.join(60)
    writer.dispose()
    slowest = max(times) if times else 0.0
    print(
        f"  migrated to head in {took:.1f} s while a writer committed {len(times)} batches: slowest {slowest:.1f} ms,"
        f" p99 {sorted(times)[int(len(times) * 0.99)] if times else 0:.1f} ms, errors: {len(errors)}"
        + (f" ({errors[0]})" if errors else ""),
        flush=True,
    )


def retention_under_writes(engine: sa.Engine, keep_days: float, seconds: float, rng: random.Random) -> None:
    """The events retention (`history_retention.prune_once`, as the leader's worker runs it) deleting what is older
    than `keep_days` for `seconds`, while the engine's write path is measured beside it."""
    report: list[PruneReport] = []
    started = time.perf_counter()
    pruner = threading.Thread(
        target=lambda: report.append(
            prune_once(engine, HistoryPolicy(events_keep_days=keep_days), tasks_dir=None, budget=seconds)
        ),
        daemon=True,
    )
    pruner.start()
    times: list[float] = []
    while pruner.is_alive():
        times += one_run_of_transitions(engine, f"{rng.getrandbits(160):040x}")[1:]
    took = time.perf_counter() - started
    deleted = report[0].events_deleted if report else 0
    print(
        f"  events retention (keep {keep_days:g} days): {deleted:,} events deleted in {took:.1f} s"
        f" ({deleted / took:,.0f}/s); meanwhile the engine's commits p50 {statistics.median(times):.2f} ms,"
        f" p99 {sorted(times)[int(len(times) * 0.99)]:.2f} ms, max {max(times):.2f} ms ({len(times)} commits)",
        flush=True,
    )


def report(engine: sa.Engine, figures: list[Figure], mode: str) -> None:
    for f in figures:
        if mode == "all" or (mode == "slow" and f.target is not None and f.p99 > f.target):
            explain(engine, f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000, help="runs to fill (10 task runs, 50 events each)")
    parser.add_argument("--samples", type=int, default=300, help="calls per measured path")
    parser.add_argument("--write-runs", type=int, default=20, help="runs of transitions for the write path")
    parser.add_argument("--before", default="0022", help="revision to fill at (before this issue's indexes)")
    parser.add_argument("--explain", choices=("slow", "all", "none"), default="slow")
    parser.add_argument(
        "--retention-seconds", type=float, default=30, help="run the events retention (keep 180 days) this long"
    )
    parser.add_argument("--keep", action="store_true", help="leave the server's directory (printed) behind")
    args = parser.parse_args()
    rng = random.Random(15)
    base = Path(tempfile.mkdtemp(prefix="odin-store-scale-"))
    server = Server(base, free_port())
    print(f"store scale: {args.runs:,} runs (~{args.runs * 10:,} task runs, ~{args.runs * 50:,} events)")
    print(f"private Postgres in {base}; load average {load_average()}")
    try:
        server.init()
        server.start(fill=True)
        engine = create_db_engine(server.url)
        from alembic import command

        command.upgrade(alembic_config(engine), args.before)
        print(f"schema at {args.before}; filling...")
        started = time.perf_counter()
        fill(server.url, args.runs)
        print(f"filled in {time.perf_counter() - started:.0f} s; load average {load_average()}")
        engine.dispose()
        server.stop()
        server.start(fill=False)
        engine = create_db_engine(server.url)
        admin = sa.create_engine(server.url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE empty"))
        admin.dispose()
        empty = create_db_engine(server.url.rsplit("/", 1)[0] + "/empty")
        command.upgrade(alembic_config(empty), args.before)

        print(f"\nbefore (revision {args.before}); load average {load_average()}")
        before = read_paths(engine, args.samples, rng)
        write_path(empty, "empty store", args.write_runs, rng)
        write_path(engine, "big store", args.write_runs, rng)
        report(engine, before, args.explain)
        print(f"load average {load_average()}")

        print("\nonline migration to head")
        migrate_online(engine, server.url)
        migrate(empty)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("ANALYZE"))

        print(f"\nafter (head); load average {load_average()}")
        after = read_paths(engine, args.samples, rng)
        write_path(empty, "empty store", args.write_runs, rng)
        write_path(engine, "big store", args.write_runs, rng)
        report(engine, after, args.explain)
        if args.retention_seconds > 0:
            print(f"\nretention; load average {load_average()}")
            retention_under_writes(engine, 180, args.retention_seconds, rng)
        print(f"\nscale: {args.runs:,} runs; load average {load_average()}")
        engine.dispose()
        empty.dispose()
    finally:
        server.stop()
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
