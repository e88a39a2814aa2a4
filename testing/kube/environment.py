"""A Kubernetes test environment: the fake API server by default, a real cluster on request.

Why one environment for both: executor tests should prove behaviour against a real apiserver now and then, without a
second copy of the test.  ``kube_environment()`` yields a ``KubeEnv`` whose ``api_client`` points at a fresh
``FakeApiServer``, or, when ``ODIN_TEST_KUBECONFIG`` names a kubeconfig, at that cluster
(``kubernetes.config.new_client_from_config``).  Either way each test gets its own namespace, created through the API
(and, on a real cluster, deleted afterwards), a kubeconfig file for code that loads one (a subprocess, a CLI), and a
``Kubelet`` that drives pods through the API only.  ``fake`` is the server object, or ``None`` on a real cluster:
tests that need fault injection call ``kube.require_fake()``, which skips with a clear reason there.

Pods a test creates should carry ``schedulerName: kube.scheduler_name`` (``kube.pod_manifest`` does it): on a real
cluster no scheduler serves that name, so no real kubelet ever runs them and the fake kubelet's status patches stick.
The fake does not schedule at all, so the same manifest works there.

The pytest plugin (``odin.testing.kube.pytest_plugin``, installed with Odin) gives it as the ``kube_api`` fixture::

    def test_something(kube_api: KubeEnv) -> None:
        pod = kube_api.core.create_namespaced_pod(kube_api.namespace, kube_api.pod_manifest("p"))
        kube_api.kubelet.succeed(pod)
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException

from odin.testing.kube.fake_apiserver import FakeApiServer
from odin.testing.kube.kubelet import Kubelet, wait_for

KUBECONFIG_ENV = "ODIN_TEST_KUBECONFIG"
UNSERVED_SCHEDULER = "odin-test-no-scheduler"
TEST_NAMESPACE_LABEL = "odin.io/test-namespace"


@dataclass
class KubeEnv:
    """What a Kubernetes test gets: a client, its own namespace, the fake kubelet, and the fake (or ``None``).

    ``kubeconfig`` is a kubeconfig file for the same cluster, for code that loads one rather than taking a client: on
    the fake, a file whose current context names ``namespace``; on a real cluster, ``ODIN_TEST_KUBECONFIG`` itself.
    """

    api_client: kubernetes.client.ApiClient
    namespace: str
    kubelet: Kubelet
    fake: FakeApiServer | None
    kubeconfig: Path
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
            import pytest  # only here: the environment itself also serves scripts without pytest

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
def kube_environment(*, kubeconfig_dir: Path | None = None, **fake_options: Any) -> Iterator[KubeEnv]:
    """The ``kube_api`` fixture's body, usable outside pytest.  ``fake_options`` go to ``FakeApiServer``; the fake's
    kubeconfig is written in ``kubeconfig_dir`` (a temporary directory, removed afterwards, by default)."""
    kubeconfig = os.environ.get(KUBECONFIG_ENV)
    if kubeconfig:
        api_client = kubernetes.config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        try:
            namespace = _create_namespace(api_client)
            try:
                yield KubeEnv(api_client, namespace, Kubelet(api_client, namespace), None, Path(kubeconfig))
            finally:
                with contextlib.suppress(ApiException):
                    core: Any = kubernetes.client.CoreV1Api(api_client)
                    core.delete_namespace(namespace, propagation_policy="Background")
        finally:
            api_client.close()
        return
    with contextlib.ExitStack() as stack:
        if kubeconfig_dir is None:
            kubeconfig_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="odin-kube-")))
        fake = stack.enter_context(FakeApiServer(**fake_options))
        api_client = stack.enter_context(fake.api_client())
        namespace = _create_namespace(api_client)
        path = fake.write_kubeconfig(kubeconfig_dir / "kubeconfig", namespace=namespace)
        fake.requests.reset()  # count only what the test itself does
        yield KubeEnv(api_client, namespace, Kubelet(api_client, namespace, fake=fake), fake, path)
