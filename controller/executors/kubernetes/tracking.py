"""Tracking attempts: what the watches say about an attempt's objects, turned into observations for the engine.

Two halves. `evaluate` is pure: an attempt's record as last seen (its object, its pods, what was reported before) and
the time go in, an `Evaluation` comes out -- the handler's verdict, the observation to report if the status changed,
which pods' events to read, whether the attempt just ended. No I/O, no locks, no mutation: it is tested directly
(tests/kube/test_evaluate.py). `Tracker` is the I/O around it: it runs the watches, files every event under its
attempt (labels `odin.dev/run`, `odin.dev/task`, `odin.dev/attempt`, or the owner name a TrainJob's pods carry),
calls `evaluate`, applies the result to the record, and schedules what it asks for (a re-check at a deadline, a read
of a pod's events, a re-list of the pods).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from odin.controller.executors.kubernetes import names
from odin.controller.executors.kubernetes.api import PODS, Json, Kind, KubeApi
from odin.controller.executors.kubernetes.attempts import (
    Attempt,
    AttemptKey,
    AttemptTable,
    controller_owner,
    key_from_labels,
)
from odin.controller.executors.kubernetes.config import KubeOptions
from odin.controller.executors.kubernetes.errors import KubeApiError
from odin.controller.executors.kubernetes.failures import FirstSeen, PodState, classify_pod, missing_volume_message
from odin.controller.executors.kubernetes.handlers.base import AttemptView, ResourceHandler, Verdict
from odin.controller.executors.kubernetes.handlers.registry import HandlerRegistry
from odin.controller.executors.kubernetes.timers import Timers
from odin.controller.executors.kubernetes.watch import ResourceWatch, WatchKey, WatchManager
from odin.controller.vocabulary import Observation, TaskStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One look at an attempt, as `evaluate` decided it; the tracker applies it to the record."""

    states: tuple[PodState, ...]
    verdict: Verdict
    disruption: str | None  # the attempt's last disruption after this look
    check_events: tuple[str, ...] = ()  # pods whose events may say why their volumes do not mount
    refresh_pods: bool = False  # re-list the pods before believing this verdict (it is not applied)
    ended: bool = False  # the attempt reached a final status just now
    observation: Observation | None = None  # what to report (its status becomes the reported one)
    forget: bool = False  # nobody asks about the attempt and its objects are gone


def evaluate(record: Attempt, *, now: float, options: KubeOptions, first_seen: FirstSeen, log_path: str) -> Evaluation:
    """The attempt's status from its objects and pods at `now`: the pure half of tracking (see the module docstring).

    `first_seen` remembers when a pod was first seen waiting (see `classify_pod`); `log_path` is where its log is
    saved, reported with the attempt's resource fields."""
    assert record.handler is not None
    states = _classify_pods(record, now=now, options=options, first_seen=first_seen)
    disruption = _last_disruption(record, states)
    verdict = record.handler.evaluate(_view(record, states, disruption, now=now, options=options))
    check_events = _events_due(record, states, now=now, options=options)
    if _pods_lag_behind(record, verdict, states):
        return Evaluation(states, verdict, disruption, check_events, refresh_pods=True)
    return Evaluation(
        states,
        verdict,
        disruption,
        check_events,
        ended=verdict.status is not None and verdict.status.terminal and record.terminal_at is None,
        observation=_observation(record, verdict, states, log_path),
        forget=not record.tracked and record.deleted and not record.exists,
    )


def _classify_pods(record: Attempt, *, now: float, options: KubeOptions, first_seen: FirstSeen) -> tuple[PodState, ...]:
    return tuple(
        classify_pod(
            pod,
            now=now,
            deadlines=options.deadlines,
            first_seen=first_seen,
            missing_volume_event=record.missing_volume.get(pod_name),
        )
        for pod_name, pod in record.pods.items()
    )


def _last_disruption(record: Attempt, states: Sequence[PodState]) -> str | None:
    """A disruption (NodeLost, Preempted...) is remembered: a Pod deleted after it fails for that reason."""
    disruption = record.disruption
    for state in states:
        if state.disruption:
            disruption = state.disruption
    return disruption


def _events_due(record: Attempt, states: Sequence[PodState], *, now: float, options: KubeOptions) -> tuple[str, ...]:
    """Pods stuck mounting volumes whose events were not read for a deadline's length (one read per interval)."""
    interval = max(options.deadlines.missing_volume, 1.0)
    return tuple(s.name for s in states if s.check_events and now - record.events_checked.get(s.name, 0.0) >= interval)


def _view(
    record: Attempt, states: Sequence[PodState], disruption: str | None, *, now: float, options: KubeOptions
) -> AttemptView:
    return AttemptView(
        name=record.name,
        namespace=record.namespace,
        obj=record.obj,
        deleted=record.deleted,
        pods=states,
        now=now,
        created_at=record.created_at,
        options=options,
        killed=record.killed is not None,
        disruption=disruption,
    )


