"""The Kubernetes executor: each attempt becomes one object (a Pod, a Job, a training-operator job), watched.

How the pieces fit:

* `start` (engine thread) only checks the task and queues the create on a small pool, so the engine never waits on
  HTTP. The worker waits for the run's preparation (its `${WORK_PATH}` ConfigMaps, see `workdir.py`), writes the
  manifest to the journal, creates the object under its deterministic name (409: adopt it), and starts the watches
  of that namespace if they are not running yet.
* Watches (`watch.py`) deliver every change of every Odin object -- the top-level objects and their pods. Each change
  re-evaluates the attempt it belongs to (labels `odin.dev/run`, `odin.dev/task`, `odin.dev/attempt`): the handler
  turns the object and its pods (classified by `failures.py`) into a `Verdict`, and a change of verdict becomes an
  `Observation` for the engine. Deadlines (image pull grace, unschedulable, missing volumes, no operator) are timers,
  not polling.
* Ended attempts have their logs saved (`logs.py`), then their objects are deleted after the TTL (`cleanup.py`).
* `recover` (after a restart) lists each namespace through its watches, adopts every attempt whose object exists
  (its current state is reported: a task that finished while Odin was down is not run again), re-creates those the
  journal says were being submitted, and reports the rest lost (INFRA: the engine retries them).

The executor reports; it never decides. Every problem -- an unknown resource_type, a forbidden namespace, an API
that stays down -- becomes a FAILED observation with a reason and a failure kind, never an exception in the engine.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kubernetes.client

from odin.controller.executors.base import Executor
from odin.controller.executors.kubernetes import names
from odin.controller.executors.kubernetes.api import CONFIGMAPS, PODS, ApiRetry, Json, Kind, KubeApi
from odin.controller.executors.kubernetes.cleanup import Janitor
from odin.controller.executors.kubernetes.config import (
    KubeOptions,
    clone_client,
    load_client,
    options_from_settings,
)
from odin.controller.executors.kubernetes.errors import AlreadyExists, KubeApiError
from odin.controller.executors.kubernetes.failures import PodState, classify_pod, missing_volume_message
from odin.controller.executors.kubernetes.handlers.base import PRIMARY_REPLICAS, AttemptView, ResourceHandler, Verdict
from odin.controller.executors.kubernetes.handlers.registry import HandlerRegistry, UnknownResourceType
from odin.controller.executors.kubernetes.journal import Journal
from odin.controller.executors.kubernetes.logs import LogStore, containers, fetch, stream
from odin.controller.executors.kubernetes.manifests import (
    DATA_MOUNT,
    ROOT_MOUNT,
    RUN_MOUNT,
    BuildContext,
    run_labels,
)
from odin.controller.executors.kubernetes.timers import Timers
from odin.controller.executors.kubernetes.watch import WatchKey, WatchManager
from odin.controller.executors.kubernetes.workdir import MOUNT_PATH as WORK_MOUNT
from odin.controller.executors.kubernetes.workdir import WorkTree, WorkTreeError, collect
from odin.controller.vocabulary import (
    ActiveAttempt,
    Failure,
    Observation,
    RunContext,
    TaskLaunch,
    TaskPaths,
    TaskStatus,
)
from odin.schema.model import TaskSpec

if TYPE_CHECKING:
    from odin.controller.settings import Settings

log = logging.getLogger(__name__)

AttemptKey = tuple[str, str, int]  # (run id, task, attempt)
WORK_COMPONENT = "odin-work"


@dataclass(frozen=True, slots=True)
class Blocker:
    """Why a run's tasks cannot start (its namespace or files could not be prepared), as a task status will say it.

    Not `odin.schema.problems.Problem`, which locates a mistake in a pipeline file."""

    reason: str
    message: str
    failure: Failure


@dataclass
class _Run:
    ctx: RunContext
    namespace: str
    ready: threading.Event = field(default_factory=threading.Event)
    work: WorkTree | None = None
    problem: Blocker | None = None


@dataclass
class _Attempt:
    """Everything known about one attempt's objects. `tracked`: the engine expects observations about it."""

    key: AttemptKey
    namespace: str
    name: str
    handler: ResourceHandler | None = None
    tracked: bool = False
    run: RunContext | None = None
    spec: TaskSpec | None = None
    launch: TaskLaunch | None = None
    obj: Json | None = None
    deleted: bool = False
    submitted: bool = False  # the create was acknowledged (or the object was seen)
    pods: dict[str, Json] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    reported: TaskStatus | None = None
    killed: str | None = None
    disruption: str | None = None
    missing_volume: dict[str, str] = field(default_factory=dict)
    events_checked: dict[str, float] = field(default_factory=dict)
    terminal_at: float | None = None
    verdict: Verdict | None = None
    pods_refreshed: bool = False  # pods re-listed once because the top-level object ended before their events

    @property
    def run_id(self) -> str:
        return self.key[0]

    @property
    def task(self) -> str:
        return self.key[1]

    @property
    def attempt(self) -> int:
        return self.key[2]

    @property
    def exists(self) -> bool:
        return self.obj is not None or bool(self.pods)


