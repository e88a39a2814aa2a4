"""Reading and writing runs for the engine and for run creation.

The engine's writes go through `write_batch`: every change decided in one engine step (task states, run states, the
events describing them) is committed in ONE transaction with Core statements. That is what keeps the per-task cost
of the engine low on SQLite and Postgres alike, and what makes a crash leave either all of a step or none of it.

Run creation relies on the database, not on checks: the run id is the primary key (retried on collision) and an
automatic run's `dedupe_key` is UNIQUE, so a poll and a webhook racing for the same commit produce one run.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.engine import Engine as DbEngine
from sqlalchemy.exc import IntegrityError, OperationalError

from odin.controller.store import queueing, sqlite_batch
from odin.controller.store.db import StoreError, StoreUnavailable, Writer, reading, transaction
from odin.controller.store.leadership import Fence, hold
from odin.controller.store.tables import EVENTS, REPOSITORIES, RUNS, TASK_RUNS
from odin.controller.store.types import utcnow
from odin.controller.vocabulary import REPLACED, RunStatus, TaskStatus, Trigger
from odin.schema.model import PipelineSpec

TASKS = TASK_RUNS

ACTIVE_RUN_STATUSES = (RunStatus.PENDING.value, RunStatus.RUNNING.value)


@dataclass(frozen=True, slots=True)
class LoadedRun:
    """A run and its task rows, as the engine needs them to resume."""

    run: Mapping[Any, Any]
    tasks: Sequence[Mapping[Any, Any]]


@dataclass
class WriteBatch:
    """Changes decided in one engine step; committed together."""

    task_updates: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    run_updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def task(self, run_id: str, task: str, **values: Any) -> None:
        self.task_updates.setdefault((run_id, task), {}).update(values)

    def run(self, run_id: str, **values: Any) -> None:
        self.run_updates.setdefault(run_id, {}).update(values)

    def event(
        self,
        kind: str,
        *,
        run_id: str | None = None,
        task: str | None = None,
        commit_sha: str | None = None,
        **data: Any,
    ) -> None:
        self.events.append({"kind": kind, "run_id": run_id, "task": task, "commit_sha": commit_sha, "data": data})

    def __bool__(self) -> bool:
        return bool(self.task_updates or self.run_updates or self.events)


def write_batch(
    engine: DbEngine, batch: WriteBatch, *, writer: Writer | None = None, fence: Fence | None = None
) -> list[dict[str, Any]]:
    """Commit a batch; returns the events as stored (with id and time) for publishing.

    With a `fence` (the engine on a leader), the batch is written only if its leadership epoch is still current:
    `LeadershipLost` otherwise, with nothing written (`store.leadership`).

    Updates that set the same columns are sent as one executemany with a statement built once per column set, so
    the engine's hot path pays neither statement construction nor compilation per row; on SQLite they go through
    the driver's cursor (`store.sqlite_batch`), in the same transaction.
    """
    now = utcnow()
    try:
        with writer.transaction() if writer is not None else transaction(engine) as conn:
            hold(conn, fence)
            write = _write_sqlite if conn.dialect.name == "sqlite" else _write_core
            return write(conn, batch, now)
    except StoreUnavailable:
        raise
    except OperationalError as e:
        raise StoreUnavailable(f"cannot record engine changes: {str(e.orig).strip().splitlines()[0]}") from e


def _write_core(conn: Connection, batch: WriteBatch, now: datetime) -> list[dict[str, Any]]:
    for stmt, rows in _grouped(batch.task_updates, _task_update, ("_run_id", "_name")):
        conn.execute(stmt, rows)
    for stmt, rows in _grouped({(k,): v for k, v in batch.run_updates.items()}, _run_update, ("_id",)):
        conn.execute(stmt, rows)
    if not batch.events:
        return []
    rows = [{**e, "time": now} for e in batch.events]
    ids = conn.execute(EVENTS.insert().returning(EVENTS.c.id), rows).scalars().all()
    return [{**row, "id": i} for row, i in zip(rows, ids, strict=True)]


def _write_sqlite(conn: Connection, batch: WriteBatch, now: datetime) -> list[dict[str, Any]]:
    dialect = conn.dialect
    updates = [
        (sqlite_batch.update(TASKS, columns, ("run_id", "name"), dialect), rows)
        for columns, rows in _by_columns(batch.task_updates, ("run_id", "name")).items()
    ]
    updates += [
        (sqlite_batch.update(RUNS, columns, ("id",), dialect), rows)
        for columns, rows in _by_columns({(k,): v for k, v in batch.run_updates.items()}, ("id",)).items()
    ]
    ids = sqlite_batch.execute(conn, updates, (EVENTS, batch.events), now)
    return [{**e, "time": now, "id": i} for e, i in zip(batch.events, ids, strict=True)]


def _by_columns(
    updates: Mapping[Any, Mapping[str, Any]], key_names: tuple[str, ...]
) -> dict[frozenset[str], list[dict[str, Any]]]:
    """Rows grouped by the columns they set, each with its key under `key_names`."""
    groups: dict[frozenset[str], list[dict[str, Any]]] = {}
    for key, values in updates.items():
        groups.setdefault(frozenset(values), []).append({**values, **dict(zip(key_names, key, strict=True))})
    return groups


def _grouped(
    updates: Mapping[Any, Mapping[str, Any]],
    build: Callable[[frozenset[str]], sa.Update],
    key_names: tuple[str, ...],
) -> Iterator[tuple[sa.Update, list[dict[str, Any]]]]:
    for columns, rows in _by_columns(updates, key_names).items():
        yield build(columns), rows


@functools.cache
def _task_update(columns: frozenset[str]) -> sa.Update:
    return (
        TASKS.update()
        .where(TASKS.c.run_id == sa.bindparam("_run_id"), TASKS.c.name == sa.bindparam("_name"))
        .values({c: sa.bindparam(c) for c in sorted(columns)})
    )


@functools.cache
def _run_update(columns: frozenset[str]) -> sa.Update:
    return RUNS.update().where(RUNS.c.id == sa.bindparam("_id")).values({c: sa.bindparam(c) for c in sorted(columns)})


def load_runs(engine: DbEngine, run_ids: Iterable[str] | None = None) -> list[LoadedRun]:
    """Active runs (pending/running), or the given runs, each with its tasks in creation order. Each run carries its
    repository's URL and namespace as `repo_url` and `repo_namespace` (None for runs without a repository)."""
    with reading(engine) as conn:
        q = sa.select(
            RUNS, REPOSITORIES.c.url.label("repo_url"), REPOSITORIES.c.namespace.label("repo_namespace")
        ).select_from(RUNS.outerjoin(REPOSITORIES, RUNS.c.repo_id == REPOSITORIES.c.id))
        q = (
            q.where(RUNS.c.id.in_(list(run_ids)))
            if run_ids is not None
            else q.where(RUNS.c.status.in_(ACTIVE_RUN_STATUSES))
        )
        runs = [r._mapping for r in conn.execute(q.order_by(RUNS.c.created_at))]
        if not runs:
            return []
        by_run: dict[str, list[Mapping[Any, Any]]] = {r["id"]: [] for r in runs}
        tq = sa.select(TASKS).where(TASKS.c.run_id.in_(list(by_run))).order_by(TASKS.c.id)
        for t in conn.execute(tq):
            by_run[t.run_id].append(t._mapping)
    return [LoadedRun(r, by_run[r["id"]]) for r in runs]


