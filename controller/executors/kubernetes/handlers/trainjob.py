"""`resource_type: TrainJob`: Kubeflow Trainer v2 (trainer.kubeflow.org/v1alpha1), the successor of the v1 operators.

A TrainJob names a training runtime (`ODIN_KUBE_TRAINJOB_RUNTIME`, a ClusterTrainingRuntime such as
`torch-distributed`) that owns the pod template; the TrainJob overrides what the task says: `trainer.image`,
`command`, `args`, `env`, `numNodes` (= `num_workers`) and `resourcesPerNode` (cpu, memory, `nvidia.com/gpu`), and,
through `podSpecOverrides` on the runtime's `node` job, Odin's volumes and mounts, node selector, tolerations and
service account.

Not expressible in v1alpha1 (and therefore ignored, with the reason in docs/kubernetes.md): image pull secrets, pull
policy and security context (set them in the runtime), and labels on the pods themselves -- Trainer puts
`spec.labels` on the JobSet and Jobs only. Its pods are therefore found by the JobSet's own label,
`jobset.sigs.k8s.io/jobset-name=<trainjob>`, which is what `foreign_pod_label` tells the executor to watch.

Status: `Complete` and `Failed` conditions are final; `Suspended` means queued; running when a pod runs.
"""

from __future__ import annotations

from odin.controller.executors.kubernetes.api import Json, Kind
from odin.controller.executors.kubernetes.failures import condition, condition_true
from odin.controller.executors.kubernetes.handlers.base import ResourceHandler, TopStatus
from odin.controller.executors.kubernetes.manifests import (
    BuildContext,
    container_resources,
    env_list,
    escape,
    tolerations,
    volumes_and_mounts,
)

NODE_JOB = "node"  # the replicated job and container name of Trainer's torch/mpi/deepspeed runtimes


class TrainJobHandler(ResourceHandler):
    resource_type = "TrainJob"
    kind = Kind("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob")
    multi_worker = True
    max_name_length = 50
    foreign_pod_label = "jobset.sigs.k8s.io/jobset-name"
    # Trainer's pod overrides cannot add containers to the runtime's pods: no upload step, so no outputs (yet).
    moves_artifacts = False

    def build(self, ctx: BuildContext) -> Json:
        spec, launch = ctx.spec, ctx.launch
        trainer: Json = {"image": spec.image or "", "numNodes": spec.num_workers}
        if launch.command:
            trainer["command"] = [escape(c) for c in launch.command]
        if launch.args:
            trainer["args"] = [escape(a) for a in launch.args]
        env = env_list(launch)
        if env:
            trainer["env"] = env
        resources = container_resources(spec)
        if resources:
            trainer["resourcesPerNode"] = resources
        volumes, mounts = volumes_and_mounts(ctx)
        override: Json = {
            "targetJobs": [{"name": NODE_JOB}],
            "containers": [{"name": NODE_JOB, "volumeMounts": mounts}],
            "volumes": volumes,
        }
        if spec.node_selector:
            override["nodeSelector"] = dict(spec.node_selector)
        tol = tolerations(spec, ctx.options)
        if tol:
            override["tolerations"] = tol
        account = spec.service_account or ctx.options.service_account
        if account:
            override["serviceAccountName"] = account
        metadata = ctx.metadata()
        body: Json = {
            "apiVersion": self.kind.api_version,
            "kind": "TrainJob",
            "metadata": metadata,
            "spec": {
                "runtimeRef": {
                    "apiGroup": "trainer.kubeflow.org",
                    "kind": "ClusterTrainingRuntime",
                    "name": ctx.options.trainjob_runtime,
                },
                "trainer": trainer,
                "labels": dict(ctx.labels),
                "annotations": dict(ctx.annotations),
                "podSpecOverrides": [override],
            },
        }
        return body

    def top_status(self, obj: Json) -> TopStatus:
        if condition_true(obj, "Complete"):
            cond = condition(obj, "Complete") or {}
            return TopStatus("succeeded", str(cond.get("reason") or "Complete"), cond.get("message"))
        if condition_true(obj, "Failed"):
            cond = condition(obj, "Failed") or {}
            return TopStatus("failed", str(cond.get("reason") or "Failed"), cond.get("message"), None)
        status = obj.get("status") or {}
        return TopStatus("pending", acknowledged=bool(status.get("conditions") or status.get("jobsStatus")))
