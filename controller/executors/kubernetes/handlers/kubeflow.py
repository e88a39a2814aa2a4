"""Kubeflow training-operator kinds (kubeflow.org/v1): `PyTorchJob`, `TFJob`, `MPIJob`.

What each generates (every replica runs the task's image, env, volumes and `num_gpus` GPUs unless said otherwise):

* PyTorchJob: `Master` (1) + `Worker` (`num_workers`), container `pytorch`, as the issue and the original Odin
  define it, so existing pipelines keep their shape: `num_workers: 3, num_gpus: 8` is 4 pods and 32 GPUs, and
  torchrun's `--nnodes` (WORLD_SIZE in nodes) is `num_workers + 1`. With `elastic`, an `elasticPolicy` (min/max
  replicas, max restarts, rendezvous backend) and `Worker` replicas only (`num_workers`), `restartPolicy: OnFailure`
  (elastic training restarts workers in place).
* TFJob: `Worker` (`num_workers`), container `tensorflow`; worker 0 acts as chief (MultiWorkerMirroredStrategy).
* MPIJob: `Launcher` (1, no GPU) runs the task's command (`mpirun ...`); `Worker` (`num_workers`) run the image's
  entrypoint; `slotsPerWorker` = `num_gpus` (at least 1).

`runPolicy`: `cleanPodPolicy: None` (Odin saves the pods' logs, then deletes everything after the TTL),
`activeDeadlineSeconds` from `timeout`, `backoffLimit: 0` (Odin retries whole attempts: a distributed job restarted
pod by pod rarely recovers). Failures are classified from the pods (see `base.ResourceHandler._failed`).
"""

from __future__ import annotations

import math

from odin.controller.executors.kubernetes.api import Json, Kind
from odin.controller.executors.kubernetes.handlers.base import ResourceHandler
from odin.controller.executors.kubernetes.manifests import BuildContext, pod_template

GROUP, VERSION = "kubeflow.org", "v1"


def run_policy(ctx: BuildContext) -> Json:
    policy: Json = {"cleanPodPolicy": "None", "backoffLimit": 0}
    if ctx.spec.timeout:
        policy["activeDeadlineSeconds"] = max(1, math.ceil(ctx.spec.timeout))
    return policy


FIRST_WORKER = "-worker-0"  # the pod of a replica type's index 0: rank 0 where there is no Master or Launcher


def replica(
    ctx: BuildContext,
    container: str,
    replicas: int,
    *,
    restart: str = "Never",
    upload: str | None = None,
    **kwargs: bool,
) -> Json:
    """A replica spec; `upload` says whether its pods store the task's outputs (see `transfer.apply`): only one
    replica of a distributed task does, the rest of them leave no upload container."""
    template = pod_template(ctx, container, upload=upload, **kwargs)
    return {"replicas": replicas, "restartPolicy": restart, "template": template}


class KubeflowHandler(ResourceHandler):
    """Common ground of the training-operator kinds: status from their JobConditions, replicas from labels."""

    multi_worker = True
    # <job>-<replica-type>-<index> must stay a DNS-1035 label (the operator names Services after pods).
    max_name_length = 50

    def manifest(self, ctx: BuildContext, spec: Json) -> Json:
        return {"apiVersion": f"{GROUP}/{VERSION}", "kind": self.kind.kind, "metadata": ctx.metadata(), "spec": spec}


class PyTorchJobHandler(KubeflowHandler):
    resource_type = "PyTorchJob"
    kind = Kind(GROUP, VERSION, "pytorchjobs", "PyTorchJob")

    def build(self, ctx: BuildContext) -> Json:
        workers = ctx.spec.num_workers
        elastic = ctx.spec.elastic
        spec: Json = {"runPolicy": run_policy(ctx)}
        if elastic:
            policy: Json = {
                "minReplicas": int(elastic.get("min_replicas") or 1),
                "maxReplicas": int(elastic.get("max_replicas") or workers),
            }
            if elastic.get("max_restarts") is not None:
                policy["maxRestarts"] = int(elastic["max_restarts"])
            policy["rdzvBackend"] = str(elastic.get("rdzv_backend") or "c10d")
            spec["elasticPolicy"] = policy
            spec["pytorchReplicaSpecs"] = {
                "Worker": replica(ctx, "pytorch", workers, restart="OnFailure", upload=FIRST_WORKER)
            }
        else:
            spec["pytorchReplicaSpecs"] = {
                "Master": replica(ctx, "pytorch", 1, upload=""),
                "Worker": replica(ctx, "pytorch", workers),
            }
        return self.manifest(ctx, spec)


class TFJobHandler(KubeflowHandler):
    resource_type = "TFJob"
    kind = Kind(GROUP, VERSION, "tfjobs", "TFJob")

    def build(self, ctx: BuildContext) -> Json:
        spec: Json = {
            "runPolicy": run_policy(ctx),
            "tfReplicaSpecs": {"Worker": replica(ctx, "tensorflow", ctx.spec.num_workers, upload=FIRST_WORKER)},
        }
        return self.manifest(ctx, spec)


class MPIJobHandler(KubeflowHandler):
    resource_type = "MPIJob"
    kind = Kind(GROUP, VERSION, "mpijobs", "MPIJob")

    def build(self, ctx: BuildContext) -> Json:
        spec: Json = {
            "runPolicy": run_policy(ctx),
            "slotsPerWorker": max(1, ctx.spec.num_gpus),
            "mpiReplicaSpecs": {
                "Launcher": replica(ctx, "mpi", 1, gpus=False, upload=""),
                "Worker": replica(ctx, "mpi", ctx.spec.num_workers, command=False),
            },
        }
        return self.manifest(ctx, spec)
