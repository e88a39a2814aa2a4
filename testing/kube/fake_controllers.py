"""Simulated controllers inside the fake API server: the batch/v1 Job controller and a Kubeflow training-operator.

Why inside the fake rather than as threads watching it over HTTP: they run synchronously as store listeners, in the
same locked section as the write that triggered them.  That makes them deterministic (when ``create_namespaced_job``
returns, its pod already exists; when the kubelet helper marks that pod Succeeded, the Job is already Complete), so
tests never need to wait for them and they never show up in ``server.requests`` (API-call counts measure the code
under test, not the simulated cluster).  The cost is that the ordering is tighter than on a real cluster, where the
controller reacts some milliseconds later -- code that is correct against the fake but assumes that ordering would
still pass; keep executor logic watch-driven.  Both controllers can be switched off at any time
(``server.controllers.job = False``), e.g. to drive Job status by hand with the kubelet's ``job_*`` helpers.

Job controller -- simulated: pod creation from ``spec.template`` (``<job>-xxxxx``, or ``<job>-<index>-xxxxx`` for
Indexed jobs, labelled ``job-name``, ``batch.kubernetes.io/job-name``, ``controller-uid``,
``batch.kubernetes.io/controller-uid`` and owned by the Job), ``parallelism``/``completions``, replacement of failed
or deleted pods until ``backoffLimit`` is exceeded, ``suspend``, status ``active``/``ready``/``succeeded``/``failed``/
``startTime``/``completionTime``/``completedIndexes`` and the conditions ``SuccessCriteriaMet`` then ``Complete`` and
``FailureTarget`` then ``Failed`` (reason ``BackoffLimitExceeded``; each pair in two status updates, as the real
controller writes them), plus the ``SuccessfulCreate``/``Completed``/
``BackoffLimitExceeded`` events.  Not simulated: ``activeDeadlineSeconds`` (use ``Kubelet.job_fail(reason=
"DeadlineExceeded")``), ``podFailurePolicy``, ``successPolicy``, ``backoffLimitPerIndex``, ``ttlSecondsAfterFinished``,
the ``batch.kubernetes.io/job-tracking`` finalizer and exponential back-off between retries.

Kubeflow controller -- simulated for ``kubeflow.org/v1`` kinds with ``<x>ReplicaSpecs`` (PyTorchJob, TFJob, MPIJob):
one pod per replica, named ``<job>-<type>-<index>`` (type lower-cased), labelled ``training.kubeflow.org/job-name``,
``training.kubeflow.org/replica-type``, ``training.kubeflow.org/replica-index``, ``training.kubeflow.org/operator-name``
(and ``training.kubeflow.org/job-role: master`` on master 0), owned by the job; status ``Created``, ``Running`` (all
pods running), ``Succeeded`` (all Master/Chief/Launcher pods, or all pods when there is none, succeeded), ``Failed``
(any pod failed), ``replicaStatuses``, ``startTime``, ``completionTime``; a deleted pod is recreated while the job
runs.  Not simulated: services, the ``MASTER_ADDR``/``WORLD_SIZE`` environment, ``runPolicy`` (cleanPodPolicy,
backoffLimit, activeDeadlineSeconds, suspend), elastic policies, gang scheduling.  ElasticJob and TrainJob get no
controller: drive them with the kubelet's ``kubeflow_*``/``trainjob_*`` helpers.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from odin.testing.kube.fake_resources import EVENTS, JOBS, PODS, ResourceKind
from odin.testing.kube.fake_shapes import (
    KUBEFLOW_PRIMARY_REPLICAS,
    KUBEFLOW_REPLICA_FIELDS,
    condition_true,
    event_body,
    kubeflow_message,
    kubeflow_reason,
    set_job_condition,
    set_kubeflow_condition,
)
from odin.testing.kube.fake_store import (
    TERMINAL_POD_PHASES,
    ApiError,
    JsonObj,
    Store,
    StoredEvent,
    controller_owner,
    now_rfc3339,
)

INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"


def _phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _is_ready(pod: Mapping[str, Any]) -> bool:
    return condition_true(pod, "Ready")


def _owned(store: Store, kind: ResourceKind, namespace: str, owner_uid: str) -> list[JsonObj]:
    return [p for p in store.objects(kind, namespace) if (controller_owner(p) or {}).get("uid") == owner_uid]


def _emit(store: Store, obj: Mapping[str, Any], reason: str, message: str, component: str, warning: bool) -> None:
    store.create(
        EVENTS,
        str(obj["metadata"]["namespace"]),
        event_body(
            obj, reason, message, event_type="Warning" if warning else "Normal", component=component, now=now_rfc3339()
        ),
    )


def _owner_ref(obj: Mapping[str, Any]) -> JsonObj:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _format_indexes(indexes: set[int]) -> str:
    out: list[str] = []
    ordered = sorted(indexes)
    start = prev = None
    for index in [*ordered, None]:
        if index is not None and prev is not None and index == prev + 1:
            prev = index
            continue
        if start is not None:
            out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = index
    return ",".join(out)


class JobController:
    """batch/v1 Job controller (see the module docstring for what is and is not simulated)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.enabled = True
        # Per job uid: pod uids already counted as succeeded / failed (the job-tracking finalizer's bookkeeping).
        self._counted: dict[str, dict[str, set[str]]] = {}
        self._indexes: dict[str, dict[str, int]] = {}
        # Pods this controller deletes itself (suspension, finished job): not failures.
        self._removing: set[str] = set()

    def __call__(self, event: StoredEvent) -> None:
        if not self.enabled:
            return
        if event.kind.key == JOBS.key:
            if event.type == "DELETED":
                self._counted.pop(event.obj["metadata"]["uid"], None)
                return
            self.sync(event.namespace, event.name)
        elif event.kind.key == PODS.key:
            owner = controller_owner(event.obj)
            if not owner or owner.get("kind") != "Job" or owner.get("apiVersion") != "batch/v1":
                return
            job = self.store.get_or_none(JOBS, event.namespace, str(owner.get("name")))
            if job is None or job["metadata"]["uid"] != owner.get("uid"):
                return
            pod_uid = event.obj["metadata"]["uid"]
            if event.type == "DELETED" and pod_uid in self._removing:
                self._removing.discard(pod_uid)
            elif event.type == "DELETED" and _phase(event.prev or event.obj) not in TERMINAL_POD_PHASES:
                counted = self._counted.setdefault(job["metadata"]["uid"], {"succeeded": set(), "failed": set()})
                counted["failed"].add(pod_uid)
            self.sync(event.namespace, str(owner["name"]))

    def sync(self, namespace: str, name: str) -> None:
        store = self.store
        job = store.get_or_none(JOBS, namespace, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        status: JsonObj = copy.deepcopy(job.get("status") or {})
        if condition_true(job, "Complete") or condition_true(job, "Failed"):
            return
        spec = job.get("spec") or {}
        uid = job["metadata"]["uid"]
        indexed = spec.get("completionMode") == "Indexed"
        counted = self._counted.setdefault(uid, {"succeeded": set(), "failed": set()})
        index_of = self._indexes.setdefault(uid, {})
        pods = _owned(store, PODS, namespace, uid)
        for pod in pods:
            phase = _phase(pod)
            if phase == "Succeeded":
                counted["succeeded"].add(pod["metadata"]["uid"])
            elif phase == "Failed":
                counted["failed"].add(pod["metadata"]["uid"])
            annotation = (pod["metadata"].get("annotations") or {}).get(INDEX_ANNOTATION)
            if annotation is not None:
                index_of[pod["metadata"]["uid"]] = int(annotation)
        active = [
            p for p in pods if _phase(p) not in TERMINAL_POD_PHASES and not p["metadata"].get("deletionTimestamp")
        ]
        now = now_rfc3339()
        conditions: list[JsonObj] = list(status.get("conditions") or [])
        completions = spec.get("completions")
        target = int(completions) if completions is not None else 1
        parallelism = int(spec.get("parallelism", 1))
        backoff = int(spec.get("backoffLimit", 6))
        succeeded_indexes = {index_of[u] for u in counted["succeeded"] if u in index_of}
        succeeded = len(succeeded_indexes) if indexed else len(counted["succeeded"])
        failed = len(counted["failed"])

        if spec.get("suspend"):
            for pod in active:
                self._remove_pod(pod)
            active = []
            if not condition_true(job, "Suspended"):
                conditions = set_job_condition(conditions, "Suspended", "True", "JobSuspended", "Job suspended", now)
                _emit(store, job, "Suspended", "Job suspended", "job-controller", warning=False)
        else:
            if condition_true(job, "Suspended"):
                conditions = set_job_condition(conditions, "Suspended", "False", "JobResumed", "Job resumed", now)
                _emit(store, job, "Resumed", "Job resumed", "job-controller", warning=False)
            status.setdefault("startTime", now)
            if failed > backoff:
                for pod in active:
                    self._remove_pod(pod)
                active = []
                message = "Job has reached the specified backoff limit"
                # Two writes, as the real controller makes: the target condition, then (on the sync that write
                # triggers) the final one -- a watcher sees FailureTarget alone first.
                if not condition_true(job, "FailureTarget"):
                    conditions = set_job_condition(
                        conditions, "FailureTarget", "True", "BackoffLimitExceeded", message, now
                    )
                else:
                    conditions = set_job_condition(conditions, "Failed", "True", "BackoffLimitExceeded", message, now)
                    _emit(store, job, "BackoffLimitExceeded", message, "job-controller", warning=True)
            elif succeeded >= target:
                for pod in active:
                    self._remove_pod(pod)
                active = []
                message = "Reached expected number of succeeded pods"
                # SuccessCriteriaMet, then Complete in a separate update (about 5 ms apart on kube-apiserver v1.36).
                if not condition_true(job, "SuccessCriteriaMet"):
                    conditions = set_job_condition(
                        conditions, "SuccessCriteriaMet", "True", "CompletionsReached", message, now
                    )
                else:
                    conditions = set_job_condition(conditions, "Complete", "True", "CompletionsReached", message, now)
                    status["completionTime"] = now
                    _emit(store, job, "Completed", "Job completed", "job-controller", warning=False)
            else:
                wanted = min(parallelism, target - succeeded) - len(active)
                busy = {index_of.get(p["metadata"]["uid"]) for p in active} | succeeded_indexes
                for _ in range(max(0, wanted)):
                    index = next(i for i in range(target + len(busy) + 1) if i not in busy) if indexed else None
                    if index is not None:
                        busy.add(index)
                    created = self._create_pod(job, index)
                    if created is not None:
                        active.append(created)
        status.pop("active", None)
        status.pop("succeeded", None)
        status.pop("failed", None)
        if active:
            status["active"] = len(active)
        if succeeded:
            status["succeeded"] = succeeded
        if failed:
            status["failed"] = failed
        if indexed and succeeded_indexes:
            status["completedIndexes"] = _format_indexes(succeeded_indexes)
        status["ready"] = sum(1 for p in active if _is_ready(p))
        status["terminating"] = 0
        status["uncountedTerminatedPods"] = {}
        if conditions:
            status["conditions"] = conditions
        current = store.get_or_none(JOBS, namespace, name)
        if current is not None and current.get("status") != status:
            store.update(JOBS, namespace, name, {**current, "status": status}, subresource="status")

    def _remove_pod(self, pod: JsonObj) -> None:
        self._removing.add(pod["metadata"]["uid"])
        self.store.delete(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], propagation="Background")

    def _create_pod(self, job: JsonObj, index: int | None) -> JsonObj | None:
        name = job["metadata"]["name"]
        template = copy.deepcopy(job["spec"]["template"])
        meta = template.get("metadata") or {}
        labels = dict(meta.get("labels") or {})
        annotations = dict(meta.get("annotations") or {})
        if index is not None:
            annotations[INDEX_ANNOTATION] = str(index)
            labels[INDEX_ANNOTATION] = str(index)
        pod_meta: JsonObj = {
            "generateName": f"{name}-{index}-" if index is not None else f"{name}-",
            "labels": labels,
            "ownerReferences": [_owner_ref(job)],
        }
        if annotations:
            pod_meta["annotations"] = annotations
        namespace = job["metadata"]["namespace"]
        try:
            pod = self.store.create(PODS, namespace, {"metadata": pod_meta, "spec": template.get("spec") or {}})
        except ApiError as exc:
            _emit(self.store, job, "FailedCreate", f"Error creating: {exc.message}", "job-controller", warning=True)
            return None
        _emit(self.store, job, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}", "job-controller", False)
        return pod


