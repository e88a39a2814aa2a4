"""Odin's runs mirrored into MLflow, off the engine's hot path (issue 11, item 7).

`RunTracking` listens on the event bus (`odin.controller.bus`): a run seen running opens its MLflow run, a task that
ended gets its results logged as metrics and its nested run ended (FINISHED, FAILED, KILLED), a finished run is
ended in MLflow. The bus callback only puts the event on a queue; one worker thread makes the MLflow calls, so a slow
or absent MLflow server never slows the engine, whose thread publishes those events.

One call cannot wait: a task must find its nested run in its environment (`MLFLOW_RUN_ID`...) when it starts, so
`task_env`, which the engine calls just before handing a task to the executor, waits for it, at most `start_timeout`
seconds. It is made on a small thread pool, started as soon as the bus shows the task `starting` (committed just before
the engine performs its starts), so the nested runs of a turn's starts are made in parallel, not one by one. When MLflow
does not answer in time the task starts without those variables and the run gets a warning; for `outage_cooldown`
seconds after that, starts do not wait at all, so an outage costs a run one timeout, not one per task.

Everything that goes wrong becomes a `run.warning` event on the run (source `mlflow`, the tracking URI redacted),
never a failed task. MLflow ids are recorded on the run and task rows (migration 0008): a restarted controller finds
them there (and the tracker finds runs by their `odin.*` tags when a row missed its id), and a sweep, at start and
every `SWEEP_INTERVAL` seconds, ends the MLflow runs of finished Odin runs that were never closed there (the process
stopped first, or MLflow was down when the run ended).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from odin.controller.bus import EventBus, EventDict
from odin.controller.store import tracking as store
from odin.controller.store.db import DbEngine, StoreError
from odin.controller.tracking.links import redact
from odin.controller.tracking.records import TrackedRun, TrackingWarning
from odin.controller.tracking.settings import TrackingSettings
from odin.controller.vocabulary import RunStatus, TaskLaunch, TaskStatus

if TYPE_CHECKING:
    from odin.controller.tracking.client import MlflowTracker

log = logging.getLogger(__name__)

MlflowStatus = Literal["FINISHED", "FAILED", "KILLED"]
SWEEP_INTERVAL = 60.0
START_THREADS = 4
WARNING_EVENT = "run.warning"

RUN_STATUS: dict[str, MlflowStatus] = {
    RunStatus.SUCCEEDED: "FINISHED",
    RunStatus.FAILED: "FAILED",
    RunStatus.ERROR: "FAILED",
    RunStatus.CANCELLED: "KILLED",
    RunStatus.SKIPPED: "KILLED",  # never started, so never tracked; mapped so that no terminal status is missing
}
TASK_STATUS: dict[str, MlflowStatus] = {
    TaskStatus.SUCCEEDED: "FINISHED",
    TaskStatus.FAILED: "FAILED",
    TaskStatus.CANCELLED: "KILLED",
    TaskStatus.SKIPPED: "KILLED",  # only when it has a nested run: an attempt ran, then the run was cancelled
}


@dataclass(frozen=True, slots=True)
class _RunChanged:
    run_id: str
    status: str


@dataclass(frozen=True, slots=True)
class _TaskEnded:
    run_id: str
    task: str
    status: str


@dataclass(frozen=True, slots=True)
class _Warn:
    run_id: str
    task: str | None
    operation: str
    message: str


@dataclass(frozen=True, slots=True)
class _Sweep:
    pass


_Job = _RunChanged | _TaskEnded | _Warn | _Sweep | None


class RunTracking:
    """The MLflow mirror of every run this controller drives. Thread-safe: `observe` (the bus subscriber) and
    `task_env` (the engine's thread) only enqueue or wait on the start pool."""

    def __init__(
        self,
        db: DbEngine,
        bus: EventBus,
        make_tracker: Callable[[], MlflowTracker],
        settings: TrackingSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`make_tracker` is called once, on the worker thread: importing MLflow takes seconds (tens on a loaded
        machine), which neither the server's start nor the engine should wait for."""
        self.db = db
        self.bus = bus
        self.make_tracker = make_tracker
        self.settings = settings
        self.uri = redact(settings.tracking_uri or "")
        self._tracker: MlflowTracker | None = None
        self._tracker_error: str | None = None
        self._tracker_ready = threading.Event()
        self.clock = clock
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._runs: dict[str, TrackedRun] = {}
        self._tasks: dict[tuple[str, str], TrackedRun] = {}
        self._guard = threading.Lock()  # the caches and the locks below
        self._locks: dict[tuple[str, ...], threading.Lock] = {}  # per run, per task: no duplicate from two threads
        self._pool = ThreadPoolExecutor(max_workers=START_THREADS, thread_name_prefix="odin-mlflow-start")
        self._prefetched: dict[tuple[str, str, int], Future[TrackedRun | TrackingWarning | None]] = {}
        self._skip_until = 0.0
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def tracker(self) -> MlflowTracker:
        """The MLflow client, once the worker has made it (waits for it: callers are the worker and the start pool,
        whose waits `task_env` bounds)."""
        self._tracker_ready.wait()
        if self._tracker is None:
            raise RuntimeError(f"MLflow tracking is unavailable: {self._tracker_error}")
        return self._tracker

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._unsubscribe = self.bus.subscribe(self.observe)
        self._thread = threading.Thread(target=self._main, name="odin-mlflow", daemon=True)
        self._thread.start()
        self._queue.put(_Sweep())

    def stop(self, timeout: float = 10.0) -> None:
        """Stop listening; what is still queued is left to the next start's sweep."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- fed by the bus and the engine ----------------------------------------------------------------------------
    def observe(self, event: EventDict) -> None:
        """The bus subscriber: runs on the publishing (engine) thread, so it only filters and enqueues."""
        kind, run_id = event.get("kind"), event.get("run_id")
        if not run_id:
            return
        status = (event.get("data") or {}).get("status")
        if kind == "run.status" and (status == RunStatus.RUNNING or status in RUN_STATUS):
            self._queue.put(_RunChanged(run_id, status))
        elif kind == "task.status" and event.get("task"):
            task = str(event["task"])
            if status == TaskStatus.STARTING and self.clock() >= self._skip_until:
                # Published when the start is committed, just before the engine performs it: the nested runs of
                # every task a turn starts are made in parallel while the engine works through its starts.
                attempt = int((event.get("data") or {}).get("attempt") or 1)
                self._prefetched[(run_id, task, attempt)] = self._pool.submit(self._open_task, run_id, task, attempt)
            elif status in TASK_STATUS:
                for key in [k for k in self._prefetched if k[:2] == (run_id, task)]:
                    del self._prefetched[key]  # a start that never came (it failed before reaching the executor)
                self._queue.put(_TaskEnded(run_id, task, status))

    def task_env(self, launch: TaskLaunch) -> dict[str, str]:
        """MLFLOW_TRACKING_URI, MLFLOW_RUN_ID and MLFLOW_EXPERIMENT_ID for this attempt's nested run, created now;
        empty (and a warning on the run) when MLflow does not answer within `start_timeout`."""
        run_id, task = launch.run.run_id, launch.spec.name
        if self.clock() < self._skip_until:
            self._queue.put(
                _Warn(run_id, task, "start_task", self._without_env(task, "MLflow was unreachable moments ago"))
            )
            return {}
        params = dict(launch.spec.matrix)
        future = self._prefetched.pop((run_id, task, launch.attempt), None)
        if future is None:
            future = self._pool.submit(self._open_task, run_id, task, launch.attempt, params)
        elif params:  # made by the prefetch, which has no spec: the sweep member's values follow
            self._pool.submit(self._log_params, run_id, task, params)
        try:
            tracked = future.result(timeout=self.settings.start_timeout)
        except FutureTimeout:
            tracked = TrackingWarning("start_task", f"no answer within {self.settings.start_timeout:g}s", 1)
        except Exception as e:  # a bug here must not keep a task from starting
            log.exception("run %s task %s: opening its MLflow run failed", run_id, task)
            tracked = TrackingWarning("start_task", str(e)[:500], 1)
        if isinstance(tracked, TrackedRun):
            return self.tracker.task_env(tracked)
        self._skip_until = self.clock() + self.settings.outage_cooldown
        reason = tracked.message if tracked is not None else "the run is not in the store"
        self._queue.put(
            _Warn(run_id, task, tracked.operation if tracked else "start_task", self._without_env(task, reason))
        )
        return {}

    def _log_params(self, run_id: str, task: str, params: Mapping[str, Any]) -> None:
        tracked = self._open_task(run_id, task)
        if isinstance(tracked, TrackedRun):
            warning = self.tracker.log_params(tracked, params)
            if warning is not None:
                self._queue.put(_Warn(run_id, task, warning.operation, str(warning)))

    def _lock(self, *key: str) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(key)
            if lock is None:
                lock = self._locks[key] = threading.Lock()
            return lock

    def _without_env(self, task: str, reason: str) -> str:
        return (
            f"task {task} started without MLFLOW_RUN_ID (its metrics from the task's own code are not tracked): "
            f"{reason} ({self.uri})"
        )

    # -- the worker -----------------------------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._tracker = self.make_tracker()
        except Exception as e:  # e.g. the mlflow package missing: every call becomes a warning, nothing fails
            log.exception("MLflow tracking cannot start")
            self._tracker_error = str(e)[:500]
        finally:
            self._tracker_ready.set()
        next_sweep = self.clock() + SWEEP_INTERVAL
        while True:
            try:
                job = self._queue.get(timeout=max(0.0, next_sweep - self.clock()))
            except queue.Empty:
                job = _Sweep()
            if job is None:
                return
            if isinstance(job, _Sweep):
                next_sweep = self.clock() + SWEEP_INTERVAL
            try:
                self._do(job)
            except StoreError as e:
                log.warning("MLflow tracking: the store is unavailable (%s); the next sweep catches up", e)
            except Exception:  # the worker must outlive any one job
                log.exception("MLflow tracking: %s failed", type(job).__name__)

    def _do(self, job: _RunChanged | _TaskEnded | _Warn | _Sweep) -> None:
        if isinstance(job, _Warn):
            self._record_warning(job.run_id, job.task, job.operation, job.message)
        elif isinstance(job, _RunChanged):
            if job.status == RunStatus.RUNNING:
                self._open_run(job.run_id)
            else:
                self._close_run(job.run_id, sweeping=False)
        elif isinstance(job, _TaskEnded):
            self._task_ended(job)
        else:
            for run_id in store.unclosed_runs(self.db):
                self._close_run(run_id, sweeping=True)

    def _task_ended(self, job: _TaskEnded) -> None:
        rows = store.tracked_tasks(self.db, job.run_id, [job.task])
        if not rows:
            return
        row = rows[0]
        known = (job.run_id, job.task) in self._tasks or row.mlflow_run_id is not None
        if job.status == TaskStatus.SKIPPED and not known:
            return  # never ran: no nested run to end
        tracked = self._open_task(job.run_id, job.task)
        if not isinstance(tracked, TrackedRun):
            if tracked is not None:
                self._record_warning(job.run_id, job.task, tracked.operation, str(tracked))
            return
        if job.status == TaskStatus.SUCCEEDED and row.results:
            self._check(job.run_id, job.task, self.tracker.log_results(tracked, row.results))
        self._check(job.run_id, job.task, self.tracker.finish(tracked, TASK_STATUS[job.status]))
        with self._guard:
            self._tasks.pop((job.run_id, job.task), None)

    def _close_run(self, run_id: str, *, sweeping: bool) -> None:
        row = store.tracked_run(self.db, run_id)
        if row is None or row.mlflow_status is not None or row.status not in RUN_STATUS:
            return
        if (
            row.mlflow_run_id is None
            and run_id not in self._runs
            and row.status in (RunStatus.ERROR, RunStatus.CANCELLED)
        ):
            return  # ended before it started: nothing to mirror
        parent = self._open_run(run_id)
        if not isinstance(parent, TrackedRun):
            return
        if sweeping:  # a restart: its tasks' nested runs may not have been ended either (ending twice is harmless)
            for task in store.tracked_tasks(self.db, run_id):
                status = TASK_STATUS.get(task.status)
                if task.mlflow_run_id and status is not None:
                    nested = TrackedRun(task.mlflow_run_id, parent.experiment_id, parent.run_id)
                    self._check(run_id, task.name, self.tracker.finish(nested, status))
        status = RUN_STATUS[row.status]
        warning = self.tracker.finish(parent, status)
        self._check(run_id, None, warning)
        if warning is None or not warning.retryable:  # a refusal would be refused again: stop asking
            store.record_closed(self.db, run_id, status)
        with self._guard:
            self._runs.pop(run_id, None)
            for key in [k for k in self._tasks if k[0] == run_id]:
                del self._tasks[key]
            for lock_key in [k for k in self._locks if k[1] == run_id]:
                del self._locks[lock_key]

    # -- opening runs (the worker and the start pool) ---------------------------------------------------------
    def _open_run(self, run_id: str) -> TrackedRun | TrackingWarning | None:
        """The run's MLflow run: cached, recorded on its row, found by its tags, or created. None: no such run."""
        with self._lock("run", run_id):
            cached = self._runs.get(run_id)
            if cached is not None:
                return cached
            row = store.tracked_run(self.db, run_id)
            if row is None:
                return None
            if row.mlflow_run_id and row.mlflow_experiment_id:
                tracked = TrackedRun(row.mlflow_run_id, row.mlflow_experiment_id)
            else:
                outcome = self.tracker.start_run(
                    repository=row.repository,
                    pipeline=row.pipeline,
                    odin_run_id=row.id,
                    commit=row.commit_sha or "",
                    branch=row.branch,
                    repository_url=row.repository_url,
                    trigger=row.trigger,
                    triggered_by=row.triggered_by,
                    params=row.params,
                    created=row.created_at or None,
                )
                if isinstance(outcome, TrackingWarning):
                    return outcome
                tracked = outcome
                store.record_run_ids(self.db, run_id, tracked.run_id, tracked.experiment_id)
            with self._guard:
                self._runs[run_id] = tracked
            return tracked

    def _open_task(
        self, run_id: str, task: str, attempt: int | None = None, params: Mapping[str, Any] | None = None
    ) -> TrackedRun | TrackingWarning | None:
        """The task's nested run (created under the run's, which is opened first if needed); with `attempt`, tagged
        with it (a retry reuses the task's nested run)."""
        parent = self._open_run(run_id)
        if not isinstance(parent, TrackedRun):
            return parent
        with self._lock("task", run_id, task):
            cached = self._tasks.get((run_id, task))
            if cached is not None and attempt is None:
                return cached
            if cached is None:
                rows = store.tracked_tasks(self.db, run_id, [task])
                if rows and rows[0].mlflow_run_id:
                    cached = TrackedRun(rows[0].mlflow_run_id, parent.experiment_id, parent.run_id)
                    if attempt is None:
                        with self._guard:
                            self._tasks[(run_id, task)] = cached
                        return cached
            tags = {"odin.run_id": run_id} | ({"odin.attempt": str(attempt)} if attempt is not None else {})
            outcome = self.tracker.start_task(parent, task=task, params=params if cached is None else None, tags=tags)
            if isinstance(outcome, TrackingWarning):
                return outcome
            if cached is None:
                store.record_task_id(self.db, run_id, task, outcome.run_id)
            with self._guard:
                self._tasks[(run_id, task)] = outcome
            return outcome

    # -- warnings ----------------------------------------------------------------------------------------------
    def _check(self, run_id: str, task: str | None, warning: TrackingWarning | None) -> None:
        if warning is not None:
            self._record_warning(run_id, task, warning.operation, str(warning))

    def _record_warning(self, run_id: str, task: str | None, operation: str, message: str) -> None:
        """A `run.warning` event on the run (source `mlflow`), published like the engine's events."""
        row = store.tracked_run(self.db, run_id)
        event = store.record_run_event(
            self.db,
            run_id,
            WARNING_EVENT,
            commit_sha=row.commit_sha if row else None,
            task=task,
            source="mlflow",
            operation=operation,
            message=message,
        )
        log.warning("run %s: %s", run_id, message)
        self.bus.publish(event)