@dataclass(frozen=True, slots=True)
class ActiveRuns:
    """The active runs (pending/running) and which of them were asked to cancel: all the engine's periodic rescan
    reads, in one query over the active runs rather than a second one naming every run it drives (an `IN` of 1,000
    ids at 1,000 live runs, which held the engine loop, and the watch events behind it, for tens of ms)."""

    ids: frozenset[str]
    cancels: Mapping[str, str | None]  # run id -> as `cancel_requests`: the message a replaced run's end records


def active_runs(engine: DbEngine) -> ActiveRuns:
    """The ids of the active runs and their cancel requests, without loading any run's spec and tasks."""
    q = sa.select(RUNS.c.id, RUNS.c.cancel_requested, RUNS.c.reason, RUNS.c.message).where(
        RUNS.c.status.in_(ACTIVE_RUN_STATUSES)
    )
    with reading(engine) as conn:
        rows = conn.execute(q).all()
    cancels = {r.id: r.message if r.reason == REPLACED else None for r in rows if r.cancel_requested}
    return ActiveRuns(frozenset(r.id for r in rows), cancels)


def cancel_requests(engine: DbEngine, run_ids: Iterable[str]) -> dict[str, str | None]:
    """Which of these runs have been asked to cancel (possibly by another process), each with the message its end
    records when a newer run replaced it (`policy: replace`), else None."""
    ids = list(run_ids)
    if not ids:
        return {}
    with reading(engine) as conn:
        q = sa.select(RUNS.c.id, RUNS.c.reason, RUNS.c.message).where(
            RUNS.c.id.in_(ids), RUNS.c.cancel_requested.is_(True)
        )
        return {r.id: r.message if r.reason == REPLACED else None for r in conn.execute(q)}


