"""Submitting attempts: each becomes one object under its deterministic name, written to the journal first.

`start` (engine thread) only checks the task and queues the create on the executor's pool, so the engine never waits
on HTTP. The worker waits for the run's preparation (its `${WORK_PATH}` ConfigMaps, see `workdir.py`), writes the
manifest to the journal (`journal.py`), creates the object (409: adopt it if its labels name this very attempt), and
starts the namespace's watches. `recover` (after a restart) adopts every attempt whose object the watches list,
re-creates those the journal says were being submitted, and reports the rest lost (INFRA: the engine retries them).
`kill` deletes the object. Whatever cannot be submitted becomes a FAILED observation with a reason and a failure
kind, never an exception in the engine -- except a create refused by an exhausted ResourceQuota: that is routine (two
parallel tasks under `pods: 1`), so the attempt waits, the task says "waiting for quota" (a STARTING observation,
`WAITING_FOR_QUOTA`), and the create is tried again with backoff until a slot frees or the attempt is killed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from odin.controller.backoff import Backoff
from odin.controller.executors.kubernetes import names, transfer
from odin.controller.executors.kubernetes.api import CONFIGMAPS, PODS, Json, Kind, KubeApi
from odin.controller.executors.kubernetes.attempts import (
    Attempt,
    AttemptKey,
    AttemptTable,
    Blocker,
    RunRecord,
    key_from_labels,
)
from odin.controller.executors.kubernetes.config import KubeOptions
from odin.controller.executors.kubernetes.errors import AlreadyExists, KubeApiError, QuotaExceeded
from odin.controller.executors.kubernetes.handlers.base import ResourceHandler
from odin.controller.executors.kubernetes.handlers.registry import HandlerRegistry, UnknownResourceType
from odin.controller.executors.kubernetes.journal import Journal
from odin.controller.executors.kubernetes.manifests import BuildContext, run_labels
from odin.controller.executors.kubernetes.timers import Timers
from odin.controller.executors.kubernetes.tracking import Tracker
from odin.controller.executors.kubernetes.transfer import WorkTreeUploadFailed
from odin.controller.executors.kubernetes.workdir import WorkTreeError, collect
from odin.controller.vocabulary import (
    WAITING_FOR_QUOTA,
    ActiveAttempt,
    Failure,
    Observation,
    RunContext,
    TaskLaunch,
    TaskStatus,
)

log = logging.getLogger(__name__)

WORK_COMPONENT = "odin-work"

# Between tries of a create refused by an exhausted ResourceQuota: soon at first (a pod of the same run may be about
# to end), then every half minute at most. The quota controller frees a slot within a second of a pod's end.
QUOTA_BACKOFF = Backoff(initial=0.5, maximum=30.0)


def api_blocker(e: KubeApiError, namespace: str) -> Blocker:
    """An API error as a task status, with the fix for the two a deployment most often meets."""
    message = e.message
    if e.reason == "ServiceAccountNotFound":
        message += (
            f" (create that ServiceAccount in namespace {namespace}, or name another in ODIN_KUBE_SERVICE_ACCOUNT; "
            "not retried)"
        )
    elif e.reason == "Forbidden":
        message += (
            f" (Odin's ServiceAccount needs the Role of deploy/base/rbac.yaml in namespace {namespace}; "
            "see docs/kubernetes.md)"
        )
    elif e.reason == "NotFound" and "namespaces" in message:
        message += f" (create namespace {namespace}, or change ODIN_KUBE_NAMESPACE)"
    return Blocker(e.reason, message, e.failure)


class Submitter:
    """Prepares runs, creates, adopts, re-creates and deletes attempts' objects (see the module docstring)."""

    def __init__(
        self,
        table: AttemptTable,
        api: KubeApi,
        options: KubeOptions,
        *,
        registry: HandlerRegistry,
        journal: Journal,
        tracker: Tracker,
        timers: Timers,
        pool: ThreadPoolExecutor,
        report: Callable[[Observation], None],
        stopping: threading.Event,
        work_trees: transfer.WorkTrees | None = None,
    ) -> None:
        self.work_trees = work_trees
        self.table, self.api, self.options, self.registry, self.journal = table, api, options, registry, journal
        self.tracker, self.timers, self.pool = tracker, timers, pool
        self._report, self._stopping = report, stopping

    def namespace_of(self, run: RunContext) -> str:
        return self.options.namespace_for(run.pipeline, run.namespace)

    # -- runs ----------------------------------------------------------------------------------------------------
    def prepare_run(self, run: RunContext) -> None:
        with self.table.lock:
            if run.run_id in self.table.runs:
                return
            record = RunRecord(run, self.namespace_of(run))
            self.table.runs[run.run_id] = record
        self.pool.submit(self._prepare, record)

    def _run_record(self, ctx: RunContext) -> RunRecord:
        with self.table.lock:
            record = self.table.runs.get(ctx.run_id)
            fresh = record is None
            if record is None:
                record = RunRecord(ctx, self.namespace_of(ctx))
                self.table.runs[ctx.run_id] = record
        if fresh:
            self._prepare(record)
        return record

    def _prepare(self, record: RunRecord) -> None:
        """Create the run's `${WORK_PATH}` ConfigMaps (409: they exist already) and start the namespace's watches."""
        ctx, namespace = record.ctx, record.namespace
        try:
            self.tracker.watch(namespace, None)
            work = None
            if ctx.work_path:
                try:
                    work = collect(
                        Path(ctx.work_path),
                        name=names.dns_name(ctx.run_id, "work", max_length=253),
                        tree=ctx.work_tree,
                        max_bytes=self.options.work_max_bytes,
                    )
                except WorkTreeError as e:
                    if e.reason != "WorkTreeTooLarge" or self.work_trees is None:
                        raise
                    record.work_digest = self.work_trees.digest(Path(ctx.work_path), ctx.work_tree)
                labels = {
                    **run_labels(ctx.run_id, ctx.pipeline, ctx.commit_sha, self.options.instance),
                    names.LABEL_COMPONENT: WORK_COMPONENT,
                }
                annotations = {names.ANNOTATION_PIPELINE: ctx.pipeline}
                if ctx.work_tree:
                    annotations[names.ANNOTATION_TREE] = ctx.work_tree
                for body in work.config_maps(labels, annotations) if work is not None else ():
                    with contextlib.suppress(AlreadyExists):
                        self.api.create(CONFIGMAPS, namespace, body)
            record.work, record.problem = work, None
        except WorkTreeError as e:
            record.problem = Blocker(e.reason, str(e), Failure.PERMANENT)
        except WorkTreeUploadFailed as e:
            record.problem = Blocker("WorkTreeUnavailable", str(e), Failure.INFRA)
        except KubeApiError as e:
            record.problem = api_blocker(e, namespace)
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

    # -- start ---------------------------------------------------------------------------------------------------
    def start(self, launch: TaskLaunch) -> None:
        key = (launch.run.run_id, launch.task, launch.attempt)
        try:
            handler = self.registry.get(launch.spec.resource_type)
        except UnknownResourceType as e:
            self.fail_now(key, "UnknownResourceType", str(e), Failure.PERMANENT)
            return
        problem = handler.validate(launch.spec, self.options) or self._transfer_problem(handler, launch)
        if problem is not None:
            self.fail_now(key, "InvalidTask", problem, Failure.PERMANENT)
            return
        try:
            name = names.attempt_name(launch.run.run_id, launch.task, launch.attempt,
                                      max_length=handler.max_name_length)  # fmt: skip
        except names.InvalidName as e:
            self.fail_now(key, "InvalidName", str(e), Failure.PERMANENT)
            return
        namespace = self.namespace_of(launch.run)
        with self.table.lock:
            record = self.table.claim(key, namespace, name, handler, launch.run, launch.spec, rename=True)
            record.launch = launch
        self.pool.submit(self._create, key)

    def _transfer_problem(self, handler: ResourceHandler, launch: TaskLaunch) -> str | None:
        """Why the artifact steps cannot be added to this task's pods (None when they can or are not needed)."""
        if self.options.artifacts is None or not (launch.inputs or transfer.declares_outputs(launch)):
            return None
        if not handler.moves_artifacts:
            return f"{handler.resource_type} tasks cannot declare or read artifacts and results on Kubernetes yet"
        if transfer.declares_outputs(launch) and not launch.command:
            return (
                "a task with outputs needs a `command` on Kubernetes: its command is wrapped so that its outputs are "
                "uploaded when it exits (the image's entrypoint cannot be)"
            )
        return None

    def fail_now(self, key: AttemptKey, reason: str, message: str, failure: Failure) -> None:
        """Report an attempt failed that never had a record (it cannot be run at all)."""
        log.warning("run %s task %s attempt %d cannot run: %s", key[0], key[1], key[2], message)
        self._report(Observation(key[0], key[1], key[2], TaskStatus.FAILED, reason=reason, message=message,
                                 failure=failure))  # fmt: skip

    def _create(self, key: AttemptKey) -> None:
        record = self.table.get(key)
        if record is None or record.launch is None or record.handler is None:
            return
        try:
            if record.killed:
                self.finish(record, "Killed", f"killed before it was submitted ({record.killed})", Failure.INFRA)
                return
            run = self._wait_for_run(record.launch.run)
            if run is None:
                return  # shutting down: the preparation may have been cut short; a restart submits this attempt
            if run.problem is not None:
                self.finish(record, run.problem.reason, run.problem.message, run.problem.failure)
                return
            manifest = self._build(record, run)
            self.journal.write(*key, record.namespace, record.handler.kind, manifest)
            self._submit_or_wait(record, record.handler.kind, manifest)
        except KubeApiError as e:
            if e.reason == "Shutdown":
                return  # the journal keeps the intent: a restart submits it
            problem = api_blocker(e, record.namespace)
            self.finish(record, problem.reason, problem.message, problem.failure)
        except Exception as e:
            log.exception("run %s task %s attempt %d: submitting it failed", *key)
            self.finish(record, "ExecutorError", f"submitting the task failed: {e}", Failure.INFRA)

    def _wait_for_run(self, ctx: RunContext) -> RunRecord | None:
        """The run, prepared (once more if the API was down the first time); None when shutting down."""
        run = self._run_record(ctx)
        while not run.ready.wait(1.0):
            if self._stopping.is_set():
                return None
        if self._stopping.is_set():
            return None
        if run.problem is not None and run.problem.failure == Failure.INFRA:
            run.ready.clear()
            self._prepare(run)  # the API was down while preparing: try again before giving up on this task
        return run

    def _build(self, record: Attempt, run: RunRecord) -> Json:
        handler, launch = record.handler, record.launch
        assert handler is not None and launch is not None
        self.tracker.watch(record.namespace, handler)
        ctx = BuildContext(launch, record.name, record.namespace, self.options, work=run.work,
                           work_digest=run.work_digest, extra_labels=handler.extra_labels)  # fmt: skip
        return handler.build(ctx)

    def submit(self, record: Attempt, kind: Kind, manifest: Json) -> None:
        """Create the object; a 409 adopts it if it is this very attempt's (labels agree)."""
        key = record.key
        try:
            created = self.api.create(kind, record.namespace, manifest)
        except AlreadyExists:
            created = self.api.get(kind, record.namespace, record.name)
            labels = (created.get("metadata") or {}).get("labels") or {}
            if key_from_labels(labels) != key:
                self.journal.remove(*key)
                self.finish(record, "NameTaken",
                            f"a {kind.kind} named {record.namespace}/{record.name} already exists and does not "
                            "belong to this attempt", Failure.PERMANENT)  # fmt: skip
                return
            log.info("run %s task %s attempt %d: adopted the existing %s %s", *key, kind.kind, record.name)
        self.journal.remove(*key)
        with self.table.lock:
            record.submitted = True
            killed = record.killed
            if kind.key != PODS.key and record.obj is None and not record.deleted:
                record.obj = created  # until the watch delivers it (it may already have)
            elif kind.key == PODS.key and not record.pods and not record.deleted:
                record.obj, record.pods = created, {record.name: created}
        if killed:
            self.delete(record)
        self.tracker.reconcile(key)

    def _submit_or_wait(self, record: Attempt, kind: Kind, manifest: Json) -> None:
        """`submit`; when a ResourceQuota is used up, say so on the task and try again later (the journal keeps the
        manifest meanwhile, so a restart resubmits it)."""
        try:
            self.submit(record, kind, manifest)
        except QuotaExceeded as e:
            with self.table.lock:
                tries = record.quota_waits
                record.quota_waits += 1
            delay = QUOTA_BACKOFF.delay(tries)
            if tries == 0:
                log.info("run %s task %s attempt %d: waiting for quota: %s", *record.key, e.message)
                self._report(Observation(*record.key, TaskStatus.STARTING, reason=WAITING_FOR_QUOTA,
                                         message=f"waiting for quota: {e.message}"))  # fmt: skip
            retry = lambda: self.pool.submit(self._retry_after_quota, record, kind, manifest)  # noqa: E731
            self.timers.call_at(time.time() + delay, ("quota", record.key), retry)

    def _retry_after_quota(self, record: Attempt, kind: Kind, manifest: Json) -> None:
        if self._stopping.is_set():
            return  # the journal keeps the intent: a restart submits it
        if record.killed:
            self.finish(record, "Killed", f"killed while waiting for quota ({record.killed})", Failure.INFRA)
            return
        try:
            self._submit_or_wait(record, kind, manifest)
        except KubeApiError as e:
            if e.reason == "Shutdown":
                return
            problem = api_blocker(e, record.namespace)
            self.finish(record, problem.reason, problem.message, problem.failure)
        except Exception as e:
            log.exception("run %s task %s attempt %d: submitting it failed", *record.key)
            self.finish(record, "ExecutorError", f"submitting the task failed: {e}", Failure.INFRA)

    def finish(self, record: Attempt, reason: str, message: str, failure: Failure) -> None:
        """Report an attempt failed that has (or will have) no object to watch."""
        with self.table.lock:
            if record.reported_terminal:
                return
            record.reported = TaskStatus.FAILED
            if not record.submitted and not record.exists:
                self.table.forget_locked(record)  # nothing in the cluster to watch or clean up
        self.journal.remove(*record.key)
        log.warning("run %s task %s attempt %d failed: %s: %s", *record.key, reason, message)
        self._report(Observation(*record.key, TaskStatus.FAILED, reason=reason, message=message, failure=failure))

    # -- kill ----------------------------------------------------------------------------------------------------
    def kill(self, key: AttemptKey, reason: str) -> None:
        with self.table.lock:
            record = self.table.attempts.get(key)
            if record is None:
                submitted = False
            else:
                record.killed = reason
                submitted = record.submitted or record.exists
        if record is None:
            self.fail_now(key, "Killed", f"killed ({reason}) before it was submitted", Failure.INFRA)
            return
        if submitted:
            self.pool.submit(self.delete, record)
        elif record.quota_waits:  # waiting for quota: end the wait now rather than at the next try
            self.timers.cancel(("quota", key))
            self.pool.submit(self.finish, record, "Killed", f"killed while waiting for quota ({reason})",
                             Failure.INFRA)  # fmt: skip

    def delete(self, record: Attempt) -> None:
        handler = record.handler
        if handler is None:
            return
        try:
            gone = not self.api.delete(handler.kind, record.namespace, record.name, propagation=handler.propagation)
        except KubeApiError as e:
            log.error("run %s task %s attempt %d: cannot delete %s %s/%s: %s", *record.key, handler.kind.kind,
                      record.namespace, record.name, e.message)  # fmt: skip
            if record.killed:
                self.finish(record, "Killed", f"could not delete the {handler.kind.kind}: {e.message}", Failure.INFRA)
            return
        if gone:
            with self.table.lock:
                record.obj, record.pods, record.deleted = None, {}, True
            self.tracker.reconcile(record.key)

    # -- recover -------------------------------------------------------------------------------------------------
    def recover(self, attempts: list[ActiveAttempt]) -> None:
        by_namespace: dict[str, list[AttemptKey]] = {}
        for a in attempts:
            key = (a.run.run_id, a.spec.name, a.attempt)
            try:
                handler = self.registry.get(a.spec.resource_type)
            except UnknownResourceType as e:
                self.fail_now(key, "UnknownResourceType", str(e), Failure.PERMANENT)
                continue
            namespace = str(a.resource.get("namespace") or self.namespace_of(a.run))
            name = str(a.resource.get("resource_name") or names.attempt_name(
                a.run.run_id, a.spec.name, a.attempt, max_length=handler.max_name_length))  # fmt: skip
            with self.table.lock:
                record = self.table.claim(key, namespace, name, handler, a.run, a.spec, rename=False)
                record.reported = TaskStatus.RUNNING if a.status == TaskStatus.RUNNING else None
                if a.launch is not None and a.status == TaskStatus.STARTING:
                    record.launch = a.launch  # rebuilt by the engine: submitted again if nothing else is found
            by_namespace.setdefault(namespace, []).append(key)
        for namespace, keys in by_namespace.items():
            self.pool.submit(self._recover_namespace, namespace, keys)

    def _recover_namespace(self, namespace: str, keys: list[AttemptKey]) -> None:
        if not self._wait_for_watches(namespace, keys):
            return  # shutting down, or a watch that cannot run (403) already failed these attempts
        counts = {"adopted": 0, "resubmitted": 0, "rebuilt": 0, "lost": 0}
        for key in keys:
            record = self.table.get(key)
            if record is not None and record.handler is not None:
                counts[self._recover_one(record, namespace)] += 1
        log.info(
            "namespace %s: recovered %d attempt(s): %d adopted, %d resubmitted, %d rebuilt and submitted, %d lost",
            namespace, len(keys), counts["adopted"], counts["resubmitted"], counts["rebuilt"], counts["lost"],
        )  # fmt: skip

    def _wait_for_watches(self, namespace: str, keys: list[AttemptKey]) -> bool:
        """Wait until the namespace's watches have listed everything (False: no point waiting any more)."""
        handlers: set[ResourceHandler | None] = set()
        for k in keys:
            record = self.table.get(k)
            if record is not None:
                handlers.add(record.handler)
        watches = [w for h in handlers if h is not None for w in self.tracker.watch(namespace, h)]
        while not all(w.synced.wait(1.0) for w in watches):
            if self._stopping.is_set() or self._all_ended(keys):
                return False
        return True

    def _recover_one(self, record: Attempt, namespace: str) -> str:
        """Adopt the attempt's object, re-create it from the journal or from the launch the engine rebuilt (a
        STARTING attempt after a failover, whose journal was on the other replica's disk), or report it lost; says
        which it did. Re-creating is safe: the name is the attempt's own, so a create that did happen meets 409 and
        is adopted, and the watches have listed every object of the namespace before this runs."""
        assert record.handler is not None
        if record.exists:
            with self.table.lock:
                record.submitted = True
            self.tracker.reconcile(record.key)
            return "adopted"
        pending = self.journal.read(*record.key)
        if pending is not None:
            try:
                self._submit_or_wait(record, pending[1], pending[2])
            except KubeApiError as e:
                problem = api_blocker(e, namespace)
                self.finish(record, problem.reason, problem.message, problem.failure)
            return "resubmitted"
        if record.launch is not None and record.reported is None:
            self.pool.submit(self._create, record.key)  # as a first submission: run prepared, journal, create
            return "rebuilt"
        if record.reported == TaskStatus.RUNNING:
            message = (f"its {record.handler.kind.kind} {namespace}/{record.name} was deleted while the controller "
                       "was down")  # fmt: skip
            self.finish(record, "Lost", message, Failure.INFRA)
        else:
            self.finish(record, "NotSubmitted", "the controller stopped before it submitted this attempt",
                        Failure.INFRA)  # fmt: skip
        return "lost"

    def _all_ended(self, keys: list[AttemptKey]) -> bool:
        with self.table.lock:
            records = [self.table.attempts.get(k) for k in keys]
        return all(r is None or r.reported_terminal for r in records)
