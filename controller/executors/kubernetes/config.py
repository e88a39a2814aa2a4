"""Connecting to the cluster, and the executor's options, from `Settings` (`ODIN_KUBE_*`).

The client is configured from, in order: `ODIN_KUBE_IN_CLUSTER=true` (the pod's ServiceAccount), a kubeconfig
(`ODIN_KUBE_CONFIG`, else `$KUBECONFIG`/`~/.kube/config`) with `ODIN_KUBE_CONTEXT`, or -- when neither is said and
Odin runs in a pod -- the in-cluster config.

urllib3's own status retries are switched off (`Retry(status=0, respect_retry_after_header=False)`): it would retry
429/503 for GET/PUT/DELETE only, sleeping inside the client, while POST/PATCH surface the raw 429. `api.KubeApi.call`
retries every verb the same way instead. Connection failures before a request is sent are still retried by urllib3
(nothing was sent, so it is safe for every verb).
"""

from __future__ import annotations

import copy
import fnmatch
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kubernetes.client
import kubernetes.config
from urllib3.util.retry import Retry

from odin.controller.artifacts.settings import ArtifactSettings, current_settings
from odin.controller.executors.kubernetes.failures import Deadlines

if TYPE_CHECKING:
    from odin.controller.settings import Settings

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
DEFAULT_GPU_TOLERATIONS: tuple[Mapping[str, Any], ...] = (
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
)


@dataclass(frozen=True, slots=True)
class KubeOptions:
    """What the Kubernetes executor does, beyond what a pipeline says. Every field is an `ODIN_KUBE_*` setting."""

    data_dir: Path
    namespace: str = "default"
    pipeline_namespaces: Mapping[str, str] = field(default_factory=dict)  # pipeline glob -> namespace
    instance: str = "default"
    service_account: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    gpu_tolerations: tuple[Mapping[str, Any], ...] = DEFAULT_GPU_TOLERATIONS
    scheduler_name: str | None = None
    cleanup_ttl: float | None = 3600.0
    data_claim: str | None = None
    deadlines: Deadlines = field(default_factory=Deadlines)
    operator_deadline: float = 300.0
    api_retry_deadline: float = 120.0
    workers: int = 8
    qps: float = 50.0  # client-side request rate, sustained (ratelimit.py); 0: unlimited
    burst: int = 100  # requests allowed at once above it
    watch_timeout: int = 300
    work_max_bytes: int = 8 * 1024 * 1024
    elastic_rdzv_endpoint: str = "etcd-service:2379"
    trainjob_runtime: str = "torch-distributed"
    repo_url: str | None = None
    sweep_interval: float = 300.0
    artifacts: ArtifactSettings | None = None  # an S3 store pods reach: outputs, inputs and large work trees move
    odin_image: str = "ghcr.io/odin-ml/odin:latest"
    artifacts_secret: str | None = None
    gpu_admission: bool = True  # refuse runs whose GPU tasks no node can ever hold (nodes.py)
    node_cache_ttl: float = 30.0  # seconds the Node list is reused by admission
    node_read_timeout: float = 3.0  # seconds run creation may wait for the Node list; then it admits

    def namespace_for(self, pipeline: str, run_namespace: str | None) -> str:
        """The namespace of a run's objects: the first `pipeline_namespaces` glob matching the pipeline path, else
        the repository's namespace, else the default."""
        for pattern, namespace in self.pipeline_namespaces.items():
            if fnmatch.fnmatchcase(pipeline, pattern):
                return namespace
        return run_namespace or self.namespace


def tune(configuration: kubernetes.client.Configuration, *, pool_size: int) -> kubernetes.client.Configuration:
    """Odin's connection settings on a client configuration (a copy; the given one is left alone)."""
    tuned = copy.deepcopy(configuration)
    tuned.retries = Retry(
        total=5, connect=3, read=0, redirect=0, status=0, other=0, backoff_factor=0.2,
        respect_retry_after_header=False, raise_on_status=False,
    )  # fmt: skip
    tuned.connection_pool_maxsize = pool_size
    return tuned


def clone_client(api_client: kubernetes.client.ApiClient, *, pool_size: int) -> kubernetes.client.ApiClient:
    """A client of our own on the same cluster and credentials, with Odin's retry and pool settings."""
    return kubernetes.client.ApiClient(tune(api_client.configuration, pool_size=pool_size))


def in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and SERVICE_ACCOUNT_NAMESPACE.exists()


def load_client(settings: Settings) -> tuple[kubernetes.client.ApiClient, str | None]:
    """A client for the configured cluster, and the namespace that configuration implies (if any)."""
    configuration = kubernetes.client.Configuration()
    use_cluster = settings.kube_in_cluster
    if use_cluster is None:
        use_cluster = settings.kube_config is None and in_cluster()
    if use_cluster:
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() if SERVICE_ACCOUNT_NAMESPACE.exists() else None
    else:
        config_file = str(settings.kube_config) if settings.kube_config else None
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=config_file, context=settings.kube_context, client_configuration=configuration
        )
        namespace = _context_namespace(config_file, settings.kube_context)
    return kubernetes.client.ApiClient(configuration), namespace


def _context_namespace(config_file: str | None, context: str | None) -> str | None:
    try:
        contexts, active = kubernetes.config.list_kube_config_contexts(config_file)  # type: ignore[no-untyped-call]
    except Exception:
        return None
    chosen = next((c for c in contexts or [] if c.get("name") == context), None) if context else active
    namespace = ((chosen or {}).get("context") or {}).get("namespace")
    return str(namespace) if namespace else None


def options_from_settings(settings: Settings, *, implied_namespace: str | None) -> KubeOptions:
    from odin.controller.git.urls import redact_url

    return KubeOptions(
        data_dir=settings.data_dir,
        namespace=settings.kube_namespace or implied_namespace or "default",
        pipeline_namespaces=dict(settings.kube_pipeline_namespaces),
        instance=settings.kube_instance,
        service_account=settings.kube_service_account,
        image_pull_secrets=tuple(settings.kube_image_pull_secrets),
        gpu_tolerations=tuple(settings.kube_gpu_tolerations),
        scheduler_name=settings.kube_scheduler_name,
        cleanup_ttl=settings.kube_cleanup_ttl,
        data_claim=settings.kube_data_claim,
        deadlines=Deadlines(
            image_pull_grace=settings.kube_image_pull_grace,
            missing_volume=settings.kube_missing_volume_deadline,
            unschedulable=settings.kube_unschedulable_deadline,
        ),
        operator_deadline=settings.kube_operator_deadline,
        api_retry_deadline=settings.kube_api_retry_deadline,
        workers=settings.kube_workers,
        qps=settings.kube_qps,
        burst=settings.kube_burst,
        watch_timeout=settings.kube_watch_timeout,
        work_max_bytes=settings.kube_work_max_bytes,
        elastic_rdzv_endpoint=settings.kube_elastic_rdzv_endpoint,
        trainjob_runtime=settings.kube_trainjob_runtime,
        repo_url=redact_url(settings.repo) if settings.repo else None,
        sweep_interval=settings.kube_sweep_interval,
        artifacts=_pod_store(),
        odin_image=settings.kube_odin_image,
        artifacts_secret=settings.kube_artifacts_secret,
        gpu_admission=settings.kube_gpu_admission,
    )


def _pod_store() -> ArtifactSettings | None:
    """The artifact store when pods can reach it (S3-compatible); a local directory is the controller's alone."""
    artifacts = current_settings()
    return artifacts if artifacts.backend == "s3" else None
