"""The engine loop: folds executor observations into run states, asks `decide`, persists, then acts.

One thread owns every active run's in-memory state, so there are no locks around it. Anything that happens
elsewhere (an executor observing a pod, the API creating or cancelling a run) arrives as a message on one queue;
the loop drains what is there, applies it, runs `decide` to a fixed point for the runs it touched, commits ALL the
resulting changes in one transaction, and only then starts or kills tasks. That order is the crash-safety argument:
an attempt is recorded as STARTING before it exists anywhere, so after a SIGKILL the store may believe in an attempt
that never started (the executor reports it lost, it is retried), but never forgets one that did.

If the store is unavailable, the loop keeps the uncommitted changes and their side effects, and retries with
backoff; nothing is started until it is recorded.

Changes that no side effect waits on (a task seen running) are committed within `coalesce` seconds rather than at
once, so a burst of observations costs one transaction, not one each. Anything that precedes a start or a kill is
committed before it, as above.

Stopping is two steps. `drain` (safe from a signal handler) stops the engine taking work at once: from then on it
starts nothing, no new task, retry or run, but still records what running tasks do, cancels and kills, and finishes
runs whose tasks have all ended. `stop` then ends the loop. Between the two, `wait_idle` lets the caller give running
tasks a grace period to end with their outcome recorded.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine as DbEngine

from odin.controller.backoff import Backoff
from odin.controller.bus import EventBus
from odin.controller.engine import references
from odin.controller.engine.decide import FinishRun, Gate, KillTask, RetryPolicy, StartTask, TaskAction, decide
from odin.controller.engine.references import RecordedOutputs, Unresolved
from odin.controller.engine.state import Dag, RunState, TaskState
from odin.controller.engine.transitions import apply_action, apply_observation
from odin.controller.executors.base import Executor, OutputsUnsupported
from odin.controller.store.db import StoreUnavailable, Writer
from odin.controller.store.runs import (
    LoadedRun,
    WriteBatch,
    cancel_requested_ids,
    datetime_to_epoch,
    epoch_to_datetime,
    load_runs,
    request_cancel,
    write_batch,
)
from odin.controller.store.types import utcnow
from odin.controller.vocabulary import (
    ActiveAttempt,
    Failure,
    Observation,
    RunContext,
    RunStatus,
    TaskLaunch,
    TaskPaths,
    TaskStatus,
)
from odin.schema import substitute
from odin.schema.model import PipelineSpec, TaskSpec

log = logging.getLogger(__name__)

# While the store is down (no jitter: one engine per deployment, nothing to spread out). Re-reading the store after
# an outage waits 0.5 s, doubling up to 30 s; held changes are retried sooner, from 0.2 s.
_RECOVER_BACKOFF = Backoff(initial=0.5, maximum=30.0, jitter=0.0)
_FLUSH_BACKOFF = Backoff(initial=0.2, maximum=30.0, jitter=0.0)


@dataclass
class _ActiveRun:
    ctx: RunContext
    spec: PipelineSpec
    dag: Dag
    state: RunState
    tasks: Mapping[str, TaskSpec]
    params: Mapping[str, str]
    parallelism: int
    started: bool
    paths: TaskPaths
    variables: dict[str, str]
    wake_at: float | None = None
    recorded: RecordedOutputs = field(default_factory=RecordedOutputs)  # succeeded tasks' outputs, for references
    gated: frozenset[str] = frozenset()  # tasks with a `when`
    producers: dict[str, tuple[TaskSpec, ...]] = field(default_factory=dict)  # cache of spec.producers(name)


@dataclass(frozen=True, slots=True)
class _Submit:
    run_id: str


@dataclass(frozen=True, slots=True)
class _Cancel:
    run_id: str


@dataclass(frozen=True, slots=True)
class _Stop:
    pass


@dataclass(frozen=True, slots=True)
class _Wake:
    """Look at the runs again now (after `drain`)."""


_Message = Observation | _Submit | _Cancel | _Stop | _Wake


@dataclass
class _Pending:
    """Changes not yet committed, and what to do once they are."""

    batch: WriteBatch = field(default_factory=WriteBatch)
    effects: list[Callable[[], None]] = field(default_factory=list)


class Engine:
    """Drives every active run to completion on one executor.

    Thread-safe entry points: `submit`, `cancel`, `report` (the executor's callback), `wait`, `stop`.
    """

    def __init__(
        self,
        db: DbEngine,
        executor: Executor,
        *,
        bus: EventBus | None = None,
        policy: RetryPolicy | None = None,
        max_active_tasks: int = 64,
        default_parallelism: int = 8,
        rescan_interval: float = 3.0,
        coalesce: float = 0.02,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.executor = executor
        self.bus = bus or EventBus()
        self.policy = policy or RetryPolicy()
        self.max_active_tasks = max_active_tasks
        self.default_parallelism = default_parallelism
        self.rescan_interval = rescan_interval
        self.coalesce = coalesce
        self.clock = clock
        self._flush_due: float | None = None
        self._writer = Writer(db)
        self._queue: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._runs: dict[str, _ActiveRun] = {}
        self._active_total = 0
        self._starved: set[str] = set()
        self._pending = _Pending()
        self._thread: threading.Thread | None = None
        self._finished: dict[str, RunStatus] = {}
        self._finished_cond = threading.Condition()
        self._store_failures = 0
        self._ready = threading.Event()
        self._draining = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        executor.bind(self.report)

    # -- public, thread-safe --------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._main, name="odin-engine", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout: float | None = None) -> bool:
        """True once recovery is done and the loop takes messages."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop. Running tasks are left alone: a restarted engine re-attaches to them."""
        if self._thread is None:
            return
        self._queue.put(_Stop())
        self._thread.join(timeout)
        self._thread = None

    def drain(self) -> None:
        """Stop taking work now: nothing starts any more (see the module docstring). Safe in a signal handler: it
        sets an event no other code waits on and queues a wake-up (SimpleQueue.put is reentrant)."""
        self._draining.set()
        self._queue.put(_Wake())

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """True once no attempt of this engine is starting or running (False after `timeout` seconds)."""
        return self._idle.wait(timeout)

    def submit(self, run_id: str) -> None:
        """A run was created in the store: start driving it."""
        self._queue.put(_Submit(run_id))

    def cancel(self, run_id: str, *, by: str | None = None) -> bool:
        """Ask a run to stop: flagged in the store (survives restarts), then acted on by the loop."""
        flagged = request_cancel(self.db, run_id, by=by)
        if flagged:
            self.cancel_flagged(run_id)
        return flagged

    def cancel_flagged(self, run_id: str) -> None:
        """A run was flagged for cancellation in the store (`request_cancel`): act now, not at the next rescan."""
        self._queue.put(_Cancel(run_id))

    def report(self, obs: Observation) -> None:
        self._queue.put(obs)

    def wait(self, run_id: str, timeout: float | None = None) -> RunStatus | None:
        """Block until a run this engine drives is finished; its final status, or None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._finished_cond:
            while run_id not in self._finished:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._finished_cond.wait(remaining)
            return self._finished[run_id]

    # -- the loop ---------------------------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._recover()
        except StoreUnavailable as e:
            log.error("engine cannot read the store at start (%s); retrying", e)
            while not self._retry_recover():
                pass
        self._ready.set()
        next_rescan = self.clock() + self.rescan_interval
        # Every recovered run is stepped once: one with nothing active (still pending, or only retrying tasks) gets
        # no observation that would wake it otherwise.
        recovered: set[str] = set(self._runs)
        while True:
            timeout = 0.0 if recovered else self._next_timeout(next_rescan)
            messages = self._drain(timeout)
            if any(isinstance(m, _Stop) for m in messages):
                self._flush()
                self._writer.close()
                return
            try:
                next_rescan = self._turn(messages, next_rescan, recovered)
            except Exception:
                # Last line of defence: a bug in one turn must not stop every run. The store keeps the truth;
                # the next rescan re-reads what this turn could not finish.
                log.exception("engine turn failed; continuing")
                self._store_failures += 1
            recovered = set()

    def _turn(self, messages: list[_Message], next_rescan: float, touched: set[str]) -> float:
        """One pass: apply messages, decide for the touched runs, commit, act. Returns the next rescan time."""
        now = self.clock()
        touched = set(touched)
        for m in messages:
            self._handle(m, touched, now)
        if now >= next_rescan:
            self._rescan(touched)
            next_rescan = now + self.rescan_interval
        for run_id, run in list(self._runs.items()):
            if run.wake_at is not None and run.wake_at <= now:
                touched.add(run_id)
        if self._starved and self._active_total < self.max_active_tasks:
            touched |= self._starved
            self._starved.clear()
        for run_id in touched:
            if run_id in self._runs:
                self._step(self._runs[run_id], now)
        if self._pending.effects or (self._flush_due is not None and now >= self._flush_due):
            self._flush()
        elif self._pending.batch and self._flush_due is None:
            self._flush_due = now + self.coalesce
        return next_rescan

    def _retry_recover(self) -> bool:
        time.sleep(_RECOVER_BACKOFF.delay(self._store_failures))
        self._store_failures += 1
        try:
            self._recover()
        except StoreUnavailable:
            return False
        self._store_failures = 0
        return True

    def _next_timeout(self, next_rescan: float) -> float:
        if self._store_failures and (self._pending.batch or self._pending.effects):
            return _FLUSH_BACKOFF.delay(self._store_failures)  # the store was down: retry soon
        now = self.clock()
        wakes = [r.wake_at for r in self._runs.values() if r.wake_at is not None]
        if self._flush_due is not None:
            wakes.append(self._flush_due)
        target = min([next_rescan, *wakes])
        return max(0.0, min(target - now, self.rescan_interval))

    def _drain(self, timeout: float) -> list[_Message]:
        try:
            first = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
        except queue.Empty:
            return []
        messages = [first]
        while len(messages) < 10_000:
            try:
                messages.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return messages

    def _handle(self, m: _Message, touched: set[str], now: float) -> None:
        if isinstance(m, Observation):
            run = self._runs.get(m.run_id)
            if run is None:
                return
            before = run.state.tasks.get(m.task)
            new = apply_observation(run.state, m)
            if new is None or before is None:
                return
            self._account(before, new)
            if new.status == TaskStatus.SUCCEEDED:
                run.recorded.record(m.task, m.resource.get("results"), m.resource.get("artifacts"))
            self._record_task(run, m.task, new, before, resource=m.resource, exit_code=m.exit_code)
            touched.add(m.run_id)
        elif isinstance(m, _Submit):
            if m.run_id not in self._runs:
                try:
                    loaded_runs = load_runs(self.db, [m.run_id])
                except StoreUnavailable as e:
                    log.warning("run %s: cannot load it yet (%s); the next rescan will", m.run_id, e)
                    return
                for loaded in loaded_runs:
                    if loaded.run["status"] in (RunStatus.PENDING, RunStatus.RUNNING):
                        self._adopt(loaded, recovering=False)
            touched.add(m.run_id)
        elif isinstance(m, _Cancel):
            run = self._runs.get(m.run_id)
            if run is not None and not run.state.cancel_requested:
                run.state.cancel_requested = True
                log.info("run %s: cancellation requested", m.run_id)
            touched.add(m.run_id)

    def _rescan(self, touched: set[str]) -> None:
        """Pick up what other processes did: runs created by another replica's API, cancel flags."""
        try:
            for loaded in load_runs(self.db):
                if loaded.run["id"] not in self._runs:
                    self._adopt(loaded, recovering=True)
                    touched.add(loaded.run["id"])
            for run_id in cancel_requested_ids(self.db, self._runs):
                run = self._runs[run_id]
                if not run.state.cancel_requested:
                    run.state.cancel_requested = True
                    touched.add(run_id)
        except StoreUnavailable as e:
            log.warning("engine rescan skipped: %s", e)

    # -- loading runs -------------------------------------------------------------------------------------------
    def _recover(self) -> None:
        loaded = load_runs(self.db)
        attempts: list[ActiveAttempt] = []
        for lr in loaded:
            if lr.run["id"] in self._runs:
                continue
            run = self._adopt(lr, recovering=True)
            if run is None:
                continue
            rows = {t["name"]: t for t in lr.tasks}
            for name in run.state.active:
                row = rows[name]
                resource = {
                    k: row[k]
                    for k in ("pid", "resource_kind", "resource_name", "namespace", "node", "log_path")
                    if row.get(k) is not None
                }
                attempts.append(
                    ActiveAttempt(run.ctx, run.tasks[name], row["attempt"], TaskStatus(row["status"]), resource)
                )
        if loaded:
            log.info("engine resumed %d run(s) with %d active attempt(s)", len(self._runs), len(attempts))
        if attempts:
            self.executor.recover(attempts)
        self._flush()

    def _adopt(self, loaded: LoadedRun, *, recovering: bool) -> _ActiveRun | None:
        r = loaded.run
        ctx = RunContext(
            run_id=r["id"],
            pipeline=r["pipeline"],
            commit_sha=r["commit_sha"],
            repo_url=r.get("repo_url"),
            trigger=r["trigger"],
            work_tree=r["work_tree"],
            work_path=r["work_path"],
            namespace=r.get("repo_namespace"),
            run_path_id=r.get("run_path_id"),
        )
        try:
            spec = PipelineSpec.from_dict(r["spec"])
            dag = Dag.from_spec(spec)
            states = {t["name"]: _task_state(t) for t in loaded.tasks}
            paths = self.executor.paths(ctx)
        except Exception as e:  # a corrupt or incompatible frozen spec must not take the engine down
            log.exception("run %s cannot be driven", r["id"])
            self._pending.batch.run(
                r["id"], status=RunStatus.ERROR.value, reason="InvalidSpec", message=str(e), finished_at=utcnow()
            )
            self._pending.batch.event(
                "run.status", run_id=r["id"], commit_sha=r["commit_sha"], status=RunStatus.ERROR.value, message=str(e)
            )
            return None
        state = RunState.new(dag, states, cancel_requested=bool(r["cancel_requested"]))
        params = dict(r["params"] or {})
        variables = {
            "RUN_PATH": paths.run_path,
            "WORK_PATH": paths.work_path,
            "ROOT_PATH": paths.root_path,
            "PIPE_ID": ctx.run_id,
            "COMMIT_SHA": ctx.commit_sha or "",
            **{f"params.{k}": v for k, v in params.items()},
        }
        run = _ActiveRun(
            ctx=ctx,
            spec=spec,
            dag=dag,
            state=state,
            tasks={t.name: t for t in spec.tasks},
            params=params,
            parallelism=r["parallelism"] or self.default_parallelism,
            started=r["status"] == RunStatus.RUNNING,
            paths=paths,
            variables=variables,
            gated=frozenset(t.name for t in spec.tasks if t.when is not None),
        )
        for row in loaded.tasks:  # outputs of tasks that succeeded before a restart, or were reused by a rerun
            if row["status"] == TaskStatus.SUCCEEDED:
                run.recorded.record(row["name"], row.get("results"), row.get("artifacts"))
        self._runs[ctx.run_id] = run
        self._add_active(state.active_count)
        self._pending.effects.append(lambda: self.executor.prepare_run(ctx))
        if not recovering:
            log.info("run %s (pipeline %s, commit %s) accepted", ctx.run_id, ctx.pipeline, ctx.commit_sha)
        return run

    # -- deciding -------------------------------------------------------------------------------------------------
    def _step(self, run: _ActiveRun, now: float) -> None:
        for _ in range(100_000):
            # Draining: no slot is free, so `decide` starts nothing (no task, retry or run) but still kills,
            # skips and finishes.
            free = 0 if self._draining.is_set() else self.max_active_tasks - self._active_total
            decision = decide(
                run.dag,
                run.state,
                now=now,
                parallelism=run.parallelism,
                free_slots=max(free, 0),
                policy=self.policy,
                gates=self._gates(run) if run.gated else None,
            )
            if not decision.actions:
                run.wake_at = decision.wake_at
                if free <= 0 and run.state.ready:
                    self._starved.add(run.ctx.run_id)
                return
            for action in decision.actions:
                if isinstance(action, FinishRun):
                    self._finish(run, action)
                    return
                self._act(run, action)
        raise RuntimeError(f"run {run.ctx.run_id}: decide did not reach a fixed point")

    def _gates(self, run: _ActiveRun) -> dict[str, Gate]:
        """The `when` of each ready task that has one, evaluated on the values recorded so far (see `decide`)."""
        gates: dict[str, Gate] = {}
        for name in run.state.ready:
            if name not in run.gated:
                continue
            spec = run.tasks[name]
            assert spec.when is not None
            try:
                values = self._resolve(run, spec)
            except Unresolved as e:
                gates[name] = Gate(run=False, error=True, message=f"`when: {spec.when}` cannot be evaluated: {e}")
                continue
            gates[name] = references.gate(spec.when, self._task_variables(run, spec), values)
        return gates

    def _resolve(self, run: _ActiveRun, spec: TaskSpec) -> dict[str, Any]:
        if not spec.references:
            return {}

        def producers(name: str) -> tuple[TaskSpec, ...]:
            found = run.producers.get(name)
            if found is None:
                found = run.producers[name] = run.spec.producers(name)
            return found

        def succeeded(name: str) -> bool:
            return run.state[name].status == TaskStatus.SUCCEEDED

        return references.resolve(run.spec, spec, run.recorded, succeeded, producers)

    @staticmethod
    def _task_variables(run: _ActiveRun, spec: TaskSpec) -> dict[str, str]:
        return {**run.variables, "TASK_ID": f"{run.ctx.run_id}--{spec.name}", "TASK_NAME": spec.name}

    def _act(self, run: _ActiveRun, action: TaskAction) -> None:
        task = action.task
        before = run.state[task]
        new = apply_action(run.state, action)
        if new is None:
            return
        self._account(before, new)
        if isinstance(action, StartTask):
            if not run.started:
                run.started = True
                self._pending.batch.run(run.ctx.run_id, status=RunStatus.RUNNING.value, started_at=utcnow())
                self._pending.batch.event(
                    "run.status", run_id=run.ctx.run_id, commit_sha=run.ctx.commit_sha, status=RunStatus.RUNNING.value
                )
            run.recorded.forget(task)
            self._record_task(run, task, new, before)
            self._launch(run, run.tasks[task], action.attempt)
        elif isinstance(action, KillTask):
            ctx, attempt, reason = run.ctx, new.attempt, action.reason
            log.info("run %s task %s: killing attempt %d (%s)", ctx.run_id, task, attempt, reason)
            self._pending.effects.append(lambda: self.executor.kill(ctx.run_id, task, attempt, reason))
        else:
            self._record_task(run, task, new, before)

    def _launch(self, run: _ActiveRun, spec: TaskSpec, attempt: int) -> None:
        variables = self._task_variables(run, spec)
        try:
            # Where this attempt writes its outputs, and what it reads from earlier tasks (issue 11).
            produced: dict[str, str] = {}
            try:
                dirs = self.executor.attempt_dirs(run.ctx, spec.name, attempt)
                produced = {"OUTPUT_PATH": dirs.output_path, "RESULTS_PATH": dirs.results_path}
            except OutputsUnsupported as e:
                if spec.artifacts or spec.results or spec.references:
                    self._fail_launch(run, spec, attempt, "OutputsUnsupported", str(e))
                    return
            variables.update(produced)
            variables.update(references.texts(self._resolve(run, spec)))
            env = {**produced, **{k: substitute(v, variables) for k, v in spec.env.items()}}
            env.update(
                ODIN_RUN=run.ctx.run_id,
                ODIN_TASK=spec.name,
                ODIN_TASK_ID=variables["TASK_ID"],
                ODIN_ATTEMPT=str(attempt),
                ODIN_PIPELINE=run.ctx.pipeline,
                ODIN_COMMIT_SHA=run.ctx.commit_sha or "",
                ODIN_RUN_PATH=run.paths.run_path,
                ODIN_WORK_PATH=run.paths.work_path,
                ODIN_ROOT_PATH=run.paths.root_path,
                **{f"ODIN_{k}": v for k, v in produced.items()},
            )
            launch = TaskLaunch(
                run=run.ctx,
                spec=spec,
                attempt=attempt,
                command=tuple(substitute(c, variables) for c in spec.command),
                args=tuple(substitute(a, variables) for a in spec.args),
                env=env,
                paths=run.paths,
            )
        except Unresolved as e:
            self._fail_launch(run, spec, attempt, "UnresolvedReference", str(e))
            return
        except Exception as e:
            self._fail_launch(run, spec, attempt, "InvalidTask", str(e))
            return

        def start() -> None:
            try:
                self.executor.start(launch)
            except Exception as e:  # an executor bug must become a task status, not a dead engine
                log.exception("run %s task %s: executor failed to start it", launch.run.run_id, launch.task)
                self.report(
                    Observation(
                        launch.run.run_id,
                        launch.task,
                        attempt,
                        TaskStatus.FAILED,
                        reason="ExecutorError",
                        message=str(e),
                        failure=Failure.INFRA,
                    )
                )

        self._pending.effects.append(start)

    def _fail_launch(self, run: _ActiveRun, spec: TaskSpec, attempt: int, reason: str, message: str) -> None:
        """The attempt cannot be launched as written: a PERMANENT failure (retrying the same spec cannot help)."""
        self.report(
            Observation(
                run.ctx.run_id, spec.name, attempt, TaskStatus.FAILED, reason=reason, message=message,
                failure=Failure.PERMANENT,
            )
        )  # fmt: skip

    def _finish(self, run: _ActiveRun, action: FinishRun) -> None:
        run_id = run.ctx.run_id
        log.info("run %s (commit %s) finished: %s (%s)", run_id, run.ctx.commit_sha, action.status, action.message)
        self._pending.batch.run(
            run_id, status=action.status.value, message=action.message, finished_at=utcnow(), reason=None
        )
        self._pending.batch.event(
            "run.status",
            run_id=run_id,
            commit_sha=run.ctx.commit_sha,
            status=action.status.value,
            message=action.message,
            pipeline=run.ctx.pipeline,
        )
        del self._runs[run_id]
        self._starved.discard(run_id)
        ctx = run.ctx

        def done() -> None:
            self.executor.finish_run(ctx)
            with self._finished_cond:
                self._finished[run_id] = action.status
                self._finished_cond.notify_all()

        self._pending.effects.append(done)

    # -- recording ------------------------------------------------------------------------------------------------
    def _account(self, before: TaskState, after: TaskState) -> None:
        self._add_active(int(after.status.active) - int(before.status.active))

    def _add_active(self, delta: int) -> None:
        self._active_total += delta
        if self._active_total > 0:
            self._idle.clear()
        else:
            self._idle.set()

    def _record_task(
        self,
        run: _ActiveRun,
        task: str,
        new: TaskState,
        before: TaskState,
        *,
        resource: Mapping[str, Any] | None = None,
        exit_code: int | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "status": new.status.value,
            "attempt": new.attempt,
            "user_failures": new.user_failures,
            "infra_failures": new.infra_failures,
            "reason": new.reason,
            "message": new.message,
            "failure": new.failure.value if new.failure else None,
            "not_before": epoch_to_datetime(new.not_before),
            "started_at": epoch_to_datetime(new.started_at),
        }
        if new.status == TaskStatus.STARTING:
            values.update(exit_code=None, finished_at=None, pid=None, reason=None, message=None, failure=None)
            values.update(results=None, artifacts=None)
        if new.status.terminal or (new.status == TaskStatus.RETRYING and before.status != TaskStatus.RETRYING):
            values["finished_at"] = utcnow()
        if exit_code is not None:
            values["exit_code"] = exit_code
        if resource:
            values.update(resource)
        self._pending.batch.task(run.ctx.run_id, task, **values)
        if new.undecided:
            return  # an attempt failed; the decision taken in this same step (retry or fail) is the event
        if new.status != before.status or new.attempt != before.attempt or before.undecided:
            status = new.status.value
            self._pending.batch.event(
                "task.status",
                run_id=run.ctx.run_id,
                task=task,
                commit_sha=run.ctx.commit_sha,
                status=status,
                attempt=new.attempt,
                reason=new.reason,
                message=new.message,
                exit_code=exit_code,
            )
            if new.status.terminal or new.status == TaskStatus.RETRYING:
                log.info(
                    "run %s task %s attempt %d: %s%s",
                    run.ctx.run_id,
                    task,
                    new.attempt,
                    status,
                    f" ({new.reason}: {new.message})" if new.message else "",
                )

    def _flush(self) -> None:
        """Commit pending changes, then perform their side effects. On store failure keep both for later."""
        pending = self._pending
        self._flush_due = None
        if pending.batch:
            try:
                stored = write_batch(self.db, pending.batch, writer=self._writer)
            except StoreUnavailable as e:
                self._store_failures += 1
                if self._store_failures in (1, 10) or self._store_failures % 100 == 0:
                    log.error("engine cannot record changes (%s); holding them and retrying", e)
                return
            if self._store_failures:
                log.info("store reachable again; recorded held changes")
            self._store_failures = 0
            for ev in stored:
                self.bus.publish(ev)
        self._pending = _Pending()
        for effect in pending.effects:
            effect()


def _task_state(row: Mapping[str, Any]) -> TaskState:
    failure = row.get("failure")
    return TaskState(
        status=TaskStatus(row["status"]),
        attempt=row["attempt"],
        user_failures=row.get("user_failures") or 0,
        infra_failures=row.get("infra_failures") or 0,
        started_at=datetime_to_epoch(row.get("started_at")),
        not_before=datetime_to_epoch(row.get("not_before")),
        failure=Failure(failure) if failure else None,
        reason=row.get("reason"),
        message=row.get("message"),
    )
