"""Clean-up: an ended attempt's logs are saved, then its objects are deleted once the TTL has passed.

Order matters: logs live in the pods, so they are written to `<data>/tasks/...` first (see `logs.py`), and only then
is the object deleted (with propagation, so a Job or PyTorchJob takes its pods along). `ODIN_KUBE_CLEANUP_TTL`
(seconds; unset = keep forever) leaves ended attempts inspectable with kubectl for a while.

Deletions are grouped into `deletecollection` requests by label selector (`deletions.py`), not a DELETE per object:

* a run's objects -- every attempt's, and its `${WORK_PATH}` ConfigMaps -- go together, the TTL after the run ended:
  one request per kind and namespace for all the runs that fell due within `BATCH_WINDOW` (`odin.dev/run in (...)`);
  an attempt that ended within the TTL of its run's end waits for that (it stays at most its run's length longer);
* an attempt whose TTL passes while its run still goes (a long run) goes with the others of its run that fell due
  within `BATCH_WINDOW`, one request per attempt number;
* a run is never deleted while one of its objects still has logs to save; a Role without `deletecollection` makes
  the janitor fall back to a DELETE per object (with a warning naming the verb).

A periodic sweep (`ODIN_KUBE_SWEEP_INTERVAL`) covers what a restart left behind, from the watches' caches -- no
per-object requests:

* ended objects of attempts the engine no longer asks about (they ended while Odin was down) get the same treatment:
  logs saved unless already on disk, deletion after the TTL;
* objects still running that no active attempt claims, `ORPHAN_GRACE` after this executor started (by then the
  engine has recovered every active attempt), are orphans -- e.g. their run was cancelled while Odin was down -- and
  are deleted, so they do not hold GPUs forever;
* the `${WORK_PATH}` ConfigMaps of runs this process does not know, older than the TTL, are deleted (one list
  request per watched namespace per sweep).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from odin.controller.executors.kubernetes import names
from odin.controller.executors.kubernetes.api import CONFIGMAPS, KubeApi
from odin.controller.executors.kubernetes.config import KubeOptions
from odin.controller.executors.kubernetes.deletions import Batch, Target, attempt_batches, run_batches
from odin.controller.executors.kubernetes.errors import KubeApiError, NotFound
from odin.controller.executors.kubernetes.failures import parse_time
from odin.controller.executors.kubernetes.handlers.base import ResourceHandler
from odin.controller.executors.kubernetes.logs import LogStore
from odin.controller.executors.kubernetes.timers import Timers
from odin.controller.executors.kubernetes.watch import WatchManager

log = logging.getLogger(__name__)


# What the janitor reads of the executor and of its attempt records, written as protocols so that this module does
# not import the executor that owns it (the executor imports this one).
class AttemptRecord(Protocol):
    """One attempt's objects, as the executor records them."""

    @property
    def key(self) -> tuple[str, str, int]: ...  # (run id, task, attempt)
    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def handler(self) -> ResourceHandler | None: ...
    @property
    def tracked(self) -> bool: ...  # the engine still expects observations about it
    @property
    def created_at(self) -> float: ...
    @property
    def terminal_at(self) -> float | None: ...
    @property
    def exists(self) -> bool: ...
    @property
    def run_id(self) -> str: ...


R = TypeVar("R", bound=AttemptRecord)


class JanitorHost(Protocol[R]):
    """The executor the janitor cleans up after: its clients, timers and pool, and its attempt records."""

    @property
    def options(self) -> KubeOptions: ...
    @property
    def api(self) -> KubeApi: ...
    @property
    def timers(self) -> Timers: ...
    @property
    def pool(self) -> ThreadPoolExecutor: ...
    @property
    def log_store(self) -> LogStore: ...
    @property
    def watches(self) -> WatchManager: ...
    @property
    def selector(self) -> str: ...  # the label selector of this executor's objects
    @property
    def started_at(self) -> float: ...
    def save_logs(self, record: R) -> None: ...
    def forget(self, record: R) -> None: ...
    def attempts_snapshot(self) -> list[R]: ...
    def active_run_labels(self) -> set[str]: ...
    def drop_run(self, run_id: str) -> list[str]: ...  # forget a run; the names of its work ConfigMaps


ORPHAN_GRACE = 900.0  # seconds after start-up before an unclaimed running object counts as an orphan
BATCH_WINDOW = 1.0  # seconds deletions that fell due are gathered before one request takes them all
MAX_HOLD = 600.0  # seconds a due run waits for its last logs to be saved before it is deleted anyway


@dataclass(slots=True)
class _EndedRun:
    namespace: str
    due: float