def _pods_lag_behind(record: Attempt, verdict: Verdict, states: Sequence[PodState]) -> bool:
    """The operator's Failed arrived before the pods' own events (two watch streams): read the pods once, so the
    failure is classified from the pod that caused it (a preempted worker is INFRA, not USER)."""
    assert record.handler is not None
    return (
        verdict.status == TaskStatus.FAILED
        and record.obj is not None
        and record.handler.kind.key != PODS.key
        and not record.pods_refreshed
        and not any(s.failed for s in states)
    )


def _observation(record: Attempt, verdict: Verdict, states: Sequence[PodState], log_path: str) -> Observation | None:
    """RUNNING once, then a final status once; nothing for an attempt the engine does not ask about."""
    status = verdict.status
    if not record.tracked or status is None or record.reported == status:
        return None
    if status == TaskStatus.RUNNING and record.reported is None:
        return Observation(*record.key, status, resource=resource_fields(record, states, log_path))
    if status.terminal and not record.reported_terminal:
        return Observation(
            *record.key, status, exit_code=verdict.exit_code, reason=verdict.reason, message=verdict.message,
            failure=verdict.failure, resource=resource_fields(record, states, log_path),
        )  # fmt: skip
    return None


def outcome_detail(observation: Observation) -> str:
    """The "(reason: message)" of a log line, without a "None" where a success has no message."""
    if observation.reason and observation.message:
        return f" ({observation.reason}: {observation.message})"
    if observation.reason or observation.message:
        return f" ({observation.reason or observation.message})"
    return ""


def resource_fields(record: Attempt, states: Sequence[PodState], log_path: str) -> dict[str, Any]:
    """What the task run records about where the attempt ran: its object, nodes, GPUs and saved log."""
    assert record.handler is not None
    resource: dict[str, Any] = {
        "resource_kind": record.handler.kind.kind,
        "resource_name": record.name,
        "namespace": record.namespace,
        "log_path": log_path,
    }
    nodes = sorted({s.node for s in states if s.node})
    if nodes:
        resource["node"] = ",".join(nodes)[:253]
    gpus = record.spec.num_gpus if record.spec else 0
    if gpus and nodes:  # "<node>:<count>": Kubernetes does not say which devices a pod got, only how many
        per_node = Counter(s.node for s in states if s.node)
        resource["gpus"] = [f"{node}:{count * gpus}" for node, count in sorted(per_node.items()) if count]
    return resource


Ended = Callable[[Attempt, Verdict], None]  # an attempt reached a final status: save logs, clean up
WatchError = Callable[[WatchKey, KubeApiError], None]


