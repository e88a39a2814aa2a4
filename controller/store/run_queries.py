"""Reading runs, their tasks and events for the API, the metrics and the commit-status notifiers.

The engine writes these rows (`odin.controller.store.runs`); this module only reads them, answering with plain values:
summaries for lists, a run with its tasks for one run, events as dicts. Callers validate what users typed (a SHA
prefix, a status name) before asking; the queries here take the values as given.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from odin.controller.store import loop_reads
from odin.controller.store.db import DbEngine, StoreUnavailable, read_once, reading
from odin.controller.store.tables import EVENTS, REPOSITORIES, RUNS, TASK_RUNS

_json_decode = msgspec.json.Decoder().decode


@dataclass(frozen=True, slots=True)
class RunSummaryRow:
    id: str
    pipeline: str
    commit_sha: str | None
    branch: str | None
    trigger: str
    triggered_by: str | None
    status: str
    message: str | None
    parent_run: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    reason: str | None = None  # why a run is queued (ConcurrencyLimit, MaxActiveRuns) or ended as it did
    tag: str | None = None  # the tag a tag-triggered run ran for
    pull_request: int | None = None  # the pull request a `pull_request` run ran for, at `pr_provider`
    pr_provider: str | None = None


@dataclass(frozen=True, slots=True)
class TaskRow:
    name: str
    status: str
    attempt: int
    reason: str | None
    message: str | None
    exit_code: int | None
    resource_kind: str | None
    resource_name: str | None
    namespace: str | None
    node: str | None
    started_at: datetime | None
    finished_at: datetime | None
    results: dict[str, Any] = field(default_factory=dict)  # declared results of the succeeded attempt (issue 11)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # {path, location, type, size, digest}
    cache_key: str | None = None  # for a task with `cache: true` (engine/cache.py)
    mlflow_run_id: str | None = None  # the task's nested MLflow run (issue 11, item 7)
    gpu_usage: dict[str, Any] | None = None  # what the attempt used of its GPUs (controller/gpu_usage.py)
    key: int = 0  # task_runs.id: creation order, and the keyset cursor of a page of tasks


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as stored, with its tasks in creation order."""

    summary: RunSummaryRow
    params: dict[str, str]
    spec: dict[str, Any]
    work_tree: str | None
    run_path_id: str | None
    no_cache: bool
    absorbed_commits: list[str]
    conditions: list[dict[str, Any]]
    tasks: list[TaskRow]
    mlflow_run_id: str | None = None
    mlflow_experiment_id: str | None = None
    mlflow_status: str | None = None
    task_counts: dict[str, int] = field(default_factory=dict)  # every task of the run, by status
    more_tasks: bool = False  # `tasks` is the first page only (get_run's task_limit)
    events_pruned_at: datetime | None = None  # when retention deleted events of the run (store/history.py)
    logs_pruned_at: datetime | None = None  # when retention deleted its task logs


