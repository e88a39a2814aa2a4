"""Pytest fixtures for Kubernetes tests: the in-repo fake API server by default, a real cluster on request.

Why one fixture for both: executor tests should prove behaviour against a real apiserver now and then, without a
second copy of the test.  ``kube`` yields a ``KubeEnv`` whose ``api_client`` points at a fresh ``FakeApiServer``, or,
when ``ODIN_TEST_KUBECONFIG`` names a kubeconfig, at that cluster (``kubernetes.config.new_client_from_config``).
Either way each test gets its own namespace, created through the API (and, on a real cluster, deleted afterwards),
and a ``Kubelet`` that drives pods through the API only.  ``fake`` is the server object, or ``None`` on a real
cluster: tests that need fault injection call ``kube.require_fake()``, which skips with a clear reason there.

Pods a test creates should carry ``schedulerName: kube.scheduler_name`` (``kube.pod_manifest`` does it): on a real
cluster no scheduler serves that name, so no real kubelet ever runs them and the fake kubelet's status patches stick.
The fake does not schedule at all, so the same manifest works there.

Use from a test module (``tests/kube/conftest.py`` re-exports these for the whole ``tests/kube`` package)::

    def test_something(kube: KubeEnv) -> None:
        pod = kube.core.create_namespaced_pod(kube.namespace, kube.pod_manifest("p"))
        kube.kubelet.succeed(pod)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import kubernetes.client
import kubernetes.config
import pytest
from kubernetes.client.exceptions import ApiException

from odin.testing.kube.fake_apiserver import FakeApiServer
from odin.testing.kube.kubelet import Kubelet, wait_for

KUBECONFIG_ENV = "ODIN_TEST_KUBECONFIG"
UNSERVED_SCHEDULER = "odin-test-no-scheduler"
TEST_NAMESPACE_LABEL = "odin.io/test-namespace"


@dataclass
class KubeEnv:
    """What a Kubernetes test gets: a client, its own namespace, the fake kubelet, and the fake (or ``None``)."""

    api_client: kubernetes.client.ApiClient
    namespace: str
    kubelet: Kubelet
    fake: FakeApiServer | None
    scheduler_name: str = UNSERVED_SCHEDULER

    @property
    def is_fake(self) -> bool:
        return self.fake is not None

    # The API handles are typed Any on purpose: kubernetes v37 ships type hints whose method signatures demand model
    # objects (dict bodies are accepted and coerced at runtime) and whose model fields are all Optional, so strictly
    # typed test code would be mostly ``assert x is not None``.  Product code should keep the real types.
    @property
    def core(self) -> Any:
        """``kubernetes.client.CoreV1Api``."""
        return kubernetes.client.CoreV1Api(self.api_client)

    @property
    def batch(self) -> Any:
        """``kubernetes.client.BatchV1Api``."""
        return kubernetes.client.BatchV1Api(self.api_client)

    @property
    def custom(self) -> Any:
        """``kubernetes.client.CustomObjectsApi``."""
        return kubernetes.client.CustomObjectsApi(self.api_client)

    @property
    def coordination(self) -> Any:
        """``kubernetes.client.CoordinationV1Api``."""
        return kubernetes.client.CoordinationV1Api(self.api_client)

    def require_fake(self, why: str = "needs fault injection or other fake-only hooks") -> FakeApiServer:
        """The fake server, or skip the test on a real cluster."""
        if self.fake is None:
            pytest.skip(f"{why}; not available on a real cluster ({KUBECONFIG_ENV} is set)")
        return self.fake

    def pod_manifest(
        self,
        name: str | None = None,
        *,
        containers: Sequence[str] = ("main",),
        image: str = "busybox:1.36",
        labels: Mapping[str, str] | None = None,
        restart_policy: str = "Never",
        generate_name: str | None = None,
    ) -> dict[str, Any]:
        """A minimal pod that no real scheduler will pick up."""
        metadata: dict[str, Any] = {"labels": dict(labels or {})}
        if name:
            metadata["name"] = name
        if generate_name:
            metadata["generateName"] = generate_name
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": {
                "schedulerName": self.scheduler_name,
                "restartPolicy": restart_policy,
                "containers": [{"name": c, "image": image, "command": ["true"]} for c in containers],
            },
        }

    def job_manifest(
        self,
        name: str,
        *,
        image: str = "busybox:1.36",
        backoff_limit: int = 0,
        completions: int | None = None,
        parallelism: int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """A minimal batch/v1 Job whose pods no real scheduler will pick up."""
        spec: dict[str, Any] = {
            "backoffLimit": backoff_limit,
            "template": {
                "metadata": {"labels": dict(labels or {})},
                "spec": {
                    "schedulerName": self.scheduler_name,
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": image, "command": ["true"]}],
                },
            },
        }
        if completions is not None:
            spec["completions"] = completions
        if parallelism is not None:
            spec["parallelism"] = parallelism
        return {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "labels": dict(labels or {})},
            "spec": spec,
        }


def _create_namespace(api_client: kubernetes.client.ApiClient) -> str:
    core: Any = kubernetes.client.CoreV1Api(api_client)
    namespace = core.create_namespace(
        {"metadata": {"generateName": "odin-test-", "labels": {TEST_NAMESPACE_LABEL: "true"}}}
    )
    name = str(namespace.metadata.name)
    # A real cluster's serviceaccount controller adds "default" a moment later; pods are rejected until then.
    wait_for(
        lambda: any(sa.metadata.name == "default" for sa in core.list_namespaced_service_account(name).items),
        timeout=30,
        message=f"namespace {name} never got its default ServiceAccount",
    )
    return name


@contextlib.contextmanager
def kube_environment(**fake_options: Any) -> Iterator[KubeEnv]:
    """The ``kube`` fixture's body, usable outside pytest.  ``fake_options`` go to ``FakeApiServer``."""
    kubeconfig = os.environ.get(KUBECONFIG_ENV)
    if kubeconfig:
        api_client = kubernetes.config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        try:
            namespace = _create_namespace(api_client)
            try:
                yield KubeEnv(api_client, namespace, Kubelet(api_client, namespace), None)
            finally:
                with contextlib.suppress(ApiException):
                    core: Any = kubernetes.client.CoreV1Api(api_client)
                    core.delete_namespace(namespace, propagation_policy="Background")
        finally:
            api_client.close()
        return
    with FakeApiServer(**fake_options) as fake, fake.api_client() as api_client:
        namespace = _create_namespace(api_client)
        fake.requests.reset()  # count only what the test itself does
        yield KubeEnv(api_client, namespace, Kubelet(api_client, namespace, fake=fake), fake)


@pytest.fixture
def kube() -> Iterator[KubeEnv]:
    """A Kubernetes API (fake, or the ``ODIN_TEST_KUBECONFIG`` cluster) with a fresh namespace."""
    with kube_environment() as env:
        yield env


@pytest.fixture
def kube_fake(kube: KubeEnv) -> FakeApiServer:
    """The fake API server behind ``kube``; skips the test on a real cluster."""
    return kube.require_fake()
