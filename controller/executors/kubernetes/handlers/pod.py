"""`resource_type: Pod` (the default): one pod per attempt, the simplest thing that runs a container.

Odin, not Kubernetes, retries a failed pod (`restartPolicy: Never`): each attempt is its own pod, named
`<run>-<task>-<attempt>`, so the logs and status of every attempt stay inspectable until the TTL clean-up.
"""

from __future__ import annotations

from odin.controller.executors.kubernetes.api import PODS, Json
from odin.controller.executors.kubernetes.handlers.base import AttemptView, ResourceHandler, Verdict
from odin.controller.executors.kubernetes.manifests import BuildContext, pod_spec
from odin.controller.vocabulary import Failure, TaskStatus


class PodHandler(ResourceHandler):
    resource_type = "Pod"
    kind = PODS
    propagation = "Background"  # a pod has no dependents

    def build(self, ctx: BuildContext) -> Json:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": ctx.metadata(), "spec": pod_spec(ctx)}

    def evaluate(self, view: AttemptView) -> Verdict:
        pod = view.pods[0] if view.pods else None
        if pod is None or view.obj is None:
            if view.deleted:
                if view.killed:
                    return Verdict(TaskStatus.FAILED, "Killed", "the pod was deleted by Odin", failure=Failure.INFRA)
                reason = view.disruption or "Deleted"
                return Verdict(TaskStatus.FAILED, reason, f"the pod was deleted before it finished ({reason})",
                               failure=Failure.INFRA)  # fmt: skip
            return Verdict()
        if pod.succeeded:
            return Verdict(TaskStatus.SUCCEEDED, "Completed", exit_code=0)
        if pod.failed:
            return Verdict(TaskStatus.FAILED, pod.reason, pod.message, exit_code=pod.exit_code,
                           failure=pod.failure or Failure.USER, delete=pod.stuck)  # fmt: skip
        if pod.running:
            return Verdict(TaskStatus.RUNNING, recheck_at=pod.recheck_at)
        return Verdict(recheck_at=pod.recheck_at)
