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

On a leader every commit is fenced (`store.leadership`): it is made only while the leadership epoch the engine runs
under is current. A refused commit (another replica leads) drops its changes and their side effects, so nothing the
loop decided after the last accepted commit happens; the loop ends, and the controller steps down. Started again for
a new leadership, the engine forgets its in-memory runs and recovers from the store.

The loop itself is the scheduling: messages, `decide`, actions. What it decides and what waits on the commit are
kept by `engine.recording.Recorder`; how a run read from the store becomes one the loop drives, and what is handed
back to the executor after a restart, is `engine.adoption`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from odin.controller.backoff import Backoff
from odin.controller.bus import EventBus
from odin.controller.engine.adoption import (
    ActiveRun,
    CannotDrive,
    active_attempts,
    active_run,
    gates,
    run_context,
    task_launch,
)
from odin.controller.engine.cache import OutputsPresent, cache_key, choose, local_outputs_present
from odin.controller.engine.decide import FinishRun, KillTask, RetryPolicy, StartTask, TaskAction, decide
from odin.controller.engine.recording import Recorder
from odin.controller.engine.references import Unresolved
from odin.controller.engine.state import TaskState
from odin.controller.engine.transitions import apply_action, apply_observation
from odin.controller.executors.base import Executor, OutputsUnsupported
from odin.controller.store.cache_queries import cached_tasks
from odin.controller.store.db import DbEngine, StoreUnavailable
from odin.controller.store.leadership import Fence
from odin.controller.store.queueing import promote_queued
from odin.controller.store.runs import (
    ACTIVE_RUN_STATUSES,
    LoadedRun,
    active_runs,
    cancel_requests,
    load_runs,
    request_cancel,
)
from odin.controller.vocabulary import CACHED, ActiveAttempt, Failure, Observation, RunStatus, TaskLaunch, TaskStatus
from odin.schema.model import TaskSpec

log = logging.getLogger(__name__)

