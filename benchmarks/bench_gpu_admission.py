"""What GPU admission adds to creating a run on Kubernetes (issue 10 item 5), on a large cluster.

Three figures, over the fake API server with `--nodes` Node objects (a tenth of them GPU nodes of three products):
1. a cold read: listing every Node over HTTP (paginated by 500) and turning each into what admission needs;
2. a warm check: judging a 50-task pipeline (20 GPU tasks, some with a product selector) from the cache, which is
   what nearly every run creation pays (the list is reused for 30 s);
3. the worst refusal: a task whose product no node offers, so every node is scanned and the message built.

    .venv/bin/python benchmarks/bench_gpu_admission.py [--nodes 5000] [--iterations 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

from odin.controller.admission import GpuAsk, gpu_asks
from odin.controller.executors.kubernetes.api import KubeApi
from odin.controller.executors.kubernetes.nodes import NodeInventory
from odin.schema.model import PipelineSpec
from odin.testing.kube.fake_apiserver import FakeApiServer

PRODUCTS = ("NVIDIA-H100-80GB-HBM3", "NVIDIA-A100-SXM4-80GB", "Tesla-T4")


def _spec() -> PipelineSpec:
    tasks = []
    for i in range(50):
        task: dict[str, object] = {"name": f"t{i}", "image": "x", "command": ["true"]}
        if i % 5 == 0:
            task["num_gpus"] = 8
            task["node_selector"] = {"nvidia.com/gpu.product": PRODUCTS[i % 2], "kubernetes.io/os": "linux"}
        elif i % 5 == 1:
            task["num_gpus"] = 1 + i % 4
        tasks.append(task)
    return PipelineSpec.from_dict({"name": "bench", "tasks": tasks})


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    return f"median {statistics.median(ordered) * 1000:.3f} ms, p95 {p95 * 1000:.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()
    with FakeApiServer() as server, server.api_client() as client:
        for i in range(args.nodes):
            gpu = i % 10 == 0
            labels = {"pool": f"pool-{i % 4}"}
            if gpu:
                labels["nvidia.com/gpu.product"] = PRODUCTS[i % 3]
            server.add_node(f"node-{i:05d}", gpus=8 if gpu else 0, labels=labels)
        api = KubeApi(client)
        cold = []
        for _ in range(5):
            inventory = NodeInventory(api, ttl=3600, timeout=30)
            started = time.perf_counter()
            nodes = inventory.nodes()
            cold.append(time.perf_counter() - started)
            assert nodes is not None and len(nodes) == args.nodes
        asks = gpu_asks(_spec())
        warm = []
        for _ in range(args.iterations):
            started = time.perf_counter()
            assert inventory.shortfall(asks) is None
            warm.append(time.perf_counter() - started)
        refused = []
        missing = [GpuAsk("train", 1, {"nvidia.com/gpu.product": "NVIDIA-H200-141GB-HBM3e"})]
        for _ in range(args.iterations):
            started = time.perf_counter()
            assert inventory.shortfall(missing) is not None
            refused.append(time.perf_counter() - started)
    print(f"{args.nodes} nodes ({args.nodes // 10} with GPUs), {len(asks)} GPU tasks judged per run")
    print(f"cold read (list every Node over HTTP): {_ms(cold)}")
    print(f"warm check (cached list): {_ms(warm)}")
    print(f"refusal (no node offers the product): {_ms(refused)}")


if __name__ == "__main__":
    main()