def request_cancel(engine: DbEngine, run_id: str, *, by: str | None = None) -> bool:
    """Flag a run for cancellation; False if it does not exist or is already finished. A queued run never started:
    it is cancelled at once (under the queue's lock, so it cannot be promoted meanwhile)."""
    with transaction(engine) as conn:
        queueing.lock(conn)
        by_whom = f" by {by}" if by else ""
        if queueing.finish_queued(conn, run_id, RunStatus.CANCELLED, "Cancelled", f"cancelled{by_whom} while queued"):
            return True
        res = conn.execute(
            RUNS.update()
            .where(RUNS.c.id == run_id, RUNS.c.status.in_(ACTIVE_RUN_STATUSES))
            .values(cancel_requested=True)
        )
        if res.rowcount:
            sha = conn.execute(sa.select(RUNS.c.commit_sha).where(RUNS.c.id == run_id)).scalar()
            conn.execute(
                EVENTS.insert().values(
                    kind="run.cancel_requested", run_id=run_id, commit_sha=sha, time=utcnow(), data={"by": by}
                )
            )
        return bool(res.rowcount)


# -- run creation ---------------------------------------------------------------------------------------------------

_SLUG_BAD = re.compile(r"[^a-z0-9-]+")


def run_id_prefix(pipeline: str, commit_sha: str | None) -> str:
    """`<pipeline>-<sha7>`: readable, DNS-1123-safe, and it says which commit a run belongs to."""
    base = pipeline.rstrip("/").rsplit("/", 1)[-1].lower()
    slug = _SLUG_BAD.sub("-", base).strip("-")[:40].strip("-") or "pipeline"
    return f"{slug}-{commit_sha[:7] if commit_sha else 'local'}"