@dataclass(frozen=True, slots=True)
class TaskRef:
    """A task of a run, with what tells where its log is (a task reused by a rerun logged in the parent run)."""

    run_id: str
    name: str
    status: str
    reason: str | None
    parent_run: str | None
    attempt: int = 0
    """The latest attempt (0 before the first): what a log reader asks for when its own disk has no log to go by."""
    logs_pruned_at: datetime | None = None
    """When retention deleted the run's task logs (None: never)."""


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Filters on runs; each given one must hold. `commit` is a lower-case full SHA or a prefix of one."""

    commit: str | None = None
    pipeline: str | None = None
    branch: str | None = None
    status: Sequence[str] = ()
    trigger: Sequence[str] = ()
    triggered_by: str | None = None
    parent_run: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    def bound(self) -> tuple[tuple[str, ...], dict[str, Any]]:
        """The filters given, as the names of their clauses in `_FILTERS` and the values those clauses bind."""
        names: list[str] = []
        values: dict[str, Any] = {}
        if self.commit:
            if len(self.commit) == 40:
                names.append("sha")
                values["sha"] = self.commit
            else:  # a prefix, as an index-friendly range (see `sha_match`)
                names.append("sha_prefix")
                values.update(sha_from=self.commit, sha_to=self.commit + "g")
        for name in ("pipeline", "branch", "triggered_by", "parent_run"):
            if value := getattr(self, name):
                names.append(name)
                values[name] = value
        for name in ("status", "trigger"):
            if value := getattr(self, name):
                names.append(name)
                values[name] = list(value)
        for name in ("created_after", "created_before"):
            if (value := getattr(self, name)) is not None:
                names.append(name)
                values[name] = value
        return tuple(names), values


_FILTERS: dict[str, sa.ColumnElement[bool]] = {
    "sha": RUNS.c.commit_sha == sa.bindparam("sha"),
    "sha_prefix": sa.and_(RUNS.c.commit_sha >= sa.bindparam("sha_from"), RUNS.c.commit_sha < sa.bindparam("sha_to")),
    "pipeline": RUNS.c.pipeline == sa.bindparam("pipeline"),
    "branch": RUNS.c.branch == sa.bindparam("branch"),
    "status": RUNS.c.status.in_(sa.bindparam("status", expanding=True)),
    "trigger": RUNS.c.trigger.in_(sa.bindparam("trigger", expanding=True)),
    "triggered_by": RUNS.c.triggered_by == sa.bindparam("triggered_by"),
    "parent_run": RUNS.c.parent_run == sa.bindparam("parent_run"),
    "created_after": RUNS.c.created_at >= sa.bindparam("created_after"),
    "created_before": RUNS.c.created_at < sa.bindparam("created_before"),
    # `created_at <=` is implied by the OR but is what an index on created_at can start at (a deep page).
    "after": sa.and_(
        RUNS.c.created_at <= sa.bindparam("after_at"),
        sa.or_(
            RUNS.c.created_at < sa.bindparam("after_at"),
            sa.and_(RUNS.c.created_at == sa.bindparam("after_at"), RUNS.c.id < sa.bindparam("after_id")),
        ),
    ),
}
"""Each filter of `list_runs` as a clause with named parameters, built once."""


_SUMMARY = (
    RUNS.c.id,
    RUNS.c.pipeline,
    RUNS.c.commit_sha,
    RUNS.c.branch,
    RUNS.c.trigger,
    RUNS.c.triggered_by,
    RUNS.c.status,
    RUNS.c.message,
    RUNS.c.parent_run,
    RUNS.c.created_at,
    RUNS.c.started_at,
    RUNS.c.finished_at,
    RUNS.c.reason,
    RUNS.c.tag,
    RUNS.c.pull_request,
    RUNS.c.pr_provider,
)


def sha_match(column: sa.ColumnElement[str | None], sha: str) -> sa.ColumnElement[bool]:
    """A full SHA, or a prefix of one, as an index-friendly range on `column` (`sha` is lower-case hex)."""
    if len(sha) == 40:
        return column == sha
    return sa.and_(column >= sha, column < sha + "g")


def _summary(r: Any) -> RunSummaryRow:
    """From a row selected as `_SUMMARY` (same columns, same order as the fields): positional, as lists of runs
    are the API's most frequent answer."""
    return RunSummaryRow(*r)


def _summary_of_run(r: Any) -> RunSummaryRow:
    """From a row with all of the run's columns."""
    return RunSummaryRow(
        id=r.id,
        pipeline=r.pipeline,
        commit_sha=r.commit_sha,
        branch=r.branch,
        trigger=r.trigger,
        triggered_by=r.triggered_by,
        status=r.status,
        message=r.message,
        parent_run=r.parent_run,
        created_at=r.created_at,
        started_at=r.started_at,
        finished_at=r.finished_at,
        reason=r.reason,
        tag=r.tag,
        pull_request=r.pull_request,
        pr_provider=r.pr_provider,
    )


def list_runs(
    db: DbEngine, query: RunQuery, *, limit: int, after: tuple[datetime, str] | None = None
) -> list[RunSummaryRow]:
    """Newest first, at most `limit`; `after` (created_at, id) continues after that run."""
    statement, values = _list_query(query, limit, after)
    return read_once(db, lambda conn: [_summary(r) for r in conn.execute(statement, values)])


async def list_runs_on_loop(
    db: DbEngine, query: RunQuery, *, limit: int, after: tuple[datetime, str] | None = None
) -> list[RunSummaryRow] | None:
    """`list_runs` read on the running event loop, without a thread (`loop_reads`: the API's busiest read); None
    where it cannot be read so (SQLite, a status or trigger list, a connection that failed): call `list_runs` in a
    thread then."""
    statement, values = _list_query(query, limit, after)
    rows = await loop_reads.fetch(db, statement, values)
    return None if rows is None else [_summary(r) for r in rows]


