"""`resource_type: ElasticJob`: TorchElastic's controller (elastic.pytorch.org/v1alpha1), kept for parity with users
still running it; new work should prefer a PyTorchJob with `elastic` (or a TrainJob).

Generates `Worker` replicas (`num_workers`, container `elasticjob-worker`, `restartPolicy: ExitCode`: exit codes
above 128 -- killed by a signal -- restart the worker, others end it) with `minReplicas`/`maxReplicas` from `elastic`
and the etcd rendezvous endpoint of `ODIN_KUBE_ELASTIC_RDZV_ENDPOINT`. Status uses the same JobConditions as the
Kubeflow operators.
"""

from __future__ import annotations

import math

from odin.controller.executors.kubernetes.api import Json, Kind
from odin.controller.executors.kubernetes.handlers.base import ResourceHandler
from odin.controller.executors.kubernetes.manifests import BuildContext, pod_template


class ElasticJobHandler(ResourceHandler):
    resource_type = "ElasticJob"
    kind = Kind("elastic.pytorch.org", "v1alpha1", "elasticjobs", "ElasticJob")
    multi_worker = True
    max_name_length = 50

    def build(self, ctx: BuildContext) -> Json:
        elastic = ctx.spec.elastic or {}
        workers = ctx.spec.num_workers
        spec: Json = {
            "rdzvEndpoint": ctx.options.elastic_rdzv_endpoint,
            "minReplicas": int(elastic.get("min_replicas") or 1),
            "maxReplicas": int(elastic.get("max_replicas") or workers),
            "cleanPodPolicy": "None",
            "replicaSpecs": {
                "Worker": {
                    "replicas": workers,
                    "restartPolicy": "ExitCode",
                    "template": pod_template(ctx, "elasticjob-worker", upload="-worker-0"),
                }
            },
        }
        if elastic.get("max_restarts") is not None:
            spec["backoffLimit"] = int(elastic["max_restarts"])
        if ctx.spec.timeout:
            spec["activeDeadlineSeconds"] = max(1, math.ceil(ctx.spec.timeout))
        return {"apiVersion": self.kind.api_version, "kind": "ElasticJob", "metadata": ctx.metadata(), "spec": spec}