@dataclass(frozen=True, slots=True)
class NewRun:
    pipeline: str
    spec: PipelineSpec
    trigger: Trigger
    params: Mapping[str, str]
    commit_sha: str | None = None
    branch: str | None = None
    tag: str | None = None  # the tag a tag-triggered run ran for
    repo_id: int | None = None
    triggered_by: str | None = None
    work_tree: str | None = None
    work_path: str | None = None
    parent_run: str | None = None
    run_path_id: str | None = None  # share another run's ${RUN_PATH} (reruns that reuse its succeeded tasks)
    parallelism: int | None = None
    absorbed_commits: Sequence[str] = ()
    initial_tasks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # task -> column values (reruns)
    conditions: Sequence[Mapping[str, Any]] = ()  # e.g. how a rerun chose its commit
    no_cache: bool = False  # tasks with `cache: true` run without a lookup (engine/cache.py)
    rejected: str | None = None  # why it can never start (admission): recorded failed, its tasks skipped, not run
    pull_request: int | None = None  # the pull request a `pull_request` run ran for (its number at `pr_provider`)
    pr_provider: str | None = None
    secrets_withheld: bool = False  # from a fork: none of the repository's secrets reach its tasks
    retest: bool = False  # a `/retest`: a new run of a head that ran already (no dedupe key)
    rejected_reason: str | None = None  # the reason recorded with `rejected` (default `Rejected`)

    @property
    def status(self) -> RunStatus:
        return RunStatus.FAILED if self.rejected is not None else RunStatus.PENDING

    @property
    def dedupe_key(self) -> str | None:
        if self.trigger is Trigger.TAG and self.commit_sha is not None:
            # Once per (repository, tag, commit, pipeline): a moved tag runs again only at a new commit.
            return f"{self.repo_id}:tag:{self.tag}:{self.commit_sha}:{self.pipeline}"
        if self.trigger is Trigger.PULL_REQUEST and self.commit_sha is not None:
            # Once per (repository, head commit, pipeline), apart from a push's run of the same commit; a `/retest`
            # asks for a run again, so it has none.
            return None if self.retest else f"{self.repo_id}:pr:{self.commit_sha}:{self.pipeline}"
        if not self.trigger.automatic or self.commit_sha is None:
            return None
        return f"{self.repo_id}:{self.commit_sha}:{self.pipeline}"


@dataclass(frozen=True, slots=True)
class Created:
    run_id: str
    created: bool  # False: an automatic run for this commit and pipeline already existed (returned instead)