class KubeflowController:
    """A minimal Kubeflow training-operator (see the module docstring)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.enabled = True

    def _is_kubeflow(self, kind: ResourceKind) -> bool:
        return kind.group == "kubeflow.org" and kind.kind in KUBEFLOW_REPLICA_FIELDS

    def __call__(self, event: StoredEvent) -> None:
        if not self.enabled:
            return
        if self._is_kubeflow(event.kind):
            if event.type != "DELETED":
                self.sync(event.kind, event.namespace, event.name)
        elif event.kind.key == PODS.key:
            owner = controller_owner(event.obj)
            if not owner or not str(owner.get("apiVersion", "")).startswith("kubeflow.org/"):
                return
            group, _, version = str(owner["apiVersion"]).partition("/")
            for kind in self.store.kinds.values():
                if kind.group == group and kind.version == version and kind.kind == owner.get("kind"):
                    job = self.store.get_or_none(kind, event.namespace, str(owner.get("name")))
                    if job is not None and job["metadata"]["uid"] == owner.get("uid"):
                        self.sync(kind, event.namespace, str(owner["name"]))

    def sync(self, kind: ResourceKind, namespace: str, name: str) -> None:
        store = self.store
        job = store.get_or_none(kind, namespace, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        if condition_true(job, "Succeeded") or condition_true(job, "Failed"):
            return
        specs: Mapping[str, Any] = (job.get("spec") or {}).get(KUBEFLOW_REPLICA_FIELDS[kind.kind]) or {}
        status: JsonObj = copy.deepcopy(job.get("status") or {})
        conditions: list[JsonObj] = list(status.get("conditions") or [])
        now = now_rfc3339()
        uid = job["metadata"]["uid"]
        existing = {p["metadata"]["name"] for p in _owned(store, PODS, namespace, uid)}
        for replica_type, replica_spec in specs.items():
            for index in range(int((replica_spec or {}).get("replicas", 1))):
                pod_name = f"{name}-{replica_type.lower()}-{index}"
                if pod_name not in existing:
                    self._create_pod(kind, job, replica_type, replica_spec or {}, index, pod_name)
        if not any(c.get("type") == "Created" for c in conditions):
            conditions = set_kubeflow_condition(
                conditions,
                "Created",
                kubeflow_reason(kind.kind, "Created"),
                kubeflow_message(kind.kind, namespace, name, "Created"),
                now,
            )
            status.setdefault("startTime", now)
        pods = _owned(store, PODS, namespace, uid)
        replica_statuses: JsonObj = {}
        by_type: dict[str, list[JsonObj]] = {}
        for pod in pods:
            pod_type = next(
                (
                    t
                    for t in specs
                    if t.lower() == pod["metadata"].get("labels", {}).get("training.kubeflow.org/replica-type")
                ),
                None,
            )
            if pod_type is not None:
                by_type.setdefault(pod_type, []).append(pod)
        for replica_type in specs:
            counts: JsonObj = {}
            for key, phases in (
                ("active", ("Pending", "Running")),
                ("succeeded", ("Succeeded",)),
                ("failed", ("Failed",)),
            ):
                n = sum(1 for p in by_type.get(replica_type, []) if _phase(p) in phases)
                if n:
                    counts[key] = n
            replica_statuses[replica_type] = counts
        status["replicaStatuses"] = replica_statuses
        expected = sum(int((s or {}).get("replicas", 1)) for s in specs.values())
        failed = {t: c.get("failed", 0) for t, c in replica_statuses.items() if c.get("failed")}
        primaries = [t for t in KUBEFLOW_PRIMARY_REPLICAS if t in specs] or list(specs)
        primary_done = all(
            replica_statuses.get(t, {}).get("succeeded", 0) >= int((specs[t] or {}).get("replicas", 1))
            for t in primaries
        )
        if failed:
            replica_type, count = next(iter(failed.items()))
            conditions = set_kubeflow_condition(
                conditions,
                "Failed",
                kubeflow_reason(kind.kind, "Failed"),
                f"{kind.kind} {namespace}/{name} is failed because {count} {replica_type} replica(s) failed.",
                now,
            )
            status["completionTime"] = now
        elif specs and primary_done:
            conditions = set_kubeflow_condition(
                conditions,
                "Succeeded",
                kubeflow_reason(kind.kind, "Succeeded"),
                kubeflow_message(kind.kind, namespace, name, "Succeeded"),
                now,
            )
            status["completionTime"] = now
        elif expected and sum(1 for p in pods if _phase(p) == "Running") == expected:
            conditions = set_kubeflow_condition(
                conditions,
                "Running",
                kubeflow_reason(kind.kind, "Running"),
                kubeflow_message(kind.kind, namespace, name, "Running"),
                now,
            )
        status["conditions"] = conditions
        current = store.get_or_none(kind, namespace, name)
        if current is not None and current.get("status") != status:
            store.update(kind, namespace, name, {**current, "status": status}, subresource="status")

    def _create_pod(
        self, kind: ResourceKind, job: JsonObj, replica_type: str, spec: Mapping[str, Any], index: int, pod_name: str
    ) -> None:
        template = copy.deepcopy(spec.get("template") or {})
        meta = template.get("metadata") or {}
        job_name = job["metadata"]["name"]
        labels = dict(meta.get("labels") or {})
        labels.update(
            {
                "training.kubeflow.org/job-name": job_name,
                "training.kubeflow.org/operator-name": f"{kind.kind.lower()}-controller",
                "training.kubeflow.org/replica-type": replica_type.lower(),
                "training.kubeflow.org/replica-index": str(index),
            }
        )
        if replica_type in KUBEFLOW_PRIMARY_REPLICAS and index == 0:
            labels["training.kubeflow.org/job-role"] = "master"
        pod_spec = template.get("spec") or {}
        restart = spec.get("restartPolicy")
        if restart in ("Always", "OnFailure", "Never"):
            pod_spec["restartPolicy"] = restart
        elif restart == "ExitCode":
            pod_spec["restartPolicy"] = "Never"
        pod_meta: JsonObj = {"name": pod_name, "labels": labels, "ownerReferences": [_owner_ref(job)]}
        if meta.get("annotations"):
            pod_meta["annotations"] = dict(meta["annotations"])
        try:
            self.store.create(PODS, job["metadata"]["namespace"], {"metadata": pod_meta, "spec": pod_spec})
        except ApiError as exc:
            _emit(self.store, job, "FailedCreatePod", f"Error creating: {exc.message}", "training-operator", True)
            return
        _emit(self.store, job, "SuccessfulCreatePod", f"Created pod: {pod_name}", "training-operator", False)