def _list_query(
    query: RunQuery, limit: int, after: tuple[datetime, str] | None
) -> tuple[sa.Executable, dict[str, Any]]:
    names, values = query.bound()
    if after is not None:
        names += ("after",)
        values.update(after_at=after[0], after_id=after[1])
    values["limit"] = limit
    return _list_statement(names), values


_LIST_STATEMENTS: dict[tuple[str, ...], sa.Executable] = {}


def _list_statement(filters: tuple[str, ...]) -> sa.Executable:
    """The statement of `list_runs` with these filters (names in `_FILTERS`), built once per combination and then
    only executed with new values: building a statement from its parts costs more CPU than running this one (a
    tenth of a millisecond in Postgres, on an index), and `GET /v1/runs?commit=` is the API's busiest request. The
    combinations are bounded (a subset of `_FILTERS`, in a fixed order)."""
    statement = _LIST_STATEMENTS.get(filters)
    if statement is None:
        statement = (
            sa.select(*_SUMMARY)
            .where(*(_FILTERS[name] for name in filters))
            .order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc())
            .limit(sa.bindparam("limit"))
        )
        _LIST_STATEMENTS[filters] = statement
    return statement


def runs_of_commit(db: DbEngine, sha: str, *, limit: int = 500) -> list[RunSummaryRow]:
    """The runs of one commit (full SHA), newest first."""
    q = sa.select(*_SUMMARY).where(RUNS.c.commit_sha == sha).order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc())
    with reading(db) as conn:
        return [_summary(r) for r in conn.execute(q.limit(limit))]


def runs_of_commits(db: DbEngine, shas: list[str], *, limit: int = 2000) -> dict[str, list[RunSummaryRow]]:
    """The runs of several commits (full SHAs) in one query, newest first per commit: a page of the console's
    commit timeline costs one query for its runs, not one per commit."""
    if not shas:
        return {}
    q = sa.select(*_SUMMARY).where(RUNS.c.commit_sha.in_(shas)).order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc())
    found: dict[str, list[RunSummaryRow]] = {}
    with reading(db) as conn:
        for r in conn.execute(q.limit(limit)):
            row = _summary(r)
            found.setdefault(row.commit_sha or "", []).append(row)
    return found


def run_summary(db: DbEngine, run_id: str) -> RunSummaryRow | None:
    with reading(db) as conn:
        r = conn.execute(sa.select(*_SUMMARY).where(RUNS.c.id == run_id)).first()
    return None if r is None else _summary(r)


def get_run(db: DbEngine, run_id: str, *, task_limit: int | None = None) -> RunRow | None:
    """The run with its tasks (the first `task_limit` of them in creation order, when given: `more_tasks` says
    whether others follow) and its task counts by status; None when there is no such run."""
    with reading(db) as conn:
        r = conn.execute(sa.select(RUNS).where(RUNS.c.id == run_id)).first()
        if r is None:
            return None
        q = sa.select(TASK_RUNS).where(TASK_RUNS.c.run_id == run_id).order_by(TASK_RUNS.c.id)
        tasks = conn.execute(q if task_limit is None else q.limit(task_limit + 1)).all()
        more = task_limit is not None and len(tasks) > task_limit
        if more:
            counts = _task_counts(conn, run_id)
            tasks = tasks[:task_limit]
        else:
            counts = {}
            for t in tasks:
                counts[t.status] = counts.get(t.status, 0) + 1
    return RunRow(
        summary=_summary_of_run(r),
        params=r.params or {},
        spec=r.spec or {},
        work_tree=r.work_tree,
        run_path_id=r.run_path_id,
        no_cache=bool(r.no_cache),
        absorbed_commits=r.absorbed_commits or [],
        conditions=r.conditions or [],
        tasks=[_task(t) for t in tasks],
        mlflow_run_id=r.mlflow_run_id,
        mlflow_experiment_id=r.mlflow_experiment_id,
        mlflow_status=r.mlflow_status,
        task_counts=counts,
        more_tasks=more,
        events_pruned_at=r.events_pruned_at,
        logs_pruned_at=r.logs_pruned_at,
    )