def create_run(conn: Connection, new: NewRun, *, max_attempts: int = 50) -> Created:
    """Insert a run and its tasks inside the caller's transaction. Idempotent for automatic triggers.

    A `rejected` run (a push-started run admission refused) is recorded finished: failed with the reason and message,
    its tasks skipped, and a `run.status` event after `run.created`, so it shows up like any failed run and nothing
    waits on it."""
    now = utcnow()
    ended: dict[str, Any] = (
        {"reason": new.rejected_reason or REJECTED_REASON, "message": new.rejected, "finished_at": now}
        if new.rejected is not None
        else {}
    )
    status = new.status
    concurrency = new.spec.concurrency
    admission: queueing.Admission | None = None
    if new.rejected is None and queueing.governed(conn.engine, concurrency.limit if concurrency else None):
        admission = queueing.admit(
            conn,
            repo_id=new.repo_id,
            pipeline=new.pipeline,
            limit=concurrency.limit if concurrency else None,
            policy=concurrency.policy if concurrency else "queue",
        )
        status = admission.status
        if status == RunStatus.SKIPPED:
            ended = {"reason": admission.reason, "message": admission.message, "finished_at": now}
    prefix = run_id_prefix(new.pipeline, new.commit_sha)
    seq = _next_seq(conn, prefix, new.commit_sha)
    for _ in range(max_attempts):
        run_id = f"{prefix}-{seq}"
        try:
            with conn.begin_nested():
                conn.execute(  # parameters, not .values(): no statement to build and key per run
                    RUNS.insert(),
                    dict(
                        id=run_id,
                        repo_id=new.repo_id,
                        pipeline=new.pipeline,
                        commit_sha=new.commit_sha,
                        branch=new.branch,
                        tag=new.tag,
                        pull_request=new.pull_request,
                        pr_provider=new.pr_provider,
                        secrets_withheld=new.secrets_withheld,
                        trigger=new.trigger.value,
                        triggered_by=new.triggered_by,
                        params=dict(new.params),
                        spec=new.spec.to_dict(),
                        work_tree=new.work_tree,
                        work_path=new.work_path,
                        status=status.value,
                        priority=new.spec.priority,
                        concurrency_limit=concurrency.limit if concurrency else None,
                        parallelism=new.parallelism,
                        cancel_requested=False,
                        no_cache=new.no_cache,
                        parent_run=new.parent_run,
                        run_path_id=new.run_path_id,
                        dedupe_key=new.dedupe_key,
                        absorbed_commits=list(new.absorbed_commits),
                        conditions=[dict(c) for c in new.conditions],
                        created_at=now,
                        **ended,
                    ),
                )
        except IntegrityError:
            key = new.dedupe_key
            if key is not None:
                existing = conn.execute(sa.select(RUNS.c.id).where(RUNS.c.dedupe_key == key)).scalar()
                if existing is not None:
                    return Created(existing, created=False)
            seq += 1
            continue
        rows = [
            {
                "run_id": run_id,
                "name": t.name,
                "status": TaskStatus.PENDING.value,
                "attempt": 0,
                "user_failures": 0,
                "infra_failures": 0,
                "gpus": [],
                **new.initial_tasks.get(t.name, {}),
                **(_SKIPPED_REJECTED if new.rejected is not None else {}),
                **(_SKIPPED_CONCURRENCY if status == RunStatus.SKIPPED else {}),
            }
            for t in new.spec.tasks
        ]
        if new.initial_tasks:  # one executemany needs the same columns in every row
            columns = set().union(*rows)
            rows = [{c: row.get(c) for c in columns} for row in rows]
        for start in range(0, len(rows), 1000):  # bounded parameter batches: a 10,000-task run stays small
            conn.execute(TASKS.insert(), rows[start : start + 1000])
        conn.execute(
            EVENTS.insert(),
            dict(
                kind="run.created",
                run_id=run_id,
                repo_id=new.repo_id,
                commit_sha=new.commit_sha,
                time=utcnow(),
                data={
                    "pipeline": new.pipeline,
                    "trigger": new.trigger.value,
                    "by": new.triggered_by,
                    **({"parent_run": new.parent_run} if new.parent_run else {}),
                },
            ),
        )
        if new.rejected is not None:
            conn.execute(
                EVENTS.insert().values(
                    kind="run.status", run_id=run_id, repo_id=new.repo_id, commit_sha=new.commit_sha, time=utcnow(),
                    data={"status": RunStatus.FAILED.value, "reason": REJECTED_REASON, "message": new.rejected,
                          "pipeline": new.pipeline},
                )
            )  # fmt: skip
        if admission is not None:
            _settle(conn, new, run_id, admission, ended)
        return Created(run_id, created=True)
    raise StoreUnavailable(f"could not allocate a run id for {prefix} after {max_attempts} attempts")


def create_runs(conn: Connection, news: Sequence[NewRun]) -> list[Created]:
    """`create_run` for many runs in the caller's transaction, in few statements: what a schedule tick with a
    thousand slots due at one instant costs is then a handful of multi-row INSERTs, not six statements per run.

    Only plain runs are batched: one that admission rejected, one that goes through the queue (a `concurrency`
    limit, or `ODIN_MAX_ACTIVE_RUNS`: its decision reads what the runs before it did) or one with initial task states
    (a rerun) is created by `create_run`, after the batch, in the order given. The batch takes its run ids from one
    count per id prefix and is inserted under a savepoint; should any row collide (a run id taken meanwhile, an
    automatic run's `dedupe_key` already there), the savepoint is rolled back and every run of the batch goes through
    `create_run`, which settles each collision as it always did. The events are those `create_run` writes: a
    `run.created` per run. Returns one `Created` per run, in the order of `news`."""
    done: list[Created | None] = [None] * len(news)
    batch = [i for i, new in enumerate(news) if _batchable(conn, new)]
    if len(batch) > 1:
        ids = _insert_plain(conn, [news[i] for i in batch])
        for i, run_id in zip(batch, ids or (), strict=False):
            done[i] = Created(run_id, created=True)
    for i, new in enumerate(news):
        if done[i] is None:
            done[i] = create_run(conn, new)
    return [c for c in done if c is not None]


