"""Clean-up: an ended attempt's logs are saved, then its objects are deleted once the TTL has passed.

Order matters: logs live in the pods, so they are written to `<data>/tasks/...` first (see `logs.py`), and only then
is the object deleted (with propagation, so a Job or PyTorchJob takes its pods along). `ODIN_KUBE_CLEANUP_TTL`
(seconds; unset = keep forever) leaves ended attempts inspectable with kubectl for a while.

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
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar

from odin.controller.executors.kubernetes import names
from odin.controller.executors.kubernetes.api import CONFIGMAPS, KubeApi
from odin.controller.executors.kubernetes.config import KubeOptions
from odin.controller.executors.kubernetes.errors import KubeApiError
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


ORPHAN_GRACE = 900.0  # seconds after start-up before an unclaimed running object counts as an orphan


class Janitor(Generic[R]):
    def __init__(self, executor: JanitorHost[R]) -> None:
        self.executor = executor
        self.options = executor.options

    def start(self) -> None:
        self._schedule_sweep()

    def _schedule_sweep(self) -> None:
        self.executor.timers.call_at(time.time() + self.options.sweep_interval, "sweep", self._sweep_soon)

    def _sweep_soon(self) -> None:
        self.executor.pool.submit(self.sweep)
        self._schedule_sweep()

    # -- one attempt ---------------------------------------------------------------------------------------------
    def ended(self, record: R) -> None:
        """An attempt reached a final state: save its logs, then delete it after the TTL."""
        self.executor.pool.submit(self._after_end, record)

    def _after_end(self, record: R) -> None:
        ex = self.executor
        if record.tracked or not ex.log_store.path(*record.key).exists():
            ex.save_logs(record)
        ttl = self.options.cleanup_ttl
        if ttl is None:
            return
        due = (record.terminal_at or time.time()) + ttl
        ex.timers.call_at(due, ("clean", record.key), lambda: ex.pool.submit(self.delete, record))

    def delete(self, record: R, *, why: str = "ended") -> None:
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
        self.executor.forget(record)

    # -- the sweep -----------------------------------------------------------------------------------------------
    def sweep(self) -> None:
        ex = self.executor
        now = time.time()
        ttl = self.options.cleanup_ttl
        for record in ex.attempts_snapshot():
            if record.tracked or record.handler is None or not record.exists:
                continue
            if record.terminal_at is not None:
                if ttl is not None and now >= record.terminal_at + ttl:
                    self.delete(record, why="ended before a restart")
            elif now - ex.started_at >= ORPHAN_GRACE and now - record.created_at >= ORPHAN_GRACE:
                log.warning("run %s task %s attempt %d: %s %s/%s is not claimed by any active run; deleting it",
                            *record.key, record.handler.kind.kind, record.namespace, record.name)  # fmt: skip
                self.delete(record, why="orphaned")
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