def _task(t: Any) -> TaskRow:
    """From a row with all of task_runs' columns."""
    return TaskRow(
        name=t.name,
        status=t.status,
        attempt=t.attempt,
        reason=t.reason,
        message=t.message,
        exit_code=t.exit_code,
        resource_kind=t.resource_kind,
        resource_name=t.resource_name,
        namespace=t.namespace,
        node=t.node,
        started_at=t.started_at,
        finished_at=t.finished_at,
        results=t.results or {},
        artifacts=t.artifacts or {},
        cache_key=t.cache_key,
        mlflow_run_id=t.mlflow_run_id,
        gpu_usage=t.gpu_usage,
        key=t.id,
    )


def _task_counts(conn: Connection, run_id: str) -> dict[str, int]:
    rows = conn.execute(
        sa.select(TASK_RUNS.c.status, sa.func.count()).where(TASK_RUNS.c.run_id == run_id).group_by(TASK_RUNS.c.status)
    ).all()
    return {status: int(n) for status, n in rows}


def task_counts(db: DbEngine, run_id: str) -> dict[str, int] | None:
    """How many of the run's tasks are in each status (statuses without tasks are absent), in one aggregate query;
    None when there is no such run."""
    with reading(db) as conn:
        if conn.execute(sa.select(RUNS.c.id).where(RUNS.c.id == run_id)).first() is None:
            return None
        return _task_counts(conn, run_id)


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """Which of a run's tasks to page through: any of `status` (all when empty), and names starting with `prefix`."""

    status: Sequence[str] = ()
    prefix: str | None = None


def run_tasks(db: DbEngine, run_id: str, query: TaskQuery, *, after: int | None, limit: int) -> list[TaskRow] | None:
    """A page of the run's tasks in creation order: at most `limit`, after the task whose `key` is `after` (keyset:
    a page costs the same at task 10 and task 100,000); None when there is no such run."""
    q = sa.select(TASK_RUNS).where(TASK_RUNS.c.run_id == run_id)
    if query.status:
        q = q.where(TASK_RUNS.c.status.in_(list(query.status)))
    if query.prefix:
        q = q.where(TASK_RUNS.c.name.startswith(query.prefix, autoescape=True))
    if after is not None:
        q = q.where(TASK_RUNS.c.id > after)
    with reading(db) as conn:
        if conn.execute(sa.select(RUNS.c.id).where(RUNS.c.id == run_id)).first() is None:
            return None
        return [_task(t) for t in conn.execute(q.order_by(TASK_RUNS.c.id).limit(limit))]


def mlflow_experiment(db: DbEngine, run_id: str) -> str | None:
    """The MLflow experiment of the run's tracking (what links to its tasks' MLflow runs need)."""
    with reading(db) as conn:
        return conn.execute(sa.select(RUNS.c.mlflow_experiment_id).where(RUNS.c.id == run_id)).scalar()


@dataclass(frozen=True, slots=True)
class TaskState:
    name: str
    status: str


def task_states(db: DbEngine, run_id: str) -> list[TaskState]:
    """Every task's name and status in creation order, and nothing else: what a run's DAG drawing needs, cheap
    enough for a 100,000-task run (two narrow columns, no JSON)."""
    q = sa.select(TASK_RUNS.c.name, TASK_RUNS.c.status).where(TASK_RUNS.c.run_id == run_id).order_by(TASK_RUNS.c.id)
    with reading(db) as conn:
        return [TaskState(r.name, r.status) for r in conn.execute(q)]


def run_exists(db: DbEngine, run_id: str) -> bool:
    with reading(db) as conn:
        return conn.execute(sa.select(RUNS.c.id).where(RUNS.c.id == run_id)).first() is not None


def run_events(
    db: DbEngine, run_id: str, *, task: str | None, after: int | None, limit: int
) -> list[dict[str, Any]] | None:
    """The run's events (of one task, when given) with ids above `after`, oldest first, at most `limit`, as dicts
    with the `events` table's columns; None when there is no such run."""
    q = sa.select(EVENTS).where(EVENTS.c.run_id == run_id)
    if task is not None:
        q = q.where(EVENTS.c.task == task)
    if after is not None:
        q = q.where(EVENTS.c.id > after)
    with reading(db) as conn:
        if conn.execute(sa.select(RUNS.c.id).where(RUNS.c.id == run_id)).first() is None:
            return None
        return [dict(r._mapping) for r in conn.execute(q.order_by(EVENTS.c.id).limit(limit))]


