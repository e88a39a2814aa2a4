"""GPU admission's view of the cluster: Node objects read over HTTP from the fake API server (issue 10 item 5).

The messages (what a user reads when a run is refused), the node selector rule (a node must match every label), the
cache (one list per TTL), and the rule that an unreadable cluster admits rather than blocks (403, a slow API).
"""

from __future__ import annotations

import logging
import time

import pytest

from odin.controller.admission import GpuAsk, NodeGpus, cluster_shortfall, gpu_asks, judge
from odin.controller.executors.kubernetes.api import KubeApi
from odin.controller.executors.kubernetes.nodes import NodeInventory, node_gpus
from odin.schema.model import PipelineSpec
from odin.testing.kube.environment import KubeEnv
from odin.testing.kube.fake_apiserver import FakeApiServer
from odin.testing.kube.fake_resources import NODES

pytestmark = pytest.mark.kube

H100 = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-80GB"
PRODUCT = "nvidia.com/gpu.product"


def cluster(fake: FakeApiServer) -> None:
    fake.add_node("node-a", gpus=8, labels={PRODUCT: H100})
    fake.add_node("node-b", gpus=4, labels={PRODUCT: A100, "pool": "train"})
    fake.add_node("node-c", gpus=4, labels={PRODUCT: A100, "pool": "batch"})
    fake.add_node("cpu-1")


@pytest.fixture
def inventory(kube: KubeEnv, kube_fake: FakeApiServer) -> NodeInventory:
    cluster(kube_fake)
    return NodeInventory(KubeApi(kube.api_client), ttl=30.0, timeout=1.0)


def test_nodes_are_read_with_allocatable_gpus_and_labels(inventory: NodeInventory) -> None:
    nodes = {n.name: n for n in inventory.nodes() or []}
    assert {name: n.gpus for name, n in nodes.items()} == {"node-a": 8, "node-b": 4, "node-c": 4, "cpu-1": 0}
    assert nodes["node-b"].labels[PRODUCT] == A100 and nodes["node-b"].labels["kubernetes.io/hostname"] == "node-b"


def test_more_gpus_than_the_largest_node(inventory: NodeInventory) -> None:
    assert inventory.shortfall([GpuAsk("train", 16)]) == (
        f"task train asks for 16 GPUs; the largest node has 8 (node-a: 8\u00d7 {H100})"
    )
    assert inventory.shortfall([GpuAsk("train", 8)]) is None


def test_a_gpu_model_no_node_offers_names_the_products_present(inventory: NodeInventory) -> None:
    wanted = "NVIDIA-H200-141GB-HBM3e"
    assert inventory.shortfall([GpuAsk("train", 1, {PRODUCT: wanted})]) == (
        f"task train asks for 1 GPU on nodes with {PRODUCT}={wanted}; nodes with {PRODUCT}={wanted}: none; "
        f"the largest node has 8 (node-a: 8\u00d7 {H100}); "
        f"products present: {A100} (2 nodes, up to 4 GPUs), {H100} (1 node, 8 GPUs)"
    )


def test_every_label_of_the_selector_must_match(inventory: NodeInventory) -> None:
    assert inventory.shortfall([GpuAsk("t", 4, {PRODUCT: A100, "pool": "train"})]) is None
    assert inventory.shortfall([GpuAsk("t", 8, {PRODUCT: A100})]) == (
        f"task t asks for 8 GPUs on nodes with {PRODUCT}={A100}; the largest of them has 4 "
        f"(node-b: 4\u00d7 {A100}, node-c: 4\u00d7 {A100}); the largest node has 8 (node-a: 8\u00d7 {H100})"
    )
    problem = inventory.shortfall([GpuAsk("t", 1, {PRODUCT: H100, "pool": "train"})])
    assert problem is not None and f"nodes with {PRODUCT}={H100}, pool=train: none" in problem


def test_a_cluster_without_gpus() -> None:
    nodes = [NodeGpus("cpu-1", 0), NodeGpus("cpu-2", 0)]
    assert cluster_shortfall([GpuAsk("t", 1)], nodes) == (
        "task t asks for 1 GPU; no node has a GPU (2 nodes, none with allocatable GPUs)"
    )
    assert cluster_shortfall([GpuAsk("t", 1)], []) == "task t asks for 1 GPU; the cluster has no node"


def test_only_gpu_tasks_are_judged_and_reused_ones_are_not() -> None:
    spec = PipelineSpec.from_dict(
        {
            "name": "p",
            "tasks": [
                {"name": "cpu", "image": "x", "command": ["true"], "node_selector": {"pool": "nowhere"}},
                {"name": "train", "image": "x", "command": ["true"], "num_gpus": 2},
                {"name": "eval", "image": "x", "command": ["true"], "node_selector": {PRODUCT: H100}},
            ],
        }
    )
    assert [a.task for a in gpu_asks(spec)] == ["train", "eval"]
    assert [a.task for a in gpu_asks(spec, skip={"train"})] == ["eval"]

    def broken(_asks: object) -> str | None:
        raise RuntimeError("boom")

    assert judge(broken, spec) is None, "a failing check admits (logged), it never blocks run creation"
    assert judge(None, spec) is None