# While the store is down (no jitter: one engine per deployment, nothing to spread out). Re-reading the store after
# an outage waits 0.5 s, doubling up to 30 s; held changes are retried sooner, from 0.2 s.
_RECOVER_BACKOFF = Backoff(initial=0.5, maximum=30.0, jitter=0.0)
_FLUSH_BACKOFF = Backoff(initial=0.2, maximum=30.0, jitter=0.0)


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
        outputs_present: OutputsPresent = local_outputs_present,
        task_env: Callable[[TaskLaunch], Mapping[str, str]] | None = None,
        fence: Callable[[], Fence | None] = lambda: None,
    ) -> None:
        """`task_env`: variables added to every attempt's environment just before it starts, where the task's own
        `env` does not set them (MLflow tracking's nested run, `odin.controller.tracking.worker`); it bounds its own
        time and never raises for an outage. `fence`: the leadership every commit is conditional on (the
        controller's leader lock); once the store refuses a commit for it, the loop stops acting and ends."""
        self.db = db
        self.outputs_present = outputs_present  # whether a cache hit's artifacts still exist (engine/cache.py)
        self.task_env = task_env
        self.executor = executor
        self.bus = bus or EventBus()
        self.policy = policy or RetryPolicy()
        self.max_active_tasks = max_active_tasks
        self.default_parallelism = default_parallelism
        self.rescan_interval = rescan_interval
        self.coalesce = coalesce
        self.clock = clock
        self._recorder = Recorder(db, self.bus, coalesce=coalesce, fence=fence)
        self._started_before = False
        self._queue: queue.SimpleQueue[_Message] = queue.SimpleQueue()
        self._runs: dict[str, ActiveRun] = {}
        self._active_total = 0
        self._starved: set[str] = set()
        self._thread: threading.Thread | None = None
        self._finished: dict[str, RunStatus] = {}
        self._finished_cond = threading.Condition()
        self._ready = threading.Event()
        self._draining = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        executor.bind(self.report)

    # -- public, thread-safe --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the loop. A loop started again (a new leadership) forgets what the last one held in memory and
        reads the store afresh: another leader may have changed everything since."""
        if self._thread is not None and self._thread.is_alive():
            return
        if self._started_before:
            self._forget()
        self._started_before = True
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
    def fenced(self) -> bool:
        """Whether the store refused this engine's writes for a lost leadership (its loop has ended)."""
        return self._recorder.fenced

    def _forget(self) -> None:
        # A `_Stop` left by `stop` after the loop had already ended (fenced) must not end the next loop; the rest
        # (submits, the executor's observations) still stands.
        kept: list[_Message] = []
        while True:
            try:
                message = self._queue.get_nowait()
            except queue.Empty:
                break
            if not isinstance(message, _Stop):
                kept.append(message)
        for message in kept:
            self._queue.put(message)
        self._runs.clear()
        self._starved.clear()
        self._active_total = 0
        self._idle.set()
        self._ready.clear()
        self._recorder.discard()
        self._recorder.fenced = False
        self._recorder.store_failures = 0

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
                self._recorder.flush()
                self._recorder.close()
                return
            try:
                next_rescan = self._turn(messages, next_rescan, recovered)
            except Exception:
                # Last line of defence: a bug in one turn must not stop every run. The store keeps the truth;
                # the next rescan re-reads what this turn could not finish.
                log.exception("engine turn failed; continuing")
                self._recorder.store_failures += 1
            recovered = set()
            if self._recorder.fenced:
                log.error("engine stopped: this replica no longer leads (its last changes were refused)")
                return

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
        self._recorder.end_turn(now)
        return next_rescan

    def _retry_recover(self) -> bool:
        recorder = self._recorder
        time.sleep(_RECOVER_BACKOFF.delay(recorder.store_failures))
        recorder.store_failures += 1
        try:
            self._recover()
        except StoreUnavailable:
            return False
        recorder.store_failures = 0
        return True

    def _next_timeout(self, next_rescan: float) -> float:
        recorder = self._recorder
        if recorder.store_failures and recorder.holding:
            return _FLUSH_BACKOFF.delay(recorder.store_failures)  # the store was down: retry soon
        now = self.clock()
        wakes = [r.wake_at for r in self._runs.values() if r.wake_at is not None]
        if recorder.flush_due is not None:
            wakes.append(recorder.flush_due)
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
            self._recorder.task(run.ctx, m.task, new, before, resource=m.resource, exit_code=m.exit_code)
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
                        if loaded.run.get("concurrency_limit") is not None:
                            self._note_replaced(str(loaded.run["pipeline"]), touched)
            touched.add(m.run_id)
        elif isinstance(m, _Cancel):
            run = self._runs.get(m.run_id)
            if run is not None and not run.state.cancel_requested:
                run.state.cancel_requested = True
                log.info("run %s: cancellation requested", m.run_id)
            touched.add(m.run_id)

    def _note_replaced(self, pipeline: str, touched: set[str]) -> None:
        """A run of a pipeline with `concurrency` was accepted: the older runs it replaces (`policy: replace`) were
        flagged in the same transaction that created it; cancel them now rather than at the next rescan."""
        same = [run_id for run_id, run in self._runs.items() if run.ctx.pipeline == pipeline]
        try:
            requests = cancel_requests(self.db, same)
        except StoreUnavailable as e:
            log.warning("pipeline %s: cannot read cancel requests yet (%s); the next rescan will", pipeline, e)
            return
        self._flag_cancelled(requests, touched)

    def _flag_cancelled(self, requests: Mapping[str, str | None], touched: set[str]) -> None:
        for run_id, replaced in requests.items():
            run = self._runs.get(run_id)
            if run is not None and not run.state.cancel_requested:
                run.state.cancel_requested = True
                run.state.cancel_message = replaced
                log.info("run %s: cancellation requested%s", run_id, f" ({replaced})" if replaced else "")
                touched.add(run_id)

    def _promote(self) -> None:
        """Start the queued runs that now fit (`store.queueing`): a run ended, or a rescan is due."""
        for run_id in promote_queued(self.db):
            log.info("run %s left the queue", run_id)
            self.submit(run_id)

    def _rescan(self, touched: set[str]) -> None:
        """Pick up what other processes did: runs created by another replica's API, cancel flags; and start queued
        runs a slot is free for (after a restart, or when promoting after a run's end failed)."""
        try:
            if not self._draining.is_set():
                self._promote()
            # Only the runs this engine does not drive yet are loaded: reading every active run's spec and tasks each
            # rescan held the loop (and every watch event behind it) for seconds at 1,000 live runs.
            # The cancel flags come with the ids: a second query naming every driven run cost as much again.
            active = active_runs(self.db)
            unknown = active.ids - set(self._runs)
            for loaded in load_runs(self.db, unknown) if unknown else ():
                if loaded.run["id"] not in self._runs and loaded.run["status"] in ACTIVE_RUN_STATUSES:
                    self._adopt(loaded, recovering=True)
                    touched.add(loaded.run["id"])
            self._flag_cancelled({r: m for r, m in active.cancels.items() if r in self._runs}, touched)
        except StoreUnavailable as e:
            log.warning("engine rescan skipped: %s", e)

    # -- loading runs -------------------------------------------------------------------------------------------
    def _recover(self) -> None:
        """At start: adopt every active run, and hand the attempts the store believes active back to the executor
        (it re-attaches to those still running and reports what became of the others). Queued runs that fit are
        started first: a queued run survives a restart and starts afterwards."""
        if not self._draining.is_set():
            promote_queued(self.db)
        loaded = load_runs(self.db)
        attempts: list[ActiveAttempt] = []
        for lr in loaded:
            if lr.run["id"] in self._runs:
                continue
            run = self._adopt(lr, recovering=True)
            if run is not None:
                attempts.extend(self._relaunchable(run, a) for a in active_attempts(run, lr))
        if loaded:
            log.info("engine resumed %d run(s) with %d active attempt(s)", len(self._runs), len(attempts))
        if attempts:
            self.executor.recover(attempts)
        self._recorder.flush()

    def _relaunchable(self, run: ActiveRun, active: ActiveAttempt) -> ActiveAttempt:
        """A STARTING attempt with its launch rebuilt (as `_launch` built it: substitutions, references, `task_env`),
        for an executor that submits it again under the same name rather than report it lost after a failover
        (whose create journal, if any, was on the other replica's disk). Anything that fails leaves it as it was."""
        if active.status != TaskStatus.STARTING or not self.executor.relaunches_starting:
            return active
        spec = active.spec
        try:
            try:
                dirs = self.executor.attempt_dirs(run.ctx, spec.name, active.attempt)
            except OutputsUnsupported:
                dirs = None
            launch = task_launch(run, spec, active.attempt, dirs, self.executor.input_location)
        except Exception:
            log.warning("run %s task %s: attempt %d cannot be rebuilt for resubmission", run.ctx.run_id, spec.name,
                        active.attempt, exc_info=True)  # fmt: skip
            return active
        return replace(active, launch=self._with_env(launch))

    def _adopt(self, loaded: LoadedRun, *, recovering: bool) -> ActiveRun | None:
        """Start driving a run read from the store; a run that cannot be driven is recorded as failed instead."""
        ctx = run_context(loaded)
        try:
            run = active_run(loaded, ctx, self.executor, default_parallelism=self.default_parallelism)
        except CannotDrive as e:  # a corrupt or incompatible frozen spec must not take the engine down
            log.exception("run %s cannot be driven", ctx.run_id)
            self._recorder.run_invalid(ctx.run_id, loaded.run["commit_sha"], str(e))
            return None
        self._runs[ctx.run_id] = run
        self._add_active(run.state.active_count)
        self._recorder.effect(lambda: self.executor.prepare_run(ctx))
        if not recovering:
            log.info("run %s (pipeline %s, commit %s) accepted", ctx.run_id, ctx.pipeline, ctx.commit_sha)
        return run

    # -- deciding -------------------------------------------------------------------------------------------------
    def _step(self, run: ActiveRun, now: float) -> None:
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
                gates=gates(run) if run.gated else None,
            )
            if not decision.actions:
                run.wake_at = decision.wake_at
                if free <= 0 and decision.wants_slot:  # a ready task or a due retry waits for a free slot
                    self._starved.add(run.ctx.run_id)
                return
            for action in decision.actions:
                if isinstance(action, FinishRun):
                    self._finish(run, action)
                    return
                self._act(run, action)
        raise RuntimeError(f"run {run.ctx.run_id}: decide did not reach a fixed point")

    def _act(self, run: ActiveRun, action: TaskAction) -> None:
        task = action.task
        before = run.state[task]
        new = apply_action(run.state, action)
        if new is None:
            return
        self._account(before, new)
        if isinstance(action, StartTask):
            if not run.started:
                # The run starts running now: its `timeout` counts from here, not from its creation (time spent
                # queued is not the run's), and its `started_at` says the same after a restart (`run_deadline`).
                now = self.clock()
                run.started = True
                if run.spec.timeout is not None:
                    run.state.deadline = now + run.spec.timeout
                self._recorder.run_started(run.ctx, at=now)
            run.recorded.forget(task)
            self._recorder.task(run.ctx, task, new, before)
            self._launch(run, run.tasks[task], action.attempt)
        elif isinstance(action, KillTask):
            ctx, attempt, reason = run.ctx, new.attempt, action.reason
            log.info("run %s task %s: killing attempt %d (%s)", ctx.run_id, task, attempt, reason)
            self._recorder.effect(lambda: self.executor.kill(ctx.run_id, task, attempt, reason))
        else:
            self._recorder.task(run.ctx, task, new, before)

    def _launch(self, run: ActiveRun, spec: TaskSpec, attempt: int) -> None:
        # Where this attempt writes its outputs (issue 11); an executor without a place for them cannot run a task
        # that declares or reads outputs.
        dirs = None
        try:
            dirs = self.executor.attempt_dirs(run.ctx, spec.name, attempt)
        except OutputsUnsupported as e:
            if spec.artifacts or spec.results or spec.references:
                self._fail_launch(run, spec, attempt, "OutputsUnsupported", str(e))
                return
        try:
            launch = task_launch(run, spec, attempt, dirs, self.executor.input_location)
        except Unresolved as e:
            self._fail_launch(run, spec, attempt, "UnresolvedReference", str(e))
            return
        except Exception as e:
            self._fail_launch(run, spec, attempt, "InvalidTask", str(e))
            return
        if spec.cache and self._cached(run, spec, attempt):
            return

        def start() -> None:
            try:
                self.executor.start(self._with_env(launch))
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

        self._recorder.effect(start)

    def _cached(self, run: ActiveRun, spec: TaskSpec, attempt: int) -> bool:
        """Record the task's cache key; on a hit (engine/cache.py), report the attempt succeeded with the earlier
        run's outputs instead of starting it, and return True. Caching only ever saves work: a key that cannot be
        computed or a store that cannot be asked is a miss, logged, and the task runs."""
        if run.ctx.work_tree is None:
            return False  # files from a plain directory (`odin run`): nothing proves they are unchanged, never cached
        try:
            key = cache_key(run, spec)
        except Exception:
            log.exception("run %s task %s: no cache key; running it", run.ctx.run_id, spec.name)
            return False
        self._recorder.task_values(run.ctx, spec.name, cache_key=key)
        if run.no_cache:
            return False
        try:
            hit = choose(cached_tasks(self.db, key), self.outputs_present)
        except StoreUnavailable as e:
            log.warning("run %s task %s: cache lookup failed (%s); running it", run.ctx.run_id, spec.name, e)
            return False
        if hit is None:
            return False
        source = hit.source
        log.info("run %s task %s: %s", run.ctx.run_id, spec.name, hit.message)
        self.report(
            Observation(
                run.ctx.run_id,
                spec.name,
                attempt,
                TaskStatus.SUCCEEDED,
                exit_code=0 if source.exit_code is None else source.exit_code,
                reason=CACHED,
                message=hit.message,
                resource={"results": source.results, "artifacts": source.artifacts},
            )
        )
        return True

    def _with_env(self, launch: TaskLaunch) -> TaskLaunch:
        """The launch with `task_env`'s variables; the task's own `env` wins over them. A fork's pull request gets
        none: they may carry credentials (an MLflow tracking URI with a token)."""
        if self.task_env is None or launch.run.secrets_withheld:
            return launch
        try:
            extra = self.task_env(launch)
        except Exception:  # an optional integration must never keep a task from starting
            log.exception("run %s task %s: task_env failed; starting without it", launch.run.run_id, launch.task)
            return launch
        return replace(launch, env={**extra, **launch.env}) if extra else launch

    def _fail_launch(self, run: ActiveRun, spec: TaskSpec, attempt: int, reason: str, message: str) -> None:
        """The attempt cannot be launched as written: a PERMANENT failure (retrying the same spec cannot help)."""
        self.report(
            Observation(
                run.ctx.run_id, spec.name, attempt, TaskStatus.FAILED, reason=reason, message=message,
                failure=Failure.PERMANENT,
            )
        )  # fmt: skip

    def _finish(self, run: ActiveRun, action: FinishRun) -> None:
        run_id = run.ctx.run_id
        log.info("run %s (commit %s) finished: %s (%s)", run_id, run.ctx.commit_sha, action.status, action.message)
        self._recorder.run_finished(run.ctx, action.status, action.message, reason=action.reason)
        del self._runs[run_id]
        self._starved.discard(run_id)
        ctx = run.ctx

        def done() -> None:
            self.executor.finish_run(ctx)
            with self._finished_cond:
                self._finished[run_id] = action.status
                self._finished_cond.notify_all()
            if not self._draining.is_set():
                try:
                    self._promote()  # after the commit that ended the run: its slot is free in the store
                except StoreUnavailable as e:
                    log.warning("run %s ended; starting queued runs waits for the next rescan: %s", run_id, e)

        self._recorder.effect(done)

    # -- counting active attempts ---------------------------------------------------------------------------------
    def _account(self, before: TaskState, after: TaskState) -> None:
        self._add_active(int(after.status.active) - int(before.status.active))

    def _add_active(self, delta: int) -> None:
        self._active_total += delta
        if self._active_total > 0:
            self._idle.clear()
        else:
            self._idle.set()
