"""Midgard agents found through their Service's EndpointSlices, and the Odin labels of the pods using a GPU.

Why EndpointSlices and not a DNS lookup of the headless Service: a slice names the node of every endpoint
(`nodeName`) and says whether it is ready, so the API can list a node whose agent is starting or failing as such
instead of silently missing it, and it needs one `list` (RBAC: `list endpointslices` in Midgard's namespace).
Not-ready endpoints are kept (`ready=False`): the aggregation shows them as unreachable with their last reading,
which is what an operator wants to see while a DaemonSet pod restarts.

Why pod labels: on Kubernetes the agent knows which pod a GPU process belongs to (kubelet pod-resources or cgroup)
but not which Odin run; every object Odin creates carries `odin.dev/run`, `odin.dev/task` and `odin.dev/commit`
(names.py), so one `get pod` (cached) ties the GPU to its run. Both calls are blocking, like the rest of this
adapter; callers on an event loop run them in a worker thread.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from odin.controller.executors.kubernetes import names
from odin.controller.executors.kubernetes.api import PODS, ApiRetry, Json, Kind, KubeApi
from odin.controller.executors.kubernetes.errors import KubeApiError, NotFound
from odin.controller.settings import Settings

log = logging.getLogger(__name__)

ENDPOINTSLICES = Kind("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# Discovery answers within the API request that asked: retry briefly, then keep the last list.
DISCOVERY_RETRY = ApiRetry(deadline=3.0)


@dataclass(frozen=True, slots=True)
class AgentEndpoint:
    """One agent as the Service sees it: its URL, its node (when the slice names it) and readiness."""

    url: str
    node: str | None = None
    ready: bool = True


@dataclass(frozen=True, slots=True)
class PodProvenance:
    """The Odin labels of one pod (None where the pod is not Odin's)."""

    run: str | None
    task: str | None
    commit: str | None
    attempt: int | None
    pipeline: str | None


def endpoints_of(slices: list[Json], *, port_name: str, scheme: str = "http") -> list[AgentEndpoint]:
    """Every endpoint address of `slices` as an agent URL (a pure function, tested without a cluster).

    The port is the one named `port_name`, else the slice's only port; a slice with neither is skipped (logged).
    Endpoints that are `terminating` are left out; one address per endpoint (the first, as kube-proxy does)."""
    found: dict[str, AgentEndpoint] = {}
    for item in slices:
        ports = item.get("ports") or []
        port = next((p.get("port") for p in ports if p.get("name") == port_name), None)
        if port is None and len(ports) == 1:
            port = ports[0].get("port")
        if port is None:
            meta = item.get("metadata") or {}
            log.warning("EndpointSlice %s has no port named %r; its agents are ignored", meta.get("name"), port_name)
            continue
        ipv6 = item.get("addressType") == "IPv6"
        for endpoint in item.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            if conditions.get("terminating") is True:
                continue
            addresses = endpoint.get("addresses") or []
            if not addresses:
                continue
            host = f"[{addresses[0]}]" if ipv6 else addresses[0]
            url = f"{scheme}://{host}:{port}"
            # `ready: null` means ready (the API's documented default for unknown readiness).
            found[url] = AgentEndpoint(url, endpoint.get("nodeName"), conditions.get("ready") is not False)
    return sorted(found.values(), key=lambda e: (e.node or "", e.url))


def provenance_of(pod: Json) -> PodProvenance:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    attempt = labels.get(names.LABEL_ATTEMPT)
    return PodProvenance(
        run=labels.get(names.LABEL_RUN),
        task=labels.get(names.LABEL_TASK),
        commit=labels.get(names.LABEL_COMMIT),
        attempt=int(attempt) if isinstance(attempt, str) and attempt.isdigit() else None,
        pipeline=labels.get(names.LABEL_PIPELINE),
    )


class MidgardDiscovery:
    """Lists the agents of one Service, and reads pod labels, over one Kubernetes client."""

    def __init__(
        self,
        api: KubeApi,
        *,
        namespace: str,
        service: str,
        port_name: str = "http",
        scheme: str = "http",
        pod_ttl: float = 60.0,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.service = service
        self.port_name = port_name
        self.scheme = scheme
        self.pod_ttl = pod_ttl
        self._pods: dict[tuple[str, str], tuple[float, PodProvenance | None]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> MidgardDiscovery:
        from odin.controller.executors.kubernetes.config import load_client

        if not settings.midgard_service:
            raise ValueError("ODIN_MIDGARD_SERVICE is not set")
        api_client, implied = load_client(settings)
        namespace = settings.midgard_namespace or settings.kube_namespace or implied or "default"
        return cls(
            KubeApi(api_client, retry=DISCOVERY_RETRY),
            namespace=namespace,
            service=settings.midgard_service,
            port_name=settings.midgard_port_name,
            scheme=settings.midgard_scheme,
        )

    def agents(self) -> list[AgentEndpoint]:
        """The agents behind the Service now; raises `KubeApiError` when the API cannot be reached."""
        slices, _ = self.api.list_objects(
            ENDPOINTSLICES, self.namespace, label_selector=f"{SERVICE_NAME_LABEL}={self.service}"
        )
        return endpoints_of(slices, port_name=self.port_name, scheme=self.scheme)

    def pod(self, namespace: str, name: str) -> PodProvenance | None:
        """The Odin labels of a pod (cached `pod_ttl` seconds; a pod's labels never change); None if it is gone or
        cannot be read (the GPU is then shown with its pod only)."""
        key = (namespace, name)
        now = time.monotonic()
        with self._lock:
            cached = self._pods.get(key)
            if cached is not None and now - cached[0] < self.pod_ttl:
                return cached[1]
        try:
            provenance: PodProvenance | None = provenance_of(self.api.get(PODS, namespace, name))
        except NotFound:
            provenance = None
        except KubeApiError as e:
            log.warning("cannot read pod %s/%s for GPU attribution: %s", namespace, name, e)
            return None
        with self._lock:
            if len(self._pods) > 10_000:
                self._pods.clear()
            self._pods[key] = (now, provenance)
        return provenance

    def close(self) -> None:
        self.api.api_client.close()  # type: ignore[no-untyped-call]
