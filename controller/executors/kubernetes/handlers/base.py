"""The resource-handler contract: one small class per Kubernetes kind that can run a task.

A handler knows four things about its kind, and nothing about the engine, the watches or retries:

* `build(ctx)`: the manifest of one attempt (from the shared pod template in `manifests.py`);
* `evaluate(view)`: what the object and its pods mean for the attempt -- pending, running, succeeded, or failed with
  a reason and a `Failure` kind (see `failures.py` for pods);
* which pods are its own and what each is called (`replica`), for logs;
* how it is deleted (`propagation`).

Adding a CRD (a RayJob, a JobSet...) is one subclass plus an entry point in the `odin.resource_handlers` group (see
docs/kubernetes.md); `registry.py` finds it, and `resource_type: RayJob` in a pipeline then validates and runs.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from odin.controller.executors.kubernetes.api import Json, Kind
from odin.controller.executors.kubernetes.config import KubeOptions
from odin.controller.executors.kubernetes.failures import PodState, condition, condition_true
from odin.controller.executors.kubernetes.manifests import BuildContext
from odin.controller.vocabulary import Failure, TaskStatus
from odin.schema.model import TaskSpec

KUBEFLOW_REPLICA_TYPE = "training.kubeflow.org/replica-type"
KUBEFLOW_REPLICA_INDEX = "training.kubeflow.org/replica-index"
JOBSET_REPLICATED_JOB = "jobset.sigs.k8s.io/replicatedjob-name"
JOBSET_JOB_INDEX = "jobset.sigs.k8s.io/job-index"
PRIMARY_REPLICAS = ("master-0", "chief-0", "launcher-0", "node-0", "worker-0", "main")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an attempt's objects say. `status` None: nothing to report yet (still pending)."""

    status: TaskStatus | None = None
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    failure: Failure | None = None
    recheck_at: float | None = None  # look again then (a deadline), even if nothing changes
    delete: bool = False  # the attempt failed while its object lives on (stuck): delete it


@dataclass(frozen=True, slots=True)
class AttemptView:
    """What the executor knows about one attempt's objects, for `evaluate`."""

    name: str
    namespace: str
    obj: Json | None  # the top-level object as last seen (the pod, for Pods); None if not seen or deleted
    deleted: bool  # the top-level object was seen, and then deleted
    pods: Sequence[PodState]
    now: float
    created_at: float  # when this executor created (or adopted) the object, epoch seconds
    options: KubeOptions
    killed: bool = False
    disruption: str | None = None  # for Pods: the last disruption seen (NodeLost, Preempted...) before deletion


@dataclass(frozen=True, slots=True)
class TopStatus:
    """The top-level object's own view, from its status/conditions."""

    phase: str  # pending | running | succeeded | failed
    reason: str | None = None
    message: str | None = None
    failure: Failure | None = None
    acknowledged: bool = True  # a controller has written status (False: nobody has looked at it yet)


