"""The Kubernetes executor against the fake API server (`odin.testing.kube`): fan-out speed, API cost, reaction time.

1. Fan-out: one run of N independent tasks (default 1,000) through the real engine (SQLite store) and executor.
   Reports the time from submitting the run until the N-th pod was created (target: <= 10 s), the API requests the
   executor made per task over the whole run -- create, its share of list/watch, the run's ConfigMap, log saving
   and the pods' deletion once they ended (clean-up on, `ODIN_KUBE_CLEANUP_TTL=0`, by `deletecollection`: the run
   counts as done when every pod is gone, as a user's namespace would be; target: <= 2.5) -- and the requests made
   while every pod sat Running for a few seconds (target: none: watches, not polling).
2. Reaction: a chain of tasks; each time a pod is marked Succeeded, the time until the next task's pod create reaches
   the API server (target: median <= 50 ms).

The benchmark plays the kubelet in-process (pod status written straight into the fake's store, which emits the watch
events), so every HTTP request the fake records is the executor's own.

The load average is printed before and after (the machine is shared: figures move with it).

The executor's token bucket is set by `--qps`/`--burst` (`ODIN_KUBE_QPS`/`ODIN_KUBE_BURST`). For 10,000 live pods
across 1,000 runs, see `bench_kube_scale.py`.

Usage: python benchmarks/bench_kube_fanout.py [--tasks 1000] [--chain 40] [--idle 3] [--cleanup-ttl 0] [--qps 200]
       [--burst 400]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from odin.controller.engine.decide import RetryPolicy
from odin.controller.engine.loop import Engine
from odin.controller.executors.kubernetes import KubeOptions, KubernetesExecutor
from odin.controller.store.db import create_db_engine, migrate, transaction
from odin.controller.store.runs import NewRun, create_run
from odin.controller.vocabulary import RunStatus, Trigger
from odin.schema.model import PipelineSpec, TaskSpec
from odin.testing.kube.fake_apiserver import FakeApiServer
from odin.testing.kube.fake_resources import PODS

NAMESPACE = "bench"


def set_phase(fake: FakeApiServer, name: str, phase: str) -> None:
    """What the kubelet reports, written straight into the fake's store (no HTTP request)."""
    pod = fake.get_object(PODS, NAMESPACE, name)
    assert pod is not None, name
    state: dict[str, Any] = (
        {"running": {"startedAt": "2025-01-01T00:00:00Z"}}
        if phase == "Running"
        else {"terminated": {"exitCode": 0, "reason": "Completed"}}
    )
    status = {
        "phase": phase,
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{"name": "main", "image": "busybox", "imageID": "", "ready": phase == "Running",
                               "restartCount": 0, "state": state}],
    }  # fmt: skip
    fake.store.update(PODS, NAMESPACE, name, {**pod, "status": status}, subresource="status")


def pod_creates(fake: FakeApiServer) -> list[Any]:
    return fake.requests.filter(verb="create", resource="pods", status=201)


def wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.002)


class Bench:
    def __init__(
        self,
        tmp: Path,
        fake: FakeApiServer,
        *,
        parallelism: int,
        cleanup_ttl: float | None = None,
        qps: float = 200.0,
        burst: int = 400,
    ) -> None:
        self.fake = fake
        self.db = create_db_engine(f"sqlite:///{tmp / 'odin.db'}")
        migrate(self.db)
        work = tmp / "work"
        work.mkdir()
        (work / "train.py").write_text("print('hi')\n")
        self.work = work
        fake.store.create(fake.kind("", "v1", "namespaces"), None, {"metadata": {"name": NAMESPACE}})
        api_client = fake.api_client()
        options = KubeOptions(
            data_dir=tmp / "data", namespace=NAMESPACE, cleanup_ttl=cleanup_ttl, workers=8, qps=qps, burst=burst
        )
        self.executor = KubernetesExecutor(api_client, options, owns_client=True)
        self.engine = Engine(
            self.db,
            self.executor,
            policy=RetryPolicy(base=0.05, maximum=0.2, jitter=0.0),
            default_parallelism=parallelism,
            max_active_tasks=parallelism + 10,
        )
        self.engine.start()
        assert self.engine.wait_ready(10)

    def run(self, spec: PipelineSpec) -> str:
        with transaction(self.db) as conn:
            run_id = create_run(
                conn,
                NewRun(pipeline=spec.name, spec=spec, trigger=Trigger.MANUAL, params={}, work_path=str(self.work),
                       work_tree="ab" * 20, commit_sha="c" * 40),
            ).run_id  # fmt: skip
        self.engine.submit(run_id)
        return run_id

    def stop(self) -> None:
        self.engine.stop()
        self.executor.shutdown()
        self.db.dispose()


def deletions(fake: FakeApiServer) -> int:
    """Requests that deleted pods: a DELETE each, or a deletecollection for many."""
    return sum(1 for r in fake.requests if r.resource == "pods" and r.verb in ("delete", "deletecollection"))