_SPEC_DICTS: OrderedDict[int, tuple[PipelineSpec, dict[str, Any]]] = OrderedDict()
_SPEC_DICTS_SIZE = 2048
_SPEC_DICTS_LOCK = threading.Lock()


def _spec_dict(spec: PipelineSpec) -> dict[str, Any]:
    """`spec.to_dict()`, remembered for the spec object: a schedule starts the same (cached, immutable) spec at every
    slot, and a thousand of them cost a tenth of a second to convert each time. Keyed by identity, holding the spec
    so that its id cannot be reused; the dict is only read (serialised into the run's row)."""
    key = id(spec)
    with _SPEC_DICTS_LOCK:
        hit = _SPEC_DICTS.get(key)
        if hit is not None and hit[0] is spec:
            _SPEC_DICTS.move_to_end(key)
            return hit[1]
    converted = spec.to_dict()
    with _SPEC_DICTS_LOCK:
        _SPEC_DICTS[key] = (spec, converted)
        while len(_SPEC_DICTS) > _SPEC_DICTS_SIZE:
            _SPEC_DICTS.popitem(last=False)
    return converted


def _batchable(conn: Connection, new: NewRun) -> bool:
    concurrency = new.spec.concurrency
    return (
        new.rejected is None
        and not new.initial_tasks
        and not queueing.governed(conn.engine, concurrency.limit if concurrency else None)
    )


def _insert_plain(conn: Connection, news: Sequence[NewRun]) -> list[str] | None:
    """Insert plain runs (see `_batchable`), their tasks and `run.created` events as three executemany statements;
    None (nothing inserted) when a row collides."""
    now = utcnow()
    prefixes = [run_id_prefix(new.pipeline, new.commit_sha) for new in news]
    pipelines: dict[str, set[str]] = {}
    for prefix, new in zip(prefixes, news, strict=True):
        pipelines.setdefault(prefix, set()).add(new.pipeline)
    seqs = _next_seqs(conn, pipelines)
    ids: list[str] = []
    for prefix in prefixes:
        ids.append(f"{prefix}-{seqs[prefix]}")
        seqs[prefix] += 1
    runs = [
        dict(
            id=run_id, repo_id=new.repo_id, pipeline=new.pipeline, commit_sha=new.commit_sha, branch=new.branch,
            tag=new.tag, trigger=new.trigger.value, triggered_by=new.triggered_by, params=dict(new.params),
            spec=_spec_dict(new.spec), work_tree=new.work_tree, work_path=new.work_path,
            status=RunStatus.PENDING.value, priority=new.spec.priority, concurrency_limit=None,
            parallelism=new.parallelism, cancel_requested=False, no_cache=new.no_cache, parent_run=new.parent_run,
            run_path_id=new.run_path_id, dedupe_key=new.dedupe_key, absorbed_commits=list(new.absorbed_commits),
            conditions=[dict(c) for c in new.conditions], created_at=now,
        )
        for run_id, new in zip(ids, news, strict=True)
    ]  # fmt: skip
    tasks = [
        {"run_id": run_id, "name": t.name, "status": TaskStatus.PENDING.value, "attempt": 0, "user_failures": 0,
         "infra_failures": 0, "gpus": []}
        for run_id, new in zip(ids, news, strict=True)
        for t in new.spec.tasks
    ]  # fmt: skip
    events = [
        dict(
            kind="run.created", run_id=run_id, repo_id=new.repo_id, commit_sha=new.commit_sha, time=now,
            data={"pipeline": new.pipeline, "trigger": new.trigger.value, "by": new.triggered_by,
                  **({"parent_run": new.parent_run} if new.parent_run else {})},
        )
        for run_id, new in zip(ids, news, strict=True)
    ]  # fmt: skip
    try:
        with conn.begin_nested():
            conn.execute(RUNS.insert(), runs)
            for start in range(0, len(tasks), 5000):
                conn.execute(TASKS.insert(), tasks[start : start + 5000])
            conn.execute(EVENTS.insert(), events)
    except IntegrityError:
        return None
    return ids