class ResourceHandler(abc.ABC):
    """One Kubernetes kind that runs a task. Subclasses set the class attributes and implement `build`."""

    resource_type: ClassVar[str]  # the pipeline's `resource_type` value
    kind: ClassVar[Kind]
    multi_worker: ClassVar[bool] = False  # may `num_workers` exceed 1?
    propagation: ClassVar[str] = "Foreground"  # delete dependents first, so a retry never overlaps old pods
    max_name_length: ClassVar[int] = 63
    # Pods that do not carry Odin's labels (their template is not ours): the label that names the owning object.
    foreign_pod_label: ClassVar[str | None] = None
    extra_labels: ClassVar[Mapping[str, str]] = {}
    moves_artifacts: ClassVar[bool] = True  # its pods can carry the artifact steps (`transfer.py`)

    def validate(self, spec: TaskSpec, options: KubeOptions) -> str | None:
        """A reason this task cannot run as this kind (a PERMANENT failure), or None."""
        if spec.num_workers > 1 and not self.multi_worker:
            return (
                f"num_workers: {spec.num_workers} needs a distributed resource_type; a {self.resource_type} runs one "
                "worker"
            )
        if not spec.image:
            return "the task has no image"
        return None

    @abc.abstractmethod
    def build(self, ctx: BuildContext) -> Json:
        """The complete manifest (apiVersion, kind, metadata, spec) of one attempt."""

    # -- status -------------------------------------------------------------------------------------------------
    def top_status(self, obj: Json) -> TopStatus:
        """The object's own status. Default: training-operator conditions (Succeeded/Failed/Running)."""
        return kubeflow_status(obj)

    def evaluate(self, view: AttemptView) -> Verdict:
        stuck = next((p for p in view.pods if p.stuck), None)
        if stuck is not None:
            return Verdict(TaskStatus.FAILED, stuck.reason, f"pod {stuck.name}: {stuck.message}",
                           failure=stuck.failure or Failure.PERMANENT, delete=True)  # fmt: skip
        if view.obj is None:
            if view.deleted:
                what = "deleted by Odin" if view.killed else "deleted outside Odin"
                return Verdict(TaskStatus.FAILED, "Killed" if view.killed else "Deleted",
                               f"the {self.kind.kind} was {what}", failure=Failure.INFRA)  # fmt: skip
            return Verdict()
        top = self.top_status(view.obj)
        if top.phase == "succeeded":
            return Verdict(TaskStatus.SUCCEEDED, top.reason or "Succeeded", top.message, exit_code=0)
        if top.phase == "failed":
            return self._failed(top, view.pods)
        if top.phase == "running" or any(p.running for p in view.pods):
            return Verdict(TaskStatus.RUNNING, recheck_at=_earliest(view.pods))
        deadline = view.options.operator_deadline
        if not top.acknowledged and deadline > 0:
            due = view.created_at + deadline
            if view.now >= due:
                return Verdict(
                    TaskStatus.FAILED, "NoController",
                    f"no controller reported on the {self.kind.kind} within {deadline:.0f}s: is its operator "
                    f"installed and running in the cluster?",
                    failure=Failure.PERMANENT, delete=True,
                )  # fmt: skip
            return Verdict(recheck_at=min(due, _earliest(view.pods) or due))
        return Verdict(recheck_at=_earliest(view.pods))

    def _failed(self, top: TopStatus, pods: Sequence[PodState]) -> Verdict:
        """A failed object: its pods tell why. A disruption anywhere wins (one lost node fails every worker of a
        distributed job), then a permanent failure, then the task's own error."""
        failed = [p for p in pods if p.failed]
        for kind in (Failure.INFRA, Failure.PERMANENT, Failure.USER):
            culprit = next((p for p in failed if p.failure == kind), None)
            if culprit is not None:
                message = f"{top.message + '; ' if top.message else ''}pod {culprit.name}: {culprit.message}"
                return Verdict(TaskStatus.FAILED, culprit.reason, message, exit_code=culprit.exit_code,
                               failure=top.failure or kind)  # fmt: skip
        return Verdict(TaskStatus.FAILED, top.reason or "Failed", top.message, failure=top.failure or Failure.USER)

    # -- pods ---------------------------------------------------------------------------------------------------
    def owner_of(self, pod: Json) -> str | None:
        """For pods without Odin's labels: the name of the object they belong to."""
        if self.foreign_pod_label is None:
            return None
        value = ((pod.get("metadata") or {}).get("labels") or {}).get(self.foreign_pod_label)
        return str(value) if value else None

    def pod_selector(self, name: str) -> str | None:
        """A label selector for this object's pods when Odin's own labels are not on them."""
        return f"{self.foreign_pod_label}={name}" if self.foreign_pod_label else None

    def replica(self, pod: Json) -> str:
        """A short, stable name for a pod within its attempt ("master-0", "worker-1"); logs are addressed by it."""
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if KUBEFLOW_REPLICA_TYPE in labels:
            return f"{labels[KUBEFLOW_REPLICA_TYPE]}-{labels.get(KUBEFLOW_REPLICA_INDEX, '0')}"
        if JOBSET_REPLICATED_JOB in labels:
            return f"{labels[JOBSET_REPLICATED_JOB]}-{labels.get(JOBSET_JOB_INDEX, '0')}"
        return str((pod.get("metadata") or {}).get("name") or "")

    def primary(self, pods: Sequence[Json]) -> Json | None:
        """The pod whose log is the task's log by default."""
        by_replica = {self.replica(p): p for p in pods}
        for name in PRIMARY_REPLICAS:
            if name in by_replica:
                return by_replica[name]
        return sorted(pods, key=_created)[-1] if pods else None


def _created(pod: Json) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), str(meta.get("name") or "")


def _earliest(pods: Sequence[PodState]) -> float | None:
    times = [p.recheck_at for p in pods if p.recheck_at is not None]
    return min(times) if times else None


def kubeflow_status(obj: Json) -> TopStatus:
    """Training-operator `JobCondition`s: Succeeded and Failed are final, Running/Restarting mean running."""
    if condition_true(obj, "Succeeded"):
        cond = condition(obj, "Succeeded") or {}
        return TopStatus("succeeded", str(cond.get("reason") or "Succeeded"), cond.get("message"))
    if condition_true(obj, "Failed"):
        cond = condition(obj, "Failed") or {}
        return TopStatus("failed", str(cond.get("reason") or "Failed"), cond.get("message"))
    if condition_true(obj, "Running") or condition_true(obj, "Restarting"):
        return TopStatus("running")
    status = obj.get("status") or {}
    return TopStatus("pending", acknowledged=bool(status.get("conditions") or status.get("startTime")))