def find_task(db: DbEngine, run_id: str, task: str) -> TaskRef | None:
    """The task `task` of run `run_id`; None when the run or the task does not exist (see `run_exists`)."""
    with reading(db) as conn:
        row = conn.execute(
            sa.select(
                TASK_RUNS.c.run_id,
                TASK_RUNS.c.name,
                TASK_RUNS.c.status,
                TASK_RUNS.c.reason,
                RUNS.c.parent_run,
                TASK_RUNS.c.attempt,
                RUNS.c.logs_pruned_at,
            )
            .join(RUNS, RUNS.c.id == TASK_RUNS.c.run_id)
            .where(TASK_RUNS.c.run_id == run_id, TASK_RUNS.c.name == task)
        ).first()
    if row is None:
        return None
    return TaskRef(row.run_id, row.name, row.status, row.reason, row.parent_run, row.attempt or 0, row.logs_pruned_at)


@contextmanager
def _answering(db: DbEngine, what: str) -> Iterator[Connection]:
    """A connection whose every database error, not only a lost connection, becomes `StoreUnavailable`: for callers
    on the side (metrics, commit statuses) that only note that the store did not answer and go on."""
    try:
        with db.connect() as conn:
            yield conn
    except sa.exc.SQLAlchemyError as e:
        raise StoreUnavailable(f"cannot {what}: {e}") from e


def run_origin(db: DbEngine, run_id: str) -> tuple[str, str | None, int | None] | None:
    """(pipeline, commit SHA, repository id) of a run; None when there is no such run. Raises `StoreUnavailable`
    for any database error."""
    with _answering(db, "read the run") as conn:
        row = conn.execute(
            sa.select(RUNS.c.pipeline, RUNS.c.commit_sha, RUNS.c.repo_id).where(RUNS.c.id == run_id)
        ).first()
    return None if row is None else (row.pipeline, row.commit_sha, row.repo_id)


def run_repository_url(db: DbEngine, run_id: str) -> str | None:
    """The URL of the repository a run came from, as the store keeps it (no credentials); None when there is no such
    run. For the console's links to the run's pull request."""
    with reading(db) as conn:
        return conn.execute(
            sa.select(REPOSITORIES.c.url)
            .select_from(RUNS.join(REPOSITORIES, REPOSITORIES.c.id == RUNS.c.repo_id))
            .where(RUNS.c.id == run_id)
        ).scalar()


def count_by_status(db: DbEngine) -> dict[str, int]:
    """How many runs the store holds in each status (statuses without runs are absent). Raises `StoreUnavailable`
    for any database error."""
    with _answering(db, "count runs") as conn:
        rows = conn.execute(sa.select(RUNS.c.status, sa.func.count()).group_by(RUNS.c.status)).all()
    return {status: int(n) for status, n in rows}


@dataclass(frozen=True, slots=True)
class TaskOutputs:
    """What one task of a run recorded: its results and artifacts (`{path, location, type, size, digest}` each)."""

    name: str
    status: str
    results: dict[str, Any]
    artifacts: dict[str, dict[str, Any]]


def task_outputs(db: DbEngine, run_id: str) -> list[TaskOutputs] | None:
    """Every task's recorded outputs in creation order; None when there is no such run. Only the output columns are
    read, not the run's frozen spec (which can be large): listing artifacts is a download page's first request."""
    with reading(db) as conn:
        if conn.execute(sa.select(RUNS.c.id).where(RUNS.c.id == run_id)).first() is None:
            return None
        rows = conn.execute(
            sa.select(TASK_RUNS.c.name, TASK_RUNS.c.status, TASK_RUNS.c.results, TASK_RUNS.c.artifacts)
            .where(TASK_RUNS.c.run_id == run_id)
            .order_by(TASK_RUNS.c.id)
        ).all()
    return [TaskOutputs(r.name, r.status, r.results or {}, r.artifacts or {}) for r in rows]


