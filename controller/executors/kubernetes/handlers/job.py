"""`resource_type: Job`: a batch/v1 Job, for clusters whose policies (quotas, Kueue, audit) expect Jobs.

Retries happen inside the cluster: `backoffLimit` is the task's `retries` and `activeDeadlineSeconds` its `timeout`,
and a Job that exhausts them is reported as one failed attempt with failure PERMANENT (its retries are spent; the
engine must not multiply them). A `podFailurePolicy` keeps Odin's failure kinds inside the Job too: disrupted pods
(evicted, preempted, node lost) are replaced without counting against `backoffLimit` (INFRA), and exit codes 126/127
(the command does not exist) fail the Job at once (PERMANENT).
"""

from __future__ import annotations

import math

from odin.controller.executors.kubernetes.api import JOBS, Json
from odin.controller.executors.kubernetes.failures import condition, condition_true
from odin.controller.executors.kubernetes.handlers.base import ResourceHandler, TopStatus
from odin.controller.executors.kubernetes.manifests import BuildContext, pod_template
from odin.controller.vocabulary import Failure

CONTAINER = "main"


class JobHandler(ResourceHandler):
    resource_type = "Job"
    kind = JOBS

    def build(self, ctx: BuildContext) -> Json:
        spec = ctx.spec
        job_spec: Json = {
            "backoffLimit": spec.retries,
            "template": pod_template(ctx, CONTAINER),
            "podFailurePolicy": {
                "rules": [
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [126, 127]},
                    },
                ]
            },
        }
        if spec.timeout:
            job_spec["activeDeadlineSeconds"] = max(1, math.ceil(spec.timeout))
        return {"apiVersion": "batch/v1", "kind": "Job", "metadata": ctx.metadata(), "spec": job_spec}

    def top_status(self, obj: Json) -> TopStatus:
        status = obj.get("status") or {}
        if condition_true(obj, "Complete"):
            return TopStatus("succeeded", "Completed")
        for cond_type in ("Failed", "FailureTarget"):
            if condition_true(obj, cond_type):
                cond = condition(obj, cond_type) or {}
                reason = str(cond.get("reason") or "Failed")
                message = str(cond.get("message") or reason)
                if reason == "BackoffLimitExceeded":
                    retries = (obj.get("spec") or {}).get("backoffLimit", 0)
                    message = f"{message} ({status.get('failed', 0)} pod(s) failed; retries: {retries}, in-cluster)"
                    return TopStatus("failed", reason, message, Failure.PERMANENT)
                if reason == "PodFailurePolicy":
                    return TopStatus("failed", reason, message, Failure.PERMANENT)
                return TopStatus("failed", reason, message, Failure.USER)
        if condition_true(obj, "Suspended"):
            return TopStatus("pending")  # queued (Kueue admits a Job by unsuspending it)
        return TopStatus("running" if status.get("ready") else "pending")