REJECTED_REASON = "Rejected"
_SKIPPED_REJECTED = {
    "status": TaskStatus.SKIPPED.value,
    "reason": REJECTED_REASON,
    "message": "not started: the run was rejected when created",
}


_SKIPPED_CONCURRENCY = {
    "status": TaskStatus.SKIPPED.value,
    "reason": queueing.PIPELINE_LIMIT,
    "message": "not started: the pipeline already had as many runs as its `concurrency.limit`",
}


def _settle(
    conn: Connection, new: NewRun, run_id: str, admission: queueing.Admission, ended: Mapping[str, Any]
) -> None:
    """After a governed run's insert: a skipped run's `run.status` event; or the runs it replaces cancelled, and the
    new run placed (`queueing.place`: started, or in order behind the others), with a `run.status` event if it waits."""
    status = admission.status
    if status == RunStatus.SKIPPED:
        conn.execute(
            EVENTS.insert().values(
                kind="run.status", run_id=run_id, repo_id=new.repo_id, commit_sha=new.commit_sha, time=utcnow(),
                data={"status": status.value, "reason": ended["reason"], "message": ended["message"],
                      "pipeline": new.pipeline},
            )
        )  # fmt: skip
        return
    queueing.replace_runs(conn, admission.replaces, by_run=run_id)
    concurrency = new.spec.concurrency
    wait = queueing.place(
        conn,
        run_id,
        repo_id=new.repo_id,
        pipeline=new.pipeline,
        limit=concurrency.limit if concurrency else None,
        max_active=queueing.max_active_runs(conn.engine),
    )
    if wait is None:
        return
    conn.execute(
        EVENTS.insert().values(
            kind="run.status", run_id=run_id, repo_id=new.repo_id, commit_sha=new.commit_sha, time=utcnow(),
            data={"status": RunStatus.QUEUED.value, "reason": wait[0], "message": wait[1], "pipeline": new.pipeline},
        )
    )  # fmt: skip


def _next_seq(conn: Connection, prefix: str, commit_sha: str | None) -> int:
    """The first sequence number to try for a run id (`create_run` moves on past any taken one). On SQLite, whose
    text compares by bytes, the ids under `prefix-` are a range of the primary key (`-` and `.` are neighbours), read
    from its index: SQLite's LIKE folds case and so scans every run, which a thousand runs created in one
    transaction (a schedule tick) pay a thousand times. On Postgres LIKE cannot use the primary key's index under a
    collation other than C (most databases, C.UTF-8 included): it read every run, seconds on a million. The runs
    under `prefix-` are runs of the commit the prefix names (its first 7 digits, or none for `-local`), so the
    commit's index narrows them first; a run that predicate missed would only cost `create_run` a retry."""
    if conn.dialect.name == "sqlite":
        where = sa.and_(RUNS.c.id >= f"{prefix}-", RUNS.c.id < f"{prefix}.")
    else:
        same_commit = (
            RUNS.c.commit_sha.is_(None)
            if commit_sha is None
            else sa.and_(RUNS.c.commit_sha >= commit_sha[:7], RUNS.c.commit_sha < commit_sha[:7] + "g")
        )
        like = RUNS.c.id.like(prefix.replace("%", r"\%").replace("_", r"\_") + "-%", escape="\\")
        where = sa.and_(same_commit, like)
    count = conn.execute(sa.select(sa.func.count()).select_from(RUNS).where(where)).scalar()
    return int(count or 0) + 1


_SEQ_CHUNK = 200  # prefixes per statement: SQLite allows 500 SELECTs in one compound statement