class Tracker:
    """The watches and the records they fill; each change re-evaluates its attempt (see the module docstring)."""

    def __init__(
        self,
        table: AttemptTable,
        api: KubeApi,
        options: KubeOptions,
        *,
        registry: HandlerRegistry,
        timers: Timers,
        pool: ThreadPoolExecutor,
        log_path: Callable[[AttemptKey], str],
        report: Callable[[Observation], None],
        ended: Ended,
        on_watch_error: WatchError,
    ) -> None:
        self.table, self.api, self.options, self.registry = table, api, options, registry
        self.timers, self.pool = timers, pool
        self._log_path, self._report, self._ended = log_path, report, ended
        self.selector = names.selector(
            {names.MANAGED_BY: names.MANAGED_BY_VALUE, names.LABEL_INSTANCE: names.label_value(options.instance)}
        )
        self.watches = WatchManager(api, self.on_event, on_watch_error, timeout=options.watch_timeout)

    # -- watches ---------------------------------------------------------------------------------------------
    def watch(self, namespace: str, handler: ResourceHandler | None) -> list[ResourceWatch]:
        """Start (once) the watches that observe a handler's attempts in a namespace: pods, and its own kind."""
        watches = [self.watches.ensure(namespace, PODS, self.selector)]
        if handler is not None and handler.kind.key != PODS.key:
            watches.append(self.watches.ensure(namespace, handler.kind, self.selector))
        if handler is not None and handler.foreign_pod_label:
            watches.append(self.watches.ensure(namespace, PODS, handler.foreign_pod_label))
        return watches

    def pod_selector(self, record: Attempt) -> str:
        """A label selector for the attempt's pods."""
        if record.handler is not None and record.handler.foreign_pod_label:
            return str(record.handler.pod_selector(record.name))
        run, task, attempt = record.key
        return (
            f"{self.selector},{names.LABEL_RUN}={names.label_value(run)},{names.LABEL_TASK}={names.label_value(task)},"
            f"{names.LABEL_ATTEMPT}={attempt}"
        )

    def on_event(self, event: str, kind: Kind, obj: Json) -> None:
        """A watch saw an Odin object change: file it under its attempt, and re-evaluate that attempt."""
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        key = key_from_labels(meta.get("labels") or {})
        deleted = event == "DELETED"
        with self.table.lock:
            if kind.key == PODS.key:
                key = self._file_pod_locked(key, namespace, name, obj, deleted=deleted)
            else:
                key = self._file_object_locked(key, kind, namespace, name, obj, deleted=deleted)
        if key is not None:
            self.reconcile(key)

    def _file_pod_locked(
        self, key: AttemptKey | None, namespace: str, name: str, pod: Json, *, deleted: bool
    ) -> AttemptKey | None:
        owner = controller_owner(pod)
        if key is None:
            key = self._foreign_owner_locked(namespace, pod)
            if key is None:
                return None
            owner = owner or {"controller": True}
        record = self.table.record_locked(key, namespace, name, create=not deleted)
        if record is None:
            return None
        if owner is None:  # an Odin pod nothing controls: a `Pod` attempt's own object
            if record.handler is None:
                record.handler = self._handler_for_kind(PODS)
            record.obj = None if deleted else pod
            record.deleted = record.deleted or deleted
        if deleted:
            record.pods.pop(name, None)
        else:
            record.pods[name] = pod
            record.submitted = True
        return key

    def _file_object_locked(
        self, key: AttemptKey | None, kind: Kind, namespace: str, name: str, obj: Json, *, deleted: bool
    ) -> AttemptKey | None:
        if key is None:
            return None
        record = self.table.record_locked(key, namespace, name, create=not deleted)
        if record is None:
            return None
        if record.handler is None:
            record.handler = self._handler_for_kind(kind)
            if record.handler is not None:
                self.table.owners[(namespace, kind.key, name)] = key
        record.obj = None if deleted else obj
        record.deleted = record.deleted or deleted
        record.submitted = record.submitted or not deleted
        return key

    def _handler_for_kind(self, kind: Kind) -> ResourceHandler | None:
        return next((h for h in self.registry.all() if h.kind.key == kind.key), None)

    def _foreign_owner_locked(self, namespace: str, pod: Json) -> AttemptKey | None:
        """The attempt owning a pod without Odin's labels (TrainJob pods), through the owner name it carries."""
        for handler in self.registry.all():
            owner = handler.owner_of(pod)
            if owner is not None:
                return self.table.owners.get((namespace, handler.kind.key, owner))
        return None

    # -- evaluating ----------------------------------------------------------------------------------------------
    def reconcile(self, key: AttemptKey) -> None:
        """Re-evaluate one attempt from what the watches last said, and act on what changed."""
        with self.table.lock:
            record = self.table.attempts.get(key)
            if record is None or record.handler is None:
                return
            if record.terminal_at is not None and not record.tracked:
                return
            now = time.time()
            evaluation = evaluate(
                record, now=now, options=self.options, first_seen=self.table.first_seen, log_path=self._log_path(key)
            )
            self._note_pods_locked(record, evaluation, now)
            if evaluation.refresh_pods:
                record.pods_refreshed = True
                self.pool.submit(self._refresh_pods, key)
                return
            self._apply_locked(record, evaluation, now)
        self._act(record, evaluation)

    @staticmethod
    def _note_pods_locked(record: Attempt, evaluation: Evaluation, now: float) -> None:
        """What this look learned of the pods, kept even when the verdict waits for a re-list."""
        record.disruption = evaluation.disruption
        for pod in evaluation.check_events:
            record.events_checked[pod] = now

    def _apply_locked(self, record: Attempt, evaluation: Evaluation, now: float) -> None:
        verdict = evaluation.verdict
        record.verdict = verdict
        if verdict.recheck_at is not None:
            key = record.key
            self.timers.call_at(verdict.recheck_at, ("recheck", key), lambda: self.reconcile(key))
        if evaluation.ended:
            record.terminal_at = now
        if evaluation.observation is not None:
            record.reported = evaluation.observation.status
        if evaluation.forget:
            self.table.forget_locked(record)

    def _act(self, record: Attempt, evaluation: Evaluation) -> None:
        """Outside the lock: report, read events, and hand an ended attempt on."""
        observation = evaluation.observation
        if observation is not None:
            if observation.status.terminal:
                log.info("run %s task %s attempt %d: %s%s", *record.key, observation.status,
                         outcome_detail(observation))  # fmt: skip
            self._report(observation)
        for pod_name in evaluation.check_events:
            self.pool.submit(self._check_events, record.key, pod_name)
        if evaluation.ended:
            self._ended(record, evaluation.verdict)

    def _refresh_pods(self, key: AttemptKey) -> None:
        record = self.table.get(key)
        if record is None:
            return
        try:
            pods, _ = self.api.list_objects(PODS, record.namespace, label_selector=self.pod_selector(record))
        except KubeApiError as e:
            log.warning("run %s task %s: cannot list the pods of attempt %d: %s", key[0], key[1], key[2], e.message)
            pods = None
        if pods is not None:
            with self.table.lock:
                record.pods.update({str(p["metadata"]["name"]): p for p in pods})
        self.reconcile(key)

    def _check_events(self, key: AttemptKey, pod: str) -> None:
        record = self.table.get(key)
        if record is None:
            return
        try:
            message = missing_volume_message(self.api.events_for(record.namespace, pod))
        except KubeApiError as e:
            log.warning("run %s task %s: cannot read the events of pod %s: %s", key[0], key[1], pod, e.message)
            return
        if message:
            with self.table.lock:
                record.missing_volume[pod] = message
            self.reconcile(key)
