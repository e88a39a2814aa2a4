"""Agents found through the EndpointSlices of Midgard's Service, and GPU holders resolved through pod labels, on the
Kubernetes fake (or ODIN_TEST_KUBECONFIG's cluster)."""

from __future__ import annotations

import asyncio
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from odin.api.services.gpus import GpuService, holders_of
from odin.controller.executors.kubernetes.api import KubeApi
from odin.controller.executors.kubernetes.discovery import MidgardDiscovery, endpoints_of
from odin.controller.settings import Settings
from odin.midgard.report import Attribution, GpuReport, ProcessReport
from odin.testing.kube.environment import KubeEnv
from tests.support.agents import agent_group

pytestmark = pytest.mark.kube


def endpoint_slice(name: str, ports: list[int], *, service: str = "midgard", port: int | None = None) -> dict[str, Any]:
    # One slice per agent port is not how the controller writes them, but every endpoint of a slice shares its
    # ports, and the stand-in agents listen on different ports of one address.
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["127.0.0.1"], "nodeName": f"gpu-node-{p}", "conditions": {"ready": True}} for p in ports[:1]
        ],
        "ports": [{"name": "http", "port": port or ports[0], "protocol": "TCP"}],
    }


def test_agents_are_found_through_the_service_and_read(kube_api: KubeEnv, tmp_path: Any) -> None:
    discovery_api: Any = kubernetes.client.DiscoveryV1Api(kube_api.api_client)
    with agent_group(3) as group:
        for port in group.ports:
            discovery_api.create_namespaced_endpoint_slice(
                kube_api.namespace, endpoint_slice(f"midgard-{port}", [port])
            )
        discovery_api.create_namespaced_endpoint_slice(
            kube_api.namespace, endpoint_slice("other", [1], service="not-midgard")
        )
        settings = Settings(
            data_dir=tmp_path,
            kube_config=kube_api.kubeconfig,
            midgard_service="midgard",
            midgard_namespace=kube_api.namespace,
            midgard_timeout=2.0,
        )

        async def scenario() -> None:
            service = GpuService.from_settings(settings)
            try:
                nodes = await service.nodes()
                assert nodes.source == "kubernetes"
                assert sorted(n.url or "" for n in nodes.items) == sorted(group.urls)
                assert all(n.reachable for n in nodes.items)
                gpus = await service.gpus(free=False)
                assert len(gpus.items) == 3 and all(g.holders[0].run for g in gpus.items)
            finally:
                await service.aclose()

        asyncio.run(scenario())


def test_slices_become_urls() -> None:
    slices = [
        {
            "addressType": "IPv6",
            "ports": [{"name": "metrics", "port": 9100}, {"name": "http", "port": 9400}],
            "endpoints": [
                {"addresses": ["fd00::1"], "nodeName": "b", "conditions": {"ready": False}},
                {"addresses": ["fd00::2"], "nodeName": "a", "conditions": {"terminating": True}},
            ],
        },
        {"addressType": "IPv4", "ports": [{"port": 9400}], "endpoints": [{"addresses": ["10.0.0.1"], "nodeName": "c"}]},
        {"addressType": "IPv4", "ports": [{"name": "x", "port": 1}, {"name": "y", "port": 2}], "endpoints": []},
    ]
    found = endpoints_of(slices, port_name="http")
    assert [(e.url, e.node, e.ready) for e in found] == [
        ("http://[fd00::1]:9400", "b", False),
        ("http://10.0.0.1:9400", "c", True),
    ]


def test_the_fake_validates_endpoint_slices_like_the_apiserver(kube_api: KubeEnv) -> None:
    kube_api.require_fake()
    body = endpoint_slice("bad", [80])
    del body["addressType"]
    with pytest.raises(ApiException) as raised:  # the raw path: the typed client would refuse the body itself
        kube_api.custom.create_namespaced_custom_object(
            "discovery.k8s.io", "v1", kube_api.namespace, "endpointslices", body
        )
    assert raised.value.status == 422 and "addressType: Required value" in str(raised.value.body)


def test_a_pods_odin_labels_say_which_run_holds_the_gpu(kube_api: KubeEnv) -> None:
    labels = {
        "app.kubernetes.io/managed-by": "odin",
        "odin.dev/run": "train-3f2a9c1-1",
        "odin.dev/task": "fit",
        "odin.dev/commit": "3f2a9c1" + "0" * 33,
        "odin.dev/attempt": "2",
    }
    kube_api.core.create_namespaced_pod(kube_api.namespace, kube_api.pod_manifest("fit-pod", labels=labels))
    discovery = MidgardDiscovery(KubeApi(kube_api.api_client), namespace=kube_api.namespace, service="midgard")
    gpu = GpuReport(
        index=0,
        processes=[
            ProcessReport(
                pid=42,
                used_memory_bytes=5,
                attribution=Attribution(source="cgroup", pod_namespace=kube_api.namespace, pod_name="fit-pod"),
            ),
            ProcessReport(
                pid=43,
                attribution=Attribution(source="cgroup", pod_namespace=kube_api.namespace, pod_name="gone"),
            ),
        ],
    )
    first, second = holders_of(gpu, discovery.pod)
    assert (first.run, first.task, first.commit, first.attempt, first.pids) == (
        "train-3f2a9c1-1",
        "fit",
        labels["odin.dev/commit"],
        2,
        [42],
    )
    assert (second.run, second.pod, second.pids) == (None, f"{kube_api.namespace}/gone", [43])