def test_the_list_is_cached_for_its_ttl(kube: KubeEnv, kube_fake: FakeApiServer) -> None:
    cluster(kube_fake)
    now = [100.0]
    inventory = NodeInventory(KubeApi(kube.api_client), ttl=30.0, timeout=1.0, clock=lambda: now[0])
    lists = lambda: kube_fake.requests.count(verb="list", resource="nodes")  # noqa: E731
    for _ in range(5):
        assert inventory.shortfall([GpuAsk("t", 9)]) is not None
    assert lists() == 1
    kube_fake.add_node("big", gpus=16, labels={PRODUCT: H100})
    now[0] += 29
    assert inventory.shortfall([GpuAsk("t", 9)]) is not None, "still the cached list"
    now[0] += 2
    assert inventory.shortfall([GpuAsk("t", 9)]) is None, "a grown node pool is seen after the TTL"
    assert lists() == 2


def test_without_rbac_runs_are_admitted_with_one_warning(
    kube: KubeEnv, kube_fake: FakeApiServer, caplog: pytest.LogCaptureFixture
) -> None:
    cluster(kube_fake)
    kube_fake.faults.add(403, verb="list", resource="nodes")
    now = [0.0]
    inventory = NodeInventory(KubeApi(kube.api_client), ttl=30.0, timeout=1.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="odin.controller.executors.kubernetes.nodes"):
        assert inventory.shortfall([GpuAsk("t", 64)]) is None
        now[0] += 10
        assert inventory.shortfall([GpuAsk("t", 64)]) is None
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1, warnings
    assert "cannot read the cluster's nodes" in warnings[0] and "odin-node-reader" in warnings[0]
    kube_fake.faults.clear()
    now[0] += 10  # a failure is remembered only briefly
    assert inventory.shortfall([GpuAsk("t", 64)]) is not None


def test_a_slow_api_does_not_hold_run_creation(kube: KubeEnv, kube_fake: FakeApiServer) -> None:
    cluster(kube_fake)
    kube_fake.faults.latency(5.0, verb="list", resource="nodes")
    inventory = NodeInventory(KubeApi(kube.api_client), ttl=30.0, timeout=0.5)
    started = time.monotonic()
    assert inventory.shortfall([GpuAsk("t", 64)]) is None
    assert time.monotonic() - started < 3.0


def test_the_fake_defaults_allocatable_from_capacity_as_the_apiserver_does(kube_fake: FakeApiServer) -> None:
    kube_fake.store.create(NODES, None, {"metadata": {"name": "raw"}, "status": {"capacity": {"nvidia.com/gpu": "2"}}})
    kube_fake.store.create(
        NODES,
        None,
        {"metadata": {"name": "partial"}, "status": {"capacity": {"nvidia.com/gpu": "8"}, "allocatable": {}}},
    )
    stored = {n["metadata"]["name"]: node_gpus(n) for n in kube_fake.objects(NODES)}
    assert stored["raw"].gpus == 2
    assert stored["partial"].gpus == 0, "an allocatable that is set is kept (the device plugin may withhold GPUs)"


def test_a_product_asked_without_gpus_is_judged_too() -> None:
    nodes = [NodeGpus("node-a", 8, {PRODUCT: H100})]
    assert cluster_shortfall([GpuAsk("eval", 0, {PRODUCT: H100})], nodes) is None
    assert cluster_shortfall([GpuAsk("eval", 0, {PRODUCT: A100})], nodes) == (
        f"task eval asks for a node with {PRODUCT}={A100}; nodes with {PRODUCT}={A100}: none; "
        f"the largest node has 8 (node-a: 8\u00d7 {H100}); products present: {H100} (1 node, 8 GPUs)"
    )


def test_a_node_status_update_is_defaulted_too(kube: KubeEnv, kube_fake: FakeApiServer) -> None:
    kube_fake.add_node("late", gpus=0)
    kube.core.patch_node_status("late", {"status": {"capacity": {"nvidia.com/gpu": "4"}, "allocatable": None}})
    [late] = [node_gpus(n) for n in kube_fake.objects(NODES) if n["metadata"]["name"] == "late"]
    assert late.gpus == 4, "the device plugin came up: capacity, and allocatable defaulted from it"


def test_a_cluster_listing_no_node_admits(kube: KubeEnv, kube_fake: FakeApiServer) -> None:
    inventory = NodeInventory(KubeApi(kube.api_client), ttl=30.0, timeout=1.0)
    assert inventory.nodes() == []
    assert inventory.shortfall([GpuAsk("t", 1)]) is None, "nodes that appear on demand: nothing to judge from"