class Janitor(Generic[R]):
    def __init__(self, executor: JanitorHost[R]) -> None:
        self.executor = executor
        self.options = executor.options
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._saved: set[tuple[str, str, int]] = set()  # attempts whose logs are saved (deletable)
        self._ready: dict[tuple[str, str, int], R] = {}  # attempts past their TTL, for the next flush
        self._runs: dict[str, _EndedRun] = {}  # runs that ended, until their objects are deleted
        self.per_object = False  # set once a deletecollection is forbidden: a DELETE per object from then on

    def start(self) -> None:
        self._schedule_sweep()

    def _schedule_sweep(self) -> None:
        self.executor.timers.call_at(time.time() + self.options.sweep_interval, "sweep", self._sweep_soon)

    def _sweep_soon(self) -> None:
        self.executor.pool.submit(self.sweep)
        self._schedule_sweep()

    def _flush_soon(self, delay: float = BATCH_WINDOW) -> None:
        ex = self.executor
        ex.timers.call_at(time.time() + delay, "cleanup-flush", lambda: ex.pool.submit(self.flush))

    # -- one attempt, one run ------------------------------------------------------------------------------------
    def ended(self, record: R) -> None:
        """An attempt reached a final state: save its logs, then delete it after the TTL."""
        self.executor.pool.submit(self._after_end, record)

    def _after_end(self, record: R) -> None:
        ex = self.executor
        if record.tracked or not ex.log_store.path(*record.key).exists():
            ex.save_logs(record)
        with self._lock:
            self._saved.add(record.key)
        ttl = self.options.cleanup_ttl
        if ttl is None:
            return
        due = (record.terminal_at or time.time()) + ttl
        ex.timers.call_at(due, ("clean", record.key), lambda: self._due(record))

    def _due(self, record: R) -> None:
        """(Timer thread.) The attempt's TTL has passed: delete it with the next batch."""
        with self._lock:
            self._ready[record.key] = record
        self._flush_soon()

    def run_ended(self, run_id: str, namespace: str) -> None:
        """A run finished: its objects and work ConfigMaps go together, the TTL from now."""
        ttl = self.options.cleanup_ttl
        if ttl is None:
            return
        due = time.time() + ttl
        with self._lock:
            self._runs[run_id] = _EndedRun(namespace, due)
        self.executor.timers.call_at(due, ("run", run_id), self._flush_soon)

    def delete(self, record: R, *, why: str = "ended") -> None:
        """One object now, with its dependents (orphans; the fallback when `deletecollection` is forbidden)."""
        handler = record.handler
        if handler is None:
            return
        try:
            self.executor.api.delete(handler.kind, record.namespace, record.name, propagation=handler.propagation)
        except KubeApiError as e:
            log.warning("cannot delete %s %s/%s (%s): %s; the next sweep retries", handler.kind.kind,
                        record.namespace, record.name, why, e.message)  # fmt: skip
            return
        log.debug("deleted %s %s/%s (%s)", handler.kind.kind, record.namespace, record.name, why)
        self._forget(record)

    def _forget(self, record: R) -> None:
        with self._lock:
            self._saved.discard(record.key)
            self._ready.pop(record.key, None)
        self.executor.forget(record)

    # -- batches ---------------------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Delete what fell due: whole runs first, then ended attempts of runs still going (see the module doc)."""
        if not self._flushing.acquire(blocking=False):
            self._flush_soon()  # another flush is sending; this one's work waits for the next
            return
        try:
            self._flush()
        finally:
            self._flushing.release()

    def _flush(self) -> None:
        ex = self.executor
        now = time.time()
        records: dict[str, list[R]] = {}
        for record in ex.attempts_snapshot():
            records.setdefault(record.run_id, []).append(record)
        with self._lock:
            due_runs = {r: e for r, e in self._runs.items() if e.due <= now}
            held = set(self._runs)
            ready = [r for k, r in self._ready.items() if k[0] not in held]
            saved = set(self._saved)
        whole: dict[Target, set[str]] = {}
        work: dict[Target, set[str]] = {}
        runs_deleted: dict[str, list[R]] = {}
        retry_later = False
        for run_id, ended in due_runs.items():
            mine = records.get(run_id, [])
            if any(r.exists and r.key not in saved for r in mine) and now - ended.due < MAX_HOLD:
                retry_later = True  # a log is still being saved: never delete the pod it comes from
                continue
            for r in mine:
                if r.handler is not None and r.exists:
                    whole.setdefault(Target(r.namespace, r.handler.kind, r.handler.propagation), set()).add(run_id)
            if ex.drop_run(run_id):
                work.setdefault(Target(ended.namespace, CONFIGMAPS, "Background"), set()).add(run_id)
            runs_deleted[run_id] = mine
        by_target: dict[Target, list[tuple[str, str, int]]] = {}
        chosen: dict[tuple[str, str, int], R] = {}
        for r in ready:
            if r.handler is None or not r.exists:
                self._forget(r)
                continue
            by_target.setdefault(Target(r.namespace, r.handler.kind, r.handler.propagation), []).append(r.key)
            chosen[r.key] = r
        base = ex.selector
        batches = run_batches(base, whole)
        batches += run_batches(f"{base},{names.LABEL_COMPONENT}=odin-work", work)
        batches += attempt_batches(base, by_target)
        failed_runs: set[str] = set()
        for batch in batches:
            if not self._send(batch, runs_deleted, chosen):
                failed_runs.update(batch.runs)
        with self._lock:
            for run_id in runs_deleted:
                if run_id not in failed_runs:
                    self._runs.pop(run_id, None)
        for run_id, mine in runs_deleted.items():
            if run_id not in failed_runs:
                for r in mine:
                    self._forget(r)
        if retry_later:
            self._flush_soon()

    def _send(self, batch: Batch, runs: dict[str, list[R]], chosen: dict[tuple[str, str, int], R]) -> bool:
        """One deletecollection (or a DELETE per object where that verb is forbidden); False if it failed."""
        target = batch.target
        members = [r for run_id in batch.runs for r in runs.get(run_id, [])]
        members += [chosen[k] for k in batch.keys if k in chosen]
        members = [r for r in members if r.handler is not None and r.handler.kind.key == target.kind.key
                   and r.namespace == target.namespace]  # fmt: skip
        if not self.per_object:
            try:
                self.executor.api.delete_collection(
                    target.kind, target.namespace, label_selector=batch.selector, propagation=target.propagation
                )
            except NotFound:
                pass  # nothing of that kind left (or the kind is no longer served): nothing to delete
            except KubeApiError as e:
                if e.reason != "Forbidden":
                    log.warning("cannot delete %s in %s (%s): %s; the next sweep retries", target.kind.plural,
                                target.namespace, batch.selector, e.message)  # fmt: skip
                    return False
                log.warning("Odin may not deletecollection %s in %s (%s): deleting ended objects one by one; add "
                            "the verb to its Role (deploy/base/rbac.yaml)", target.kind.plural, target.namespace,
                            e.message)  # fmt: skip
                self.per_object = True
            else:
                log.debug("deleted %s in %s: %s", target.kind.plural, target.namespace, batch.selector)
                for r in members:
                    self._forget(r)
                return True
        if target.kind.key == CONFIGMAPS.key:
            return True  # their names went with the run's record: the sweep deletes what is left after the TTL
        for r in members:
            self.delete(r)
        return True

    # -- the sweep -----------------------------------------------------------------------------------------------
    def sweep(self) -> None:
        ex = self.executor
        now = time.time()
        ttl = self.options.cleanup_ttl
        queued = False
        for record in ex.attempts_snapshot():
            if record.tracked or record.handler is None or not record.exists:
                continue
            if record.terminal_at is not None:
                if ttl is not None and now >= record.terminal_at + ttl:
                    with self._lock:
                        if record.run_id in self._runs or record.key in self._ready:
                            continue  # its run's clean-up, or the next flush, has it already
                        self._ready[record.key] = record
                    queued = True
            elif now - ex.started_at >= ORPHAN_GRACE and now - record.created_at >= ORPHAN_GRACE:
                log.warning("run %s task %s attempt %d: %s %s/%s is not claimed by any active run; deleting it",
                            *record.key, record.handler.kind.kind, record.namespace, record.name)  # fmt: skip
                self.delete(record, why="orphaned")
        if queued:
            self.flush()
        if ttl is not None:
            for namespace in ex.watches.namespaces:
                self._sweep_work(namespace, now, ttl)

    def _sweep_work(self, namespace: str, now: float, ttl: float) -> None:
        ex = self.executor
        selector = f"{ex.selector},{names.LABEL_COMPONENT}=odin-work"
        try:
            items, _ = ex.api.list_objects(CONFIGMAPS, namespace, label_selector=selector)
        except KubeApiError as e:
            log.warning("cannot list work ConfigMaps in %s: %s", namespace, e.message)
            return
        active = ex.active_run_labels()
        with self._lock:  # ended runs whose clean-up is pending delete their ConfigMaps themselves, in one request
            active |= {names.label_value(r) for r in self._runs}
        for item in items:
            meta: dict[str, Any] = item.get("metadata") or {}
            run = (meta.get("labels") or {}).get(names.LABEL_RUN)
            created = parse_time(meta.get("creationTimestamp")) or now
            if run in active or now - created < ttl:
                continue
            try:
                ex.api.delete(CONFIGMAPS, namespace, str(meta.get("name")))
            except KubeApiError as e:
                log.warning("cannot delete ConfigMap %s/%s: %s", namespace, meta.get("name"), e.message)