def _key_from_labels(labels: Mapping[str, str]) -> AttemptKey | None:
    run, task, attempt = labels.get(names.LABEL_RUN), labels.get(names.LABEL_TASK), labels.get(names.LABEL_ATTEMPT)
    if not run or not task or not attempt or not attempt.isdigit():
        return None
    return (run, task, int(attempt))


def _controller_owner(obj: Json) -> Json | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


class KubernetesExecutor(Executor):
    """Runs attempts as Kubernetes objects (see the module docstring)."""

    name = "kubernetes"

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        options: KubeOptions,
        *,
        registry: HandlerRegistry | None = None,
        owns_client: bool = False,
    ) -> None:
        super().__init__()
        self.options = options
        self._stopping = threading.Event()
        self._given_client = api_client if owns_client else None
        self._client = clone_client(api_client, pool_size=options.workers + 64)
        self.api = KubeApi(self._client, retry=ApiRetry(deadline=options.api_retry_deadline), stopping=self._stopping)
        self.registry = registry or HandlerRegistry.load()
        self.log_store = LogStore(options.data_dir)
        self.journal = Journal(options.data_dir)
        self.timers = Timers()
        self.pool = ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="odin-kube")
        self.selector = names.selector(
            {names.MANAGED_BY: names.MANAGED_BY_VALUE, names.LABEL_INSTANCE: names.label_value(options.instance)}
        )
        self.watches = WatchManager(self.api, self._on_event, self._on_watch_error, timeout=options.watch_timeout)
        self.janitor = Janitor(self)
        self._lock = threading.RLock()
        self._attempts: dict[AttemptKey, _Attempt] = {}
        self._owners: dict[tuple[str, tuple[str, str, str], str], AttemptKey] = {}
        self._runs: dict[str, _Run] = {}
        self._seen: dict[str, dict[str, float]] = {}  # pod uid -> state -> first seen
        self.started_at = time.time()
        self.janitor.start()

    @classmethod
    def from_settings(cls, settings: Settings) -> KubernetesExecutor:
        """`ODIN_EXECUTOR=kubernetes`: in-cluster config or a kubeconfig and context (see `config.py`)."""
        api_client, implied_namespace = load_client(settings)
        return cls(api_client, options_from_settings(settings, implied_namespace=implied_namespace), owns_client=True)

    # -- contract: paths and runs ------------------------------------------------------------------------------
    def paths(self, run: RunContext) -> TaskPaths:
        if self.options.data_claim:
            run_path, root_path = f"{DATA_MOUNT}/runs/{run.storage_id}", DATA_MOUNT
        else:
            run_path, root_path = RUN_MOUNT, ROOT_MOUNT
        return TaskPaths(work_path=WORK_MOUNT if run.work_path else run_path, run_path=run_path, root_path=root_path)

    def namespace_of(self, run: RunContext) -> str:
        return self.options.namespace_for(run.pipeline, run.namespace)

    def prepare_run(self, run: RunContext) -> None:
        with self._lock:
            existing = self._runs.get(run.run_id)
            if existing is not None:
                return
            record = _Run(run, self.namespace_of(run))
            self._runs[run.run_id] = record
        self.pool.submit(self._prepare, record)

    def _prepare(self, record: _Run) -> None:
        """Create the run's `${WORK_PATH}` ConfigMaps (409: they exist already) and start the namespace's watches."""
        ctx, namespace = record.ctx, record.namespace
        try:
            self._ensure_watches(namespace, None)
            work = None
            if ctx.work_path:
                work = collect(
                    Path(ctx.work_path),
                    name=names.dns_name(ctx.run_id, "work", max_length=253),
                    tree=ctx.work_tree,
                    max_bytes=self.options.work_max_bytes,
                )
                labels = {
                    **run_labels(ctx.run_id, ctx.pipeline, ctx.commit_sha, self.options.instance),
                    names.LABEL_COMPONENT: WORK_COMPONENT,
                }
                annotations = {names.ANNOTATION_PIPELINE: ctx.pipeline}
                if ctx.work_tree:
                    annotations[names.ANNOTATION_TREE] = ctx.work_tree
                for body in work.config_maps(labels, annotations):
                    with contextlib.suppress(AlreadyExists):
                        self.api.create(CONFIGMAPS, namespace, body)
            record.work, record.problem = work, None
        except WorkTreeError as e:
            record.problem = Blocker(e.reason, str(e), Failure.PERMANENT)
        except KubeApiError as e:
            record.problem = self._api_problem(e, namespace)
        except Exception as e:  # a bug here must fail the run's tasks with a reason, not hang them
            log.exception("run %s: preparing its files in namespace %s failed", ctx.run_id, namespace)
            record.problem = Blocker("ExecutorError", f"preparing the run failed: {e}", Failure.INFRA)
        finally:
            record.ready.set()
        if record.problem is not None:
            log.warning(
                "run %s (commit %s): cannot prepare namespace %s: %s",
                ctx.run_id, ctx.commit_sha, namespace, record.problem.message,
            )  # fmt: skip

    def _api_problem(self, e: KubeApiError, namespace: str) -> Blocker:
        message = e.message
        if e.reason == "Forbidden":
            message += (
                f" (Odin's ServiceAccount needs the Role of deploy/base/rbac.yaml in namespace {namespace}; "
                "see docs/kubernetes.md)"
            )
        elif e.reason == "NotFound" and "namespaces" in message:
            message += f" (create namespace {namespace}, or change ODIN_KUBE_NAMESPACE)"
        return Blocker(e.reason, message, e.failure)

    def finish_run(self, run: RunContext) -> None:
        ttl = self.options.cleanup_ttl
        if ttl is None:
            return
        self.timers.call_at(time.time() + ttl, ("run", run.run_id), lambda: self.pool.submit(self._clean_run, run))

    def _clean_run(self, run: RunContext) -> None:
        with self._lock:
            record = self._runs.pop(run.run_id, None)
        if record is None or record.work is None:
            return
        for name in record.work.names:
            try:
                self.api.delete(CONFIGMAPS, record.namespace, name)
            except KubeApiError as e:
                log.warning("run %s: could not delete ConfigMap %s/%s: %s", run.run_id, record.namespace, name, e)

    # -- contract: start ---------------------------------------------------------------------------------------
    def start(self, launch: TaskLaunch) -> None:
        key = (launch.run.run_id, launch.task, launch.attempt)
        try:
            handler = self.registry.get(launch.spec.resource_type)
        except UnknownResourceType as e:
            self._fail_now(key, "UnknownResourceType", str(e), Failure.PERMANENT)
            return
        problem = handler.validate(launch.spec, self.options)
        if problem is not None:
            self._fail_now(key, "InvalidTask", problem, Failure.PERMANENT)
            return
        try:
            name = names.attempt_name(launch.run.run_id, launch.task, launch.attempt,
                                      max_length=handler.max_name_length)  # fmt: skip
        except names.InvalidName as e:
            self._fail_now(key, "InvalidName", str(e), Failure.PERMANENT)
            return
        namespace = self.namespace_of(launch.run)
        with self._lock:
            record = self._attempts.get(key)
            if record is None:
                record = _Attempt(key, namespace, name)
                self._attempts[key] = record
            record.handler, record.tracked, record.launch = handler, True, launch
            record.run, record.spec, record.name, record.namespace = launch.run, launch.spec, name, namespace
            self._owners[(namespace, handler.kind.key, name)] = key
        self.pool.submit(self._create, key)

    def _fail_now(self, key: AttemptKey, reason: str, message: str, failure: Failure) -> None:
        log.warning("run %s task %s attempt %d cannot run: %s", key[0], key[1], key[2], message)
        self.report(Observation(key[0], key[1], key[2], TaskStatus.FAILED, reason=reason, message=message,
                                failure=failure))  # fmt: skip

    def _run_record(self, ctx: RunContext) -> _Run:
        with self._lock:
            record = self._runs.get(ctx.run_id)
            if record is None:
                record = _Run(ctx, self.namespace_of(ctx))
                self._runs[ctx.run_id] = record
                fresh = True
            else:
                fresh = False
        if fresh:
            self._prepare(record)
        return record

    def _create(self, key: AttemptKey) -> None:
        with self._lock:
            record = self._attempts.get(key)
        if record is None or record.launch is None or record.handler is None:
            return
        launch, handler = record.launch, record.handler
        try:
            if record.killed:
                self._finish(record, "Killed", f"killed before it was submitted ({record.killed})", Failure.INFRA)
                return
            run = self._run_record(launch.run)
            while not run.ready.wait(1.0):
                if self._stopping.is_set():
                    return
            if self._stopping.is_set():
                return  # the preparation may have been cut short by the shutdown; a restart submits this attempt
            if run.problem is not None and run.problem.failure == Failure.INFRA:
                run.ready.clear()
                self._prepare(run)  # the API was down while preparing: try again before giving up on this task
            if run.problem is not None:
                self._finish(record, run.problem.reason, run.problem.message, run.problem.failure)
                return
            self._ensure_watches(record.namespace, handler)
            ctx = BuildContext(launch, record.name, record.namespace, self.options, work=run.work,
                               extra_labels=handler.extra_labels)  # fmt: skip
            manifest = handler.build(ctx)
            self.journal.write(*key, record.namespace, handler.kind, manifest)
            self._submit(record, handler.kind, manifest)
        except KubeApiError as e:
            if e.reason == "Shutdown":
                return  # the journal keeps the intent: a restart submits it
            problem = self._api_problem(e, record.namespace)
            self._finish(record, problem.reason, problem.message, problem.failure)
        except Exception as e:
            log.exception("run %s task %s attempt %d: submitting it failed", *key)
            self._finish(record, "ExecutorError", f"submitting the task failed: {e}", Failure.INFRA)

    def _submit(self, record: _Attempt, kind: Kind, manifest: Json) -> None:
        """Create the object; a 409 adopts it if it is this very attempt's (labels agree)."""
        key = record.key
        try:
            created = self.api.create(kind, record.namespace, manifest)
        except AlreadyExists:
            created = self.api.get(kind, record.namespace, record.name)
            labels = (created.get("metadata") or {}).get("labels") or {}
            if _key_from_labels(labels) != key:
                self.journal.remove(*key)
                self._finish(record, "NameTaken",
                             f"a {kind.kind} named {record.namespace}/{record.name} already exists and does not "
                             "belong to this attempt", Failure.PERMANENT)  # fmt: skip
                return
            log.info("run %s task %s attempt %d: adopted the existing %s %s", *key, kind.kind, record.name)
        self.journal.remove(*key)
        with self._lock:
            record.submitted = True
            killed = record.killed
            if kind.key != PODS.key and record.obj is None and not record.deleted:
                record.obj = created  # until the watch delivers it (it may already have)
            elif kind.key == PODS.key and not record.pods and not record.deleted:
                record.obj, record.pods = created, {record.name: created}
        if killed:
            self._delete(record)
        self._reconcile(key)

    def _finish(self, record: _Attempt, reason: str, message: str, failure: Failure) -> None:
        """Report an attempt failed that has (or will have) no object to watch."""
        with self._lock:
            if record.reported is not None and record.reported.terminal:
                return
            record.reported = TaskStatus.FAILED
            if not record.submitted and not record.exists:
                self._forget(record)  # nothing in the cluster to watch or clean up
        self.journal.remove(*record.key)
        log.warning("run %s task %s attempt %d failed: %s: %s", *record.key, reason, message)
        self.report(Observation(*record.key, TaskStatus.FAILED, reason=reason, message=message, failure=failure))

    # -- contract: kill ----------------------------------------------------------------------------------------
    def kill(self, run_id: str, task: str, attempt: int, reason: str) -> None:
        key = (run_id, task, attempt)
        with self._lock:
            record = self._attempts.get(key)
            if record is None:
                submitted = False
            else:
                record.killed = reason
                submitted = record.submitted or record.exists
        if record is None:
            self._fail_now(key, "Killed", f"killed ({reason}) before it was submitted", Failure.INFRA)
            return
        if submitted:
            self.pool.submit(self._delete, record)

    def _delete(self, record: _Attempt) -> None:
        handler = record.handler
        if handler is None:
            return
        try:
            gone = not self.api.delete(handler.kind, record.namespace, record.name, propagation=handler.propagation)
        except KubeApiError as e:
            log.error("run %s task %s attempt %d: cannot delete %s %s/%s: %s", *record.key, handler.kind.kind,
                      record.namespace, record.name, e.message)  # fmt: skip
            if record.killed:
                self._finish(record, "Killed", f"could not delete the {handler.kind.kind}: {e.message}", Failure.INFRA)
            return
        if gone:
            with self._lock:
                record.obj, record.pods, record.deleted = None, {}, True
            self._reconcile(record.key)

    # -- contract: recover -------------------------------------------------------------------------------------
    def recover(self, attempts: list[ActiveAttempt]) -> None:
        by_namespace: dict[str, list[AttemptKey]] = {}
        for a in attempts:
            key = (a.run.run_id, a.spec.name, a.attempt)
            try:
                handler = self.registry.get(a.spec.resource_type)
            except UnknownResourceType as e:
                self._fail_now(key, "UnknownResourceType", str(e), Failure.PERMANENT)
                continue
            namespace = str(a.resource.get("namespace") or self.namespace_of(a.run))
            name = str(a.resource.get("resource_name") or names.attempt_name(
                a.run.run_id, a.spec.name, a.attempt, max_length=handler.max_name_length))  # fmt: skip
            with self._lock:
                record = self._attempts.get(key)
                if record is None:
                    record = _Attempt(key, namespace, name)
                    self._attempts[key] = record
                record.handler, record.tracked, record.run, record.spec = handler, True, a.run, a.spec
                record.reported = TaskStatus.RUNNING if a.status == TaskStatus.RUNNING else None
                self._owners[(namespace, handler.kind.key, name)] = key
            by_namespace.setdefault(namespace, []).append(key)
        for namespace, keys in by_namespace.items():
            self.pool.submit(self._recover_namespace, namespace, keys)

    def _recover_namespace(self, namespace: str, keys: list[AttemptKey]) -> None:
        handlers = {self._attempts[k].handler for k in keys if k in self._attempts}
        watches = [w for h in handlers if h is not None for w in self._ensure_watches(namespace, h)]
        while not all(w.synced.wait(1.0) for w in watches):
            if self._stopping.is_set() or self._all_ended(keys):
                return  # shutting down, or a watch that cannot run (403) already failed these attempts
        adopted = resubmitted = lost = 0
        for key in keys:
            with self._lock:
                record = self._attempts.get(key)
            if record is None or record.handler is None:
                continue
            if record.exists:
                adopted += 1
                with self._lock:
                    record.submitted = True
                self._reconcile(key)
                continue
            pending = self.journal.read(*key)
            if pending is not None:
                resubmitted += 1
                try:
                    self._submit(record, pending[1], pending[2])
                except KubeApiError as e:
                    problem = self._api_problem(e, namespace)
                    self._finish(record, problem.reason, problem.message, problem.failure)
                continue
            lost += 1
            if record.reported == TaskStatus.RUNNING:
                message = (f"its {record.handler.kind.kind} {namespace}/{record.name} was deleted while the controller "
                           "was down")  # fmt: skip
                self._finish(record, "Lost", message, Failure.INFRA)
            else:
                self._finish(record, "NotSubmitted", "the controller stopped before it submitted this attempt",
                             Failure.INFRA)  # fmt: skip
        log.info(
            "namespace %s: recovered %d attempt(s): %d adopted, %d resubmitted, %d lost",
            namespace, len(keys), adopted, resubmitted, lost,
        )  # fmt: skip

    def _all_ended(self, keys: list[AttemptKey]) -> bool:
        with self._lock:
            records = [self._attempts.get(k) for k in keys]
        return all(r is None or (r.reported is not None and r.reported.terminal) for r in records)

    # -- watches ---------------------------------------------------------------------------------------------
    def _ensure_watches(self, namespace: str, handler: ResourceHandler | None) -> list[Any]:
        watches = [self.watches.ensure(namespace, PODS, self.selector)]
        if handler is not None and handler.kind.key != PODS.key:
            watches.append(self.watches.ensure(namespace, handler.kind, self.selector))
        if handler is not None and handler.foreign_pod_label:
            watches.append(self.watches.ensure(namespace, PODS, handler.foreign_pod_label))
        return watches

    def _handler_for_kind(self, kind: Kind) -> ResourceHandler | None:
        return next((h for h in self.registry.all() if h.kind.key == kind.key), None)

    def _on_event(self, event: str, kind: Kind, obj: Json) -> None:
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        labels = meta.get("labels") or {}
        key = _key_from_labels(labels)
        deleted = event == "DELETED"
        with self._lock:
            if kind.key == PODS.key:
                owner = _controller_owner(obj)
                if key is None:
                    key = self._foreign_owner(namespace, obj)
                    if key is None:
                        return
                    owner = owner or {"controller": True}
                record = self._record(key, namespace, name, create=not deleted)
                if record is None:
                    return
                if owner is None:  # an Odin pod nothing controls: a `Pod` attempt's own object
                    if record.handler is None:
                        record.handler = self._handler_for_kind(PODS)
                    record.obj = None if deleted else obj
                    record.deleted = record.deleted or deleted
                if deleted:
                    record.pods.pop(name, None)
                else:
                    record.pods[name] = obj
                    record.submitted = True
            else:
                if key is None:
                    return
                record = self._record(key, namespace, name, create=not deleted)
                if record is None:
                    return
                if record.handler is None:
                    record.handler = self._handler_for_kind(kind)
                    if record.handler is not None:
                        self._owners[(namespace, kind.key, name)] = key
                record.obj = None if deleted else obj
                record.deleted = record.deleted or deleted
                record.submitted = record.submitted or not deleted
        self._reconcile(key)

    def _record(self, key: AttemptKey, namespace: str, name: str, *, create: bool) -> _Attempt | None:
        record = self._attempts.get(key)
        if record is None and create:
            record = _Attempt(key, namespace, name)
            self._attempts[key] = record
        return record

    def _foreign_owner(self, namespace: str, pod: Json) -> AttemptKey | None:
        """The attempt owning a pod without Odin's labels (TrainJob pods), through the owner name it carries."""
        for handler in self.registry.all():
            owner = handler.owner_of(pod)
            if owner is not None:
                return self._owners.get((namespace, handler.kind.key, owner))
        return None

    def _on_watch_error(self, key: WatchKey, error: KubeApiError) -> None:
        """A watch that cannot run (403, or a kind the cluster does not serve): its tasks cannot be observed."""
        victims: list[_Attempt] = []
        with self._lock:
            for record in self._attempts.values():
                if not record.tracked or record.namespace != key.namespace or record.handler is None:
                    continue
                if record.reported is not None and record.reported.terminal:
                    continue
                if key.kind.key in (PODS.key, record.handler.kind.key):
                    victims.append(record)
        problem = self._api_problem(error, key.namespace)
        for record in victims:
            self._finish(record, problem.reason, f"cannot watch {key.kind.plural}: {problem.message}", problem.failure)

    # -- evaluating ----------------------------------------------------------------------------------------------
    def _first_seen(self, what: str) -> float:
        """When a pod was first seen in a state (`<pod uid>:<what>`): the API does not say how long it waited."""
        uid, _, state = what.partition(":")
        with self._lock:
            return self._seen.setdefault(uid, {}).setdefault(state, time.time())

    def _reconcile(self, key: AttemptKey) -> None:
        """Re-evaluate one attempt from what the watches last said, and report a change."""
        observation: Observation | None = None
        ended = False
        check_events: list[str] = []
        with self._lock:
            record = self._attempts.get(key)
            if record is None or record.handler is None:
                return
            if record.terminal_at is not None and not record.tracked:
                return
            now = time.time()
            states = [
                classify_pod(
                    pod,
                    now=now,
                    deadlines=self.options.deadlines,
                    first_seen=self._first_seen,
                    missing_volume_event=record.missing_volume.get(pod_name),
                )
                for pod_name, pod in record.pods.items()
            ]
            for state in states:
                if state.disruption:
                    record.disruption = state.disruption
                if state.check_events and now - record.events_checked.get(state.name, 0.0) >= max(
                    self.options.deadlines.missing_volume, 1.0
                ):
                    record.events_checked[state.name] = now
                    check_events.append(state.name)
            view = AttemptView(
                name=record.name,
                namespace=record.namespace,
                obj=record.obj,
                deleted=record.deleted,
                pods=states,
                now=now,
                created_at=record.created_at,
                options=self.options,
                killed=record.killed is not None,
                disruption=record.disruption,
            )
            verdict = record.handler.evaluate(view)
            if (
                verdict.status == TaskStatus.FAILED
                and record.obj is not None
                and record.handler.kind.key != PODS.key
                and not record.pods_refreshed
                and not any(s.failed for s in states)
            ):
                # The operator's Failed arrived before the pods' own events (two watch streams): read the pods once,
                # so the failure is classified from the pod that caused it (a preempted worker is INFRA, not USER).
                record.pods_refreshed = True
                self.pool.submit(self._refresh_pods, key)
                return
            record.verdict = verdict
            if verdict.recheck_at is not None:
                self.timers.call_at(verdict.recheck_at, ("recheck", key), lambda: self._reconcile(key))
            status = verdict.status
            if status is not None and status.terminal and record.terminal_at is None:
                record.terminal_at = now
                ended = True
            if record.tracked and status is not None and record.reported != status:
                if status == TaskStatus.RUNNING and record.reported is None:
                    record.reported = status
                    observation = Observation(*key, status, resource=self._resource(record, states))
                elif status.terminal and (record.reported is None or not record.reported.terminal):
                    record.reported = status
                    observation = Observation(
                        *key, status, exit_code=verdict.exit_code, reason=verdict.reason, message=verdict.message,
                        failure=verdict.failure, resource=self._resource(record, states),
                    )  # fmt: skip
            if not record.tracked and record.deleted and not record.exists:
                self._forget(record)
        if observation is not None:
            if observation.status.terminal:
                log.info("run %s task %s attempt %d: %s (%s: %s)", *key, observation.status, observation.reason,
                         observation.message)  # fmt: skip
            self.report(observation)
        for pod_name in check_events:
            self.pool.submit(self._check_events, key, pod_name)
        if ended:
            if verdict.delete and record.exists:
                self.pool.submit(self._delete, record)
            self.janitor.ended(record)

    def _resource(self, record: _Attempt, states: list[PodState]) -> dict[str, Any]:
        assert record.handler is not None
        resource: dict[str, Any] = {
            "resource_kind": record.handler.kind.kind,
            "resource_name": record.name,
            "namespace": record.namespace,
            "log_path": str(self.log_store.path(*record.key)),
        }
        nodes = sorted({s.node for s in states if s.node})
        if nodes:
            resource["node"] = ",".join(nodes)[:253]
        gpus = record.spec.num_gpus if record.spec else 0
        if gpus and nodes:  # "<node>:<count>": Kubernetes does not say which devices a pod got, only how many
            per_node = Counter(s.node for s in states if s.node)
            resource["gpus"] = [f"{node}:{count * gpus}" for node, count in sorted(per_node.items()) if count]
        return resource

    def pod_selector(self, record: _Attempt) -> str:
        """A label selector for the attempt's pods."""
        if record.handler is not None and record.handler.foreign_pod_label:
            return str(record.handler.pod_selector(record.name))
        run, task, attempt = record.key
        return (
            f"{self.selector},{names.LABEL_RUN}={names.label_value(run)},{names.LABEL_TASK}={names.label_value(task)},"
            f"{names.LABEL_ATTEMPT}={attempt}"
        )

    def _refresh_pods(self, key: AttemptKey) -> None:
        with self._lock:
            record = self._attempts.get(key)
        if record is None:
            return
        try:
            pods, _ = self.api.list_objects(PODS, record.namespace, label_selector=self.pod_selector(record))
        except KubeApiError as e:
            log.warning("run %s task %s: cannot list the pods of attempt %d: %s", key[0], key[1], key[2], e.message)
            pods = None
        if pods is not None:
            with self._lock:
                record.pods.update({str(p["metadata"]["name"]): p for p in pods})
        self._reconcile(key)

    def _check_events(self, key: AttemptKey, pod: str) -> None:
        with self._lock:
            record = self._attempts.get(key)
        if record is None:
            return
        try:
            message = missing_volume_message(self.api.events_for(record.namespace, pod))
        except KubeApiError as e:
            log.warning("run %s task %s: cannot read the events of pod %s: %s", key[0], key[1], pod, e.message)
            return
        if message:
            with self._lock:
                record.missing_volume[pod] = message
            self._reconcile(key)

    def _forget(self, record: _Attempt) -> None:
        self._attempts.pop(record.key, None)
        for pod in record.pods.values():
            self._seen.pop(str((pod.get("metadata") or {}).get("uid") or ""), None)
        if record.handler is not None:
            owner = (record.namespace, record.handler.kind.key, record.name)
            if self._owners.get(owner) == record.key:
                del self._owners[owner]

    def forget(self, record: _Attempt) -> None:
        """Drop an attempt whose objects are gone (clean-up done)."""
        with self._lock:
            self._forget(record)

    # -- logs and events ---------------------------------------------------------------------------------------
    def _latest_attempt(self, run_id: str, task: str) -> int | None:
        with self._lock:
            known = [k[2] for k in self._attempts if k[0] == run_id and k[1] == task]
        known += self.log_store.attempts(run_id, task)
        return max(known) if known else None

    def logs(
        self,
        run_id: str,
        task: str,
        *,
        follow: bool = False,
        tail: int | None = None,
        attempt: int | None = None,
        container: str | None = None,
        replica: str | None = None,
    ) -> Iterator[str]:
        if attempt is None:
            attempt = self._latest_attempt(run_id, task)
            if attempt is None:
                return iter(())
        key = (run_id, task, attempt)
        with self._lock:
            record = self._attempts.get(key)
            pods = list(record.pods.values()) if record is not None else []
            handler = record.handler if record is not None else None
            namespace = record.namespace if record is not None else ""
        pod = None
        if handler is not None and pods:
            if replica:
                pod = next((p for p in pods if replica in (handler.replica(p), p["metadata"]["name"])), None)
            else:
                pod = handler.primary(pods)
        if pod is not None and handler is not None:
            # The saved copy is chosen by what was asked, never by which pods are still known: while pods are being
            # deleted, "the primary among the remaining pods" can be a worker, whose log is not the task's log.
            saved = self._saved_log(key, replica, container)
            return self._live_log(namespace, pod, saved, container=container, follow=follow, tail=tail)
        return self.log_store.read(self._saved_log(key, replica, container), tail=tail)

    def _saved_log(self, key: AttemptKey, replica: str | None, container: str | None) -> Path:
        """The saved log of a replica's container. The primary replica's log is saved as the task's log (no replica
        in its name), and a pod's first container's without the container's name."""
        if replica is not None and replica in PRIMARY_REPLICAS:
            own = self.log_store.path(*key, replica=replica)
            replica = replica if own.exists() else None
        named = self.log_store.path(*key, replica=replica, container=container)
        return named if container is None or named.exists() else self.log_store.path(*key, replica=replica)

    def _live_log(
        self, namespace: str, pod: Json, saved: Path, *, container: str | None, follow: bool, tail: int | None
    ) -> Iterator[str]:
        """A pod's log from the API; its saved copy when the pod is gone or the API cannot answer."""
        name = str(pod["metadata"]["name"])
        chosen = container or next(iter(containers(pod)), None)
        try:
            yield from stream(self.api, namespace, name, container=chosen, follow=follow, tail=tail)
        except KubeApiError as e:
            if e.status == 400:  # not started yet (ContainerCreating, ImagePullBackOff): no log
                return
            if not saved.exists():
                raise
            log.info("log of pod %s/%s from its saved copy (%s)", namespace, name, e.message)
            yield from self.log_store.read(saved, tail=tail)

    def events(self, run_id: str, task: str) -> list[dict[str, Any]]:
        attempt = self._latest_attempt(run_id, task)
        if attempt is None:
            return []
        with self._lock:
            record = self._attempts.get((run_id, task, attempt))
            if record is None:
                return []
            objects = [record.name, *[n for n in record.pods if n != record.name]]
            namespace = record.namespace
        out: list[dict[str, Any]] = []
        for name in objects:  # interactive: fail fast (KubeApiError) rather than retry for minutes
            for e in self.api.events_for(namespace, name, retry=False):
                involved = e.get("involvedObject") or {}
                out.append(
                    {
                        "time": e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp")
                        or (e.get("metadata") or {}).get("creationTimestamp"),
                        "type": e.get("type"),
                        "reason": e.get("reason"),
                        "message": e.get("message"),
                        "object": f"{involved.get('kind')}/{involved.get('name')}",
                        "count": e.get("count") or 1,
                    }
                )  # fmt: skip
        out.sort(key=lambda e: str(e["time"] or ""))
        return out

    # -- shutdown ----------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop watching and submitting; objects in the cluster keep running, and a restart re-attaches."""
        self._stopping.set()
        self.watches.stop()
        self.timers.stop()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()  # type: ignore[no-untyped-call]
        if self._given_client is not None:
            self._given_client.close()  # type: ignore[no-untyped-call]

    # -- for the janitor and tests ---------------------------------------------------------------------------
    def active_run_labels(self) -> set[str]:
        """The `odin.dev/run` label values of the runs this executor prepares or runs."""
        with self._lock:
            return {names.label_value(r) for r in self._runs}

    def attempts_snapshot(self) -> list[_Attempt]:
        with self._lock:
            return list(self._attempts.values())

    def save_logs(self, record: _Attempt) -> None:
        """Write every container log of the attempt's pods to the log store (primary replica: the task's log)."""
        handler = record.handler
        if handler is not None and handler.kind.key != PODS.key:
            # A job's pods may end after (or be reported later than) the job itself: read them as they are now.
            try:
                listed, _ = self.api.list_objects(PODS, record.namespace, label_selector=self.pod_selector(record))
                with self._lock:
                    record.pods.update({str(p["metadata"]["name"]): p for p in listed})
            except KubeApiError as e:
                log.warning("run %s task %s attempt %d: cannot list its pods: %s", *record.key, e.message)
        with self._lock:
            pods = list(record.pods.values())
        if handler is None or not pods:
            return
        primary = handler.primary(pods)
        for pod in pods:
            pod_name = str(pod["metadata"]["name"])
            replica = None if pod is primary else handler.replica(pod)
            for i, container in enumerate(containers(pod)):
                path = self.log_store.path(*record.key, replica=replica, container=container if i else None)
                try:
                    data = fetch(self.api, record.namespace, pod_name, container)
                except KubeApiError as e:
                    log.warning("run %s task %s attempt %d: cannot save the log of %s/%s: %s", *record.key,
                                pod_name, container, e.message)  # fmt: skip
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