def fanout(n: int, idle: float, cleanup_ttl: float, qps: float, burst: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="odin-kube-bench-") as d, FakeApiServer() as fake:
        bench = Bench(Path(d), fake, parallelism=n, cleanup_ttl=cleanup_ttl, qps=qps, burst=burst)
        try:
            spec = PipelineSpec(
                name="fanout",
                tasks=tuple(TaskSpec(name=f"t{i}", image="busybox", command=("true",)) for i in range(n)),
            )
            fake.requests.reset()
            start = time.time()
            run_id = bench.run(spec)
            wait(lambda: len(pod_creates(fake)) >= n, 120, "pods were not all created")
            created = pod_creates(fake)[-1].time - start
            for pod in fake.objects(PODS, NAMESPACE):
                set_phase(fake, pod["metadata"]["name"], "Running")
            # Let the RUNNING observations settle, then count what an idle, fully running fan-out costs.
            wait(lambda: len(bench.executor.attempts_snapshot()) >= n, 30, "attempts not tracked")
            time.sleep(1.0)
            before_idle = len(fake.requests)
            time.sleep(idle)
            idle_requests = len(fake.requests) - before_idle
            for pod in fake.objects(PODS, NAMESPACE):
                set_phase(fake, pod["metadata"]["name"], "Succeeded")
            status = bench.engine.wait(run_id, 120)
            assert status == RunStatus.SUCCEEDED, status
            # Logs are saved after the run finishes; include them in the cost.
            wait(lambda: fake.requests.count(subresource="log") >= n, 60, "logs were not all saved")
            # Clean-up is part of the cost a user's cluster pays: every pod deleted, and the namespace empty.
            wait(lambda: not fake.objects(PODS, NAMESPACE), 60 + cleanup_ttl, "pods left in the namespace")
            time.sleep(1.0)  # the run's ConfigMap goes in the same clean-up
            done_s = time.time() - start
            total = len(fake.requests)
            deletes = deletions(fake)
        finally:
            bench.stop()
    return {"created_s": created, "requests_per_task": total / n, "idle_requests": idle_requests, "idle_s": idle,
            "deletes": deletes, "done_s": done_s}  # fmt: skip


def reaction(chain: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="odin-kube-bench-") as d, FakeApiServer() as fake:
        bench = Bench(Path(d), fake, parallelism=4)
        latencies: list[float] = []
        try:
            tasks = [TaskSpec(name="s0", image="busybox", command=("true",))]
            tasks += [TaskSpec(name=f"s{i}", image="busybox", command=("true",), depends=(f"s{i - 1}",))
                      for i in range(1, chain + 1)]  # fmt: skip
            run_id = bench.run(PipelineSpec(name="chain", tasks=tuple(tasks)))
            for i in range(chain):
                wait(lambda i=i: len(pod_creates(fake)) >= i + 1, 30, f"pod s{i} not created")  # type: ignore[misc]
                name = pod_creates(fake)[i].path.rsplit("/", 1)[-1]
                [pod] = [
                    p for p in fake.objects(PODS, NAMESPACE) if p["metadata"]["labels"]["odin.dev/task"] == f"s{i}"
                ]
                set_phase(fake, pod["metadata"]["name"], "Running")
                time.sleep(0.05)  # let RUNNING be recorded, so the next write is the success alone
                t0 = time.time()
                set_phase(fake, pod["metadata"]["name"], "Succeeded")
                wait(lambda i=i: len(pod_creates(fake)) >= i + 2, 30, f"pod s{i + 1} not created")  # type: ignore[misc]
                latencies.append(pod_creates(fake)[i + 1].time - t0)
                del name
            last = [p for p in fake.objects(PODS, NAMESPACE) if p["metadata"]["labels"]["odin.dev/task"] == f"s{chain}"]
            set_phase(fake, last[0]["metadata"]["name"], "Succeeded")
            assert bench.engine.wait(run_id, 30) == RunStatus.SUCCEEDED
        finally:
            bench.stop()
    return latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--chain", type=int, default=40)
    parser.add_argument("--idle", type=float, default=3.0)
    parser.add_argument("--cleanup-ttl", type=float, default=0.0, help="seconds before an ended pod is deleted")
    parser.add_argument("--qps", type=float, default=200.0, help="the executor's ODIN_KUBE_QPS (0: no limit)")
    parser.add_argument("--burst", type=int, default=400, help="the executor's ODIN_KUBE_BURST")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    print(f"machine: {os.cpu_count()} CPUs, load average {load_average()} before")
    f = fanout(args.tasks, args.idle, args.cleanup_ttl, args.qps, args.burst)
    print(f"fan-out of {args.tasks} tasks:")
    print(f"  all pods created after          {f['created_s']:.2f} s   (target <= 10 s)")
    print(f"  API requests per task            {f['requests_per_task']:.2f}     (target <= 2.5; whole run: logs saved,"
          f" {f['deletes']:.0f} deletion requests, {f['done_s']:.1f} s until the namespace was empty)")  # fmt: skip
    print(f"  requests in {f['idle_s']:.0f} s of waiting     {f['idle_requests']:.0f}        (target: none)")
    lat = reaction(args.chain)
    print(f"watch event (task succeeded) -> dependent's create, over {len(lat)} steps:")
    print(f"  median {statistics.median(lat) * 1000:.1f} ms, p90 {sorted(lat)[int(len(lat) * 0.9)] * 1000:.1f} ms,"
          f" max {max(lat) * 1000:.1f} ms   (target: median <= 50 ms)")  # fmt: skip
    print(f"load average {load_average()} after")
    return 0


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    raise SystemExit(main())
