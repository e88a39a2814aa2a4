"""A resource-handler plugin, as a user would write one: KubeRay's RayJob, in one small subclass.

Installed for a test through a real entry point (a `*.dist-info` directory on `sys.path`), exactly as a plugin
distribution would be; see docs/kubernetes.md, "Adding a resource type".
"""

from __future__ import annotations

import shlex

from odin.controller.executors.kubernetes import BuildContext, ResourceHandler, TopStatus
from odin.controller.executors.kubernetes.api import Kind
from odin.controller.executors.kubernetes.manifests import pod_template

Json = dict[str, object]


class RayJobHandler(ResourceHandler):
    resource_type = "RayJob"
    kind = Kind("ray.io", "v1", "rayjobs", "RayJob")
    multi_worker = True

    def build(self, ctx: BuildContext) -> dict[str, object]:
        head = pod_template(ctx, "ray-head", command=False)
        worker = pod_template(ctx, "ray-worker", command=False)
        return {
            "apiVersion": "ray.io/v1",
            "kind": "RayJob",
            "metadata": ctx.metadata(),
            "spec": {
                "entrypoint": shlex.join([*ctx.launch.command, *ctx.launch.args]),
                "shutdownAfterJobFinishes": True,
                "rayClusterSpec": {
                    "headGroupSpec": {"rayStartParams": {}, "template": head},
                    "workerGroupSpecs": [
                        {
                            "groupName": "workers",
                            "replicas": ctx.spec.num_workers,
                            "rayStartParams": {},
                            "template": worker,
                        }
                    ],
                },
            },
        }

    def top_status(self, obj: dict[str, object]) -> TopStatus:
        status = obj.get("status") or {}
        assert isinstance(status, dict)
        job = status.get("jobStatus")
        if job == "SUCCEEDED":
            return TopStatus("succeeded", "Succeeded", status.get("message"))  # type: ignore[arg-type]
        if job in ("FAILED", "STOPPED"):
            return TopStatus("failed", "RayJobFailed", status.get("message"))  # type: ignore[arg-type]
        if job == "RUNNING":
            return TopStatus("running")
        return TopStatus("pending")
