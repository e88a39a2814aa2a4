"""Which pod holds which GPU, from the kubelet's pod-resources API -- the mechanism DCGM-exporter uses.

The kubelet serves `v1.PodResourcesLister` over gRPC on a unix socket (`/var/lib/kubelet/pod-resources/kubelet.sock`,
mounted into the agent's pod read-only; see deploy/midgard). `List` returns every pod on the node with, per container,
the device IDs each device plugin assigned it; NVIDIA's plugin uses GPU UUIDs (and MIG device UUIDs), the same IDs
NVML reports. So a GPU is tied to its pod even before (or without) a process on it, and without hostPID.

The stubs in `podresources_v1/` are generated from a subset of the upstream api.proto (see its header); the method is
called by name with those messages, so no generated gRPC service stub (and its grpcio version pin) is needed. grpcio
and protobuf are the `midgard` extra: the agent runs without them and attributes through cgroups instead.
"""

from __future__ import annotations

from typing import Any

import grpc

from .podresources_v1 import kubelet_podresources_v1_pb2 as pb
from .report import Attribution

LIST_METHOD = "/v1.PodResourcesLister/List"


class PodResources:
    """A client of one kubelet's pod-resources socket; `allocations()` is one `List` call."""

    def __init__(self, socket_path: str, timeout: float = 2.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._channel = grpc.insecure_channel(f"unix://{socket_path}")
        self._list: Any = self._channel.unary_unary(
            LIST_METHOD,
            request_serializer=pb.ListPodResourcesRequest.SerializeToString,
            response_deserializer=pb.ListPodResourcesResponse.FromString,
        )

    def close(self) -> None:
        self._channel.close()

    def allocations(self) -> dict[str, list[Attribution]]:
        """Device ID -> the pod containers it is assigned to. Raises `grpc.RpcError` if the kubelet does not answer."""
        response: pb.ListPodResourcesResponse = self._list(pb.ListPodResourcesRequest(), timeout=self.timeout)
        return allocations_from(response)


def allocations_from(response: pb.ListPodResourcesResponse) -> dict[str, list[Attribution]]:
    out: dict[str, list[Attribution]] = {}
    for pod in response.pod_resources:
        for container in pod.containers:
            for devices in container.devices:
                for device_id in devices.device_ids:
                    out.setdefault(device_id, []).append(
                        Attribution(
                            source="pod-resources",
                            pod_namespace=pod.namespace or None,
                            pod_name=pod.name or None,
                            container=container.name or None,
                        )
                    )
    return out