def _next_seqs(conn: Connection, prefixes: Mapping[str, set[str]]) -> dict[str, int]:
    """`_next_seq` of many prefixes (each with the pipelines whose runs it names) in one statement per 200 on SQLite:
    a UNION ALL of counts of primary-key ranges, as in `_next_seq`, written as text (compiling two hundred SELECTs
    through SQLAlchemy would cost what it saves).

    Postgres reads `LIKE 'prefix-%'` with an index only under the C collation, so there one statement joins the
    prefixes (as arrays) to the runs of their pipelines (through `ix_runs_pipeline_created`): a run of another
    pipeline with the same id prefix (`a/x` and `b/x`) is not counted, and then its id collides and the caller falls
    back to `create_run`, which counts them all. A prefix holds only `[a-z0-9-]` (`run_id_prefix`): no LIKE wildcard
    to escape."""
    found: dict[str, int] = {}
    if conn.dialect.name == "postgresql":
        pairs = sorted((prefix, pipeline) for prefix, names in prefixes.items() for pipeline in names)
        rows = conn.execute(_PG_COUNTS, {"prefixes": [p for p, _ in pairs], "pipelines": [name for _, name in pairs]})
        return {str(row.prefix): int(row.n or 0) + 1 for row in rows}
    ordered = sorted(prefixes)
    for start in range(0, len(ordered), _SEQ_CHUNK):
        chunk = ordered[start : start + _SEQ_CHUNK]
        parts: list[str] = []
        params: dict[str, str] = {}
        for n, prefix in enumerate(chunk):
            params[f"p{n}"], params[f"lo{n}"], params[f"hi{n}"] = prefix, f"{prefix}-", f"{prefix}."
            # Only bind parameter names and the table's name go into the text; every value is a bound parameter.
            parts.append(f"SELECT :p{n} AS prefix, count(*) AS n FROM {RUNS.name} WHERE id >= :lo{n} AND id < :hi{n}")  # noqa: S608
        for row in conn.execute(sa.text(" UNION ALL ".join(parts)), params):
            found[str(row.prefix)] = int(row.n or 0) + 1
    return found


_PG_COUNTS = sa.text(f"""
    SELECT p.prefix AS prefix, count(r.id) AS n
    FROM unnest(CAST(:prefixes AS text[]), CAST(:pipelines AS text[])) AS p(prefix, pipeline)
    LEFT JOIN {RUNS.name} AS r ON r.pipeline = p.pipeline AND r.id LIKE p.prefix || '-%'
    GROUP BY p.prefix
""")  # noqa: S608 (only the table's name is formatted in; every value is a bound parameter)


def epoch_to_datetime(t: float | None) -> datetime | None:
    return None if t is None else datetime.fromtimestamp(t, UTC)


def datetime_to_epoch(d: datetime | None) -> float | None:
    return None if d is None else d.timestamp()


# -- reading back what was recorded ---------------------------------------------------------------------------------


def run_created_events(conn: Connection, run_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The `run.created` events of these runs (and the `run.status` of those created rejected), in the order they
    were recorded, read inside the caller's transaction (sync publishes them with the commit that created the runs)."""
    if not run_ids:
        return []
    kinds = ("run.created", "run.status")
    rows = conn.execute(sa.select(EVENTS).where(EVENTS.c.kind.in_(kinds), EVENTS.c.run_id.in_(list(run_ids)))).all()
    return [dict(r._mapping) for r in sorted(rows, key=lambda r: r.id)]


def run_events(engine: DbEngine, run_id: str, kind: str, *, limit: int = 1000) -> list[dict[str, Any]]:
    """A run's events of one kind, oldest first. Any database failure is a `StoreError`."""
    try:
        with engine.connect() as conn:
            q = sa.select(EVENTS).where(EVENTS.c.run_id == run_id, EVENTS.c.kind == kind)
            rows = conn.execute(q.order_by(EVENTS.c.id).limit(limit)).all()
    except sa.exc.SQLAlchemyError as e:
        raise StoreError(f"cannot read the events of run {run_id}: {e}") from e
    return [dict(r._mapping) for r in rows]


def task_rows(engine: DbEngine, run_id: str) -> list[Mapping[Any, Any]]:
    """A run's task rows, in creation order."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(TASKS).where(TASKS.c.run_id == run_id).order_by(TASKS.c.id)).all()
    return [r._mapping for r in rows]