@dataclass(frozen=True, slots=True)
class RunResults:
    """One run of a pipeline and its tasks' results, `{task: {result: value}}` (tasks without results left out)."""

    run_id: str
    commit_sha: str | None
    branch: str | None
    status: str
    created_at: datetime
    results: dict[str, dict[str, Any]]


def _results_text() -> sa.ColumnElement[str]:
    """`task_runs.results` as the JSON text the database holds, decoded here with msgspec: the column type's
    `json.loads` (psycopg2's for JSONB) was most of the time of a 10,000-run answer."""
    return sa.cast(TASK_RUNS.c.results, sa.Text)


def _decode_results(text: str | None) -> dict[str, Any] | None:
    if text is None or text == "null":  # SQL NULL, or the JSON null SQLite stores for None
        return None
    value = _json_decode(text)
    return value if isinstance(value, dict) and value else None


def results_by_run(
    db: DbEngine,
    pipeline: str,
    *,
    since: datetime | None,
    limit: int,
    before: tuple[datetime, str] | None = None,
) -> list[RunResults]:
    """The newest `limit` runs of `pipeline` created at or after `since`, newest first, each with its results;
    `before` (created_at, run id) of the last run of the previous page continues after it (keyset paging: a page
    costs the same at run 10 and run 100,000, and a run created meanwhile neither repeats nor shifts a row).

    Two indexed steps, so the cost follows `limit`, not the store's size: the runs come from
    `ix_runs_pipeline_created` (pipeline, created_at) in order, then their tasks from `uq_task_runs_run_name`
    (run_id, name) by run id. The tasks are read in one query per 1,000 runs with `IN`, not one per run."""
    q = sa.select(RUNS.c.id, RUNS.c.commit_sha, RUNS.c.branch, RUNS.c.status, RUNS.c.created_at).where(
        RUNS.c.pipeline == pipeline
    )
    if since is not None:
        q = q.where(RUNS.c.created_at >= since)
    if before is not None:
        at, run_id = before
        # `created_at <= at` is the index's range; the OR breaks ties between runs created in the same instant.
        q = q.where(RUNS.c.created_at <= at, sa.or_(RUNS.c.created_at < at, RUNS.c.id < run_id))
    q = q.order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc()).limit(limit)
    with reading(db) as conn:
        runs = conn.execute(q).all()
        by_run: dict[str, dict[str, dict[str, Any]]] = {r.id: {} for r in runs}
        ids = list(by_run)
        tasks: list[Any] = []
        for start in range(0, len(ids), 1000):  # bounded IN lists (SQLite's variable limit, plan size)
            # No ORDER BY here: ordering by task_runs.id lets SQLite walk the whole table in primary-key order
            # instead of looking the runs up in the run_id index (measured: 1.9 s instead of milliseconds).
            tasks.extend(
                conn.execute(
                    sa.select(TASK_RUNS.c.id, TASK_RUNS.c.run_id, TASK_RUNS.c.name, _results_text()).where(
                        TASK_RUNS.c.run_id.in_(ids[start : start + 1000])
                    )
                )
            )
    tasks.sort(key=lambda t: t[0])  # tasks in creation order: pipeline order
    for _, run_id, name, text in tasks:
        values = _decode_results(text)
        if values:
            by_run[run_id][name] = values
    return [RunResults(r.id, r.commit_sha, r.branch, r.status, r.created_at, by_run[r.id]) for r in runs]


def result_columns(db: DbEngine, pipeline: str, *, since: datetime | None) -> list[str]:
    """Every `task.result` recorded by the runs of `pipeline` created at or after `since`, in the order a listing of
    them all, newest first, meets them: the header of a CSV or JSON document streamed page by page (`odinctl results
    --all`), known before its first row."""
    q = (
        sa.select(TASK_RUNS.c.name, _results_text())
        .select_from(RUNS.join(TASK_RUNS, TASK_RUNS.c.run_id == RUNS.c.id))
        .where(RUNS.c.pipeline == pipeline)
        .order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc(), TASK_RUNS.c.id)
    )
    if since is not None:
        q = q.where(RUNS.c.created_at >= since)
    columns: dict[str, None] = {}
    with reading(db) as conn:
        for name, text in conn.execute(q):
            for result in _decode_results(text) or ():
                columns.setdefault(f"{name}.{result}", None)
    return list(columns)
