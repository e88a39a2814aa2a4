"""The Kubernetes controller at scale (issue 15 item 4): R runs x T tasks live at once on the fake API server.

Default 1,000 runs x 10 tasks = 10,000 pods. The controller (engine on SQLite + Kubernetes executor) runs in a child
process of its own, so its peak RSS is its own and not the fake's; this process runs the fake API server and plays
the kubelet by writing pod status straight into the fake's store (no HTTP request), so every request the fake
records is the controller's. Printed, with the load average before and after:

* wall time until every pod was created; the request rate the fake saw (busiest second, sliding 1 s window) against
  the configured `ODIN_KUBE_QPS`/`ODIN_KUBE_BURST` (`--qps`, `--burst`);
* requests over `--idle` seconds with everything Running (target: none);
* watch event -> dependent's create: a chain run of `--chain` steps measured while the whole load is live, each
  step from the status write of a pod to the arrival of the next task's create (target p99 <= 100 ms), with the
  controller's garbage-collector pauses during the chain, by generation (`gc.callbacks`); `--profile` says where
  the slowest steps' time went: the fake's status write and its slow requests around it, when the event reached
  the executor and when its create left, the engine's turns, the controller's threads' stacks (sampled: a profiler
  such as pyinstrument follows one thread, and the controller's work is spread over several);
* API requests per task over the whole life of the runs **including clean-up** (`ODIN_KUBE_CLEANUP_TTL=0`: the
  runs count as done when the namespace is empty of pods and work ConfigMaps): create, its share of list/watch,
  the run's ConfigMap, the log saved, deletion (target <= 2.5), with the breakdown by verb;
* the controller's peak RSS (target <= 1 GB) and the journal's cost (files written per create);
* its garbage-collector pauses over the whole benchmark, and what gc freezing did (`--gc-freeze`, the controller's
  `ODIN_GC_FREEZE_INTERVAL`, `controller/gc_freeze.py`; `--gc-freeze 0` measures CPython's collector alone).

Fake API server only, so far: the kubelet is played through the fake's store, which a real cluster does not offer
(10,000 status writes through a real apiserver would be the benchmark's own load, and its request counts would need
the apiserver's metrics). With `ODIN_TEST_KUBECONFIG` set the script says so and still measures the fake. The
controller's own request count (its token bucket's) is printed beside the fake's, and is what a real-cluster run would
report.

If the machine cannot carry the full load in reasonable time, run fewer runs (`--runs 200`) and read the per-task
figures, which do not depend on the number of runs (the script prints what it reached; extrapolate with care).

Usage: python benchmarks/bench_kube_scale.py [--runs 1000] [--tasks 10] [--chain 30] [--idle 10] [--qps 200]
       [--burst 400] [--gc-freeze 10] [--profile]
"""

from __future__ import annotations

import argparse
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import resource
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAMESPACE = "bench"


# -- the controller, in its own process ---------------------------------------------------------------------------
def controller(conn: multiprocessing.connection.Connection, url: str, tmp: str, options: dict[str, Any]) -> None:
    """Engine + executor against the fake at `url`; obeys commands from the pipe until told to stop."""
    import kubernetes.client
    import sqlalchemy as sa

    from odin.controller.engine.decide import RetryPolicy
    from odin.controller.engine.loop import Engine
    from odin.controller.executors.kubernetes import KubeOptions, KubernetesExecutor
    from odin.controller.gc_freeze import start_gc_freezer
    from odin.controller.store.db import create_db_engine, migrate, transaction
    from odin.controller.store.runs import TASKS, NewRun, create_run
    from odin.controller.vocabulary import Trigger
    from odin.schema.model import PipelineSpec, TaskSpec

    logging.basicConfig(level=logging.ERROR)
    pauses = GcPauses()
    sampler = StackSampler()
    freezer = start_gc_freezer(options["gc_freeze"])  # what `odin serve` does (controller/gc_freeze.py)
    config = kubernetes.client.Configuration(host=url)
    config.proxy = None
    config.no_proxy = "*"
    db = create_db_engine(f"sqlite:///{tmp}/odin.db")
    migrate(db)
    work = Path(tmp) / "work"
    work.mkdir()
    (work / "train.py").write_text("print('hi')\n")
    executor = KubernetesExecutor(
        kubernetes.client.ApiClient(config),
        KubeOptions(
            data_dir=Path(tmp) / "data",
            namespace=NAMESPACE,
            cleanup_ttl=0.0,
            workers=8,
            qps=options["qps"],
            burst=options["burst"],
            watch_timeout=3600,
        ),
        owns_client=True,
    )
    journal_s = [0.0, 0]  # seconds spent writing and removing create-journal entries, and how many writes
    write, remove = executor.journal.write, executor.journal.remove

    def timed_write(*a: Any, **kw: Any) -> None:
        t = time.perf_counter()
        write(*a, **kw)
        journal_s[0] += time.perf_counter() - t
        journal_s[1] += 1

    def timed_remove(*a: Any, **kw: Any) -> None:
        t = time.perf_counter()
        remove(*a, **kw)
        journal_s[0] += time.perf_counter() - t

    executor.journal.write = timed_write  # type: ignore[method-assign]
    executor.journal.remove = timed_remove  # type: ignore[method-assign]
    engine = Engine(
        db,
        executor,
        policy=RetryPolicy(base=0.05, maximum=0.2, jitter=0.0),
        default_parallelism=options["tasks"],
        max_active_tasks=options["max_active"],
    )
    turns: list[tuple[float, float, bool]] = []  # (start, seconds, whether it rescanned), with --profile
    seen: list[tuple[float, str, str]] = []  # watch events reaching the executor: (time, pod, phase)
    sent: list[tuple[float, str]] = []  # creates about to be sent: (time, name)
    if options["profile"]:
        turn, rescan = engine._turn, engine._rescan
        rescanned = [False]

        def timed_rescan(*a: Any) -> None:
            rescanned[0] = True
            rescan(*a)

        def timed_turn(*a: Any) -> float:
            rescanned[0] = False
            t, wall = time.perf_counter(), time.time()
            try:
                return turn(*a)
            finally:
                turns.append((wall, time.perf_counter() - t, rescanned[0]))

        on_event, create_object = executor.watches.on_event, executor.api.create

        def timed_event(event: str, kind: Any, obj: Any) -> None:
            seen.append((time.time(), obj["metadata"]["name"], (obj.get("status") or {}).get("phase", "")))
            on_event(event, kind, obj)

        def timed_create(kind: Any, namespace: str, body: Any) -> Any:
            sent.append((time.time(), body["metadata"]["name"]))
            return create_object(kind, namespace, body)

        executor.watches.on_event = timed_event
        executor.api.create = timed_create  # type: ignore[method-assign]
        engine._turn = timed_turn  # type: ignore[method-assign]
        engine._rescan = timed_rescan  # type: ignore[method-assign]
    engine.start()
    assert engine.wait_ready(30)

    def create(spec: PipelineSpec) -> str:
        with transaction(db) as c:
            run_id = create_run(
                c,
                NewRun(
                    pipeline=spec.name,
                    spec=spec,
                    trigger=Trigger.MANUAL,
                    params={},
                    work_path=str(work),
                    work_tree="ab" * 20,
                    commit_sha="c" * 40,
                ),
            ).run_id
        engine.submit(run_id)
        return str(run_id)

    while True:
        command, *args = conn.recv()
        if command == "fanout":
            runs, tasks = args
            spec = PipelineSpec(
                name="fan",
                tasks=tuple(TaskSpec(name=f"t{i}", image="busybox", command=("true",)) for i in range(tasks)),
            )
            conn.send([create(spec) for _ in range(runs)])
        elif command == "chain":
            (n,) = args
            steps = [TaskSpec(name="s0", image="busybox", command=("true",))]
            steps += [
                TaskSpec(name=f"s{i}", image="busybox", command=("true",), depends=(f"s{i - 1}",))
                for i in range(1, n + 1)
            ]
            conn.send(create(PipelineSpec(name="chain", tasks=tuple(steps))))
        elif command == "count":
            (status,) = args
            with db.connect() as c:
                conn.send(
                    c.execute(
                        sa.select(sa.func.count()).select_from(TASKS).where(TASKS.c.status == status)
                    ).scalar_one()
                )
        elif command == "wait":
            run_ids, timeout = args
            deadline = time.monotonic() + timeout
            conn.send([str(engine.wait(r, max(0.1, deadline - time.monotonic()))) for r in run_ids])
        elif command == "stats":
            journal = executor.journal.root
            conn.send(
                {
                    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                    "requests": executor.limiter.acquired,
                    "waited_s": executor.limiter.waited,
                    "journal_left": sum(1 for _ in journal.rglob("*.json")) if journal.exists() else 0,
                    "journal_s": journal_s[0],
                    "gc": pauses.summary(),
                    "freezer": (
                        f"{freezer.stats.ticks} ticks, longest {freezer.stats.longest_tick_s * 1000:.0f} ms; "
                        f"{freezer.stats.full_collections} full collections, longest "
                        f"{freezer.stats.longest_full_s * 1000:.0f} ms; {freezer.stats.frozen} objects frozen"
                        if freezer is not None
                        else "off"
                    ),
                    "journal_writes": journal_s[1],
                }
            )
        elif command == "gc-mark":
            pauses.mark()
            turns.clear()
            seen.clear()
            sent.clear()
            if options["profile"]:
                sampler.start()
            conn.send("marked")
        elif command == "gc-window":
            profile = sampler.stop() if options["profile"] else None
            conn.send((pauses.summary(since_mark=True), profile, list(turns), list(seen), list(sent)))
        elif command == "stop":
            engine.stop()
            executor.shutdown()
            db.dispose()
            conn.send("stopped")
            return


class GcPauses:
    """How long Python's cyclic garbage collector stopped this process, by generation (a full collection walks every
    live object: with 10,000 pods cached it is the longest pause a controller has)."""

    def __init__(self) -> None:
        self.started = 0.0
        self.by_generation: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self.marked = {generation: 0 for generation in self.by_generation}
        gc.callbacks.append(self._callback)

    def mark(self) -> None:
        """Start a window: `summary(since_mark=True)` counts only the pauses after this."""
        self.marked = {generation: len(pauses) for generation, pauses in self.by_generation.items()}

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
        else:
            self.by_generation[info["generation"]].append(time.perf_counter() - self.started)

    def summary(self, *, since_mark: bool = False) -> str:
        parts = []
        for generation, every in self.by_generation.items():
            pauses = every[self.marked[generation] :] if since_mark else every
            if pauses:
                parts.append(f"gen{generation}: {len(pauses)} x, max {max(pauses) * 1000:.0f} ms, "
                             f"{sum(pauses):.1f} s in all")  # fmt: skip
        return "; ".join(parts) or "none"


class StackSampler:
    """Where the controller's threads spend the chain (`--profile`): every thread's Python stack sampled every 2 ms
    (`sys._current_frames`), the busy ones kept with their time, so the benchmark can show what ran during its
    slowest steps. pyinstrument, like cProfile, follows one thread; the engine loop, the watches and the submitters
    are several."""

    IDLE_FILES = ("threading.py", "queue.py", "selectors.py", "socket.py", "ssl.py", "timers.py")
    IDLE_FRAMES = ("thread.py:_worker", "loop.py:_drain", "watch.py:_watch_once", "api.py:iter_lines")

    def __init__(self, every: float = 0.002, depth: int = 8) -> None:
        self.every, self.depth = every, depth
        self.busy: list[tuple[float, str]] = []
        self.taken = 0
        self._stop: Any = None
        self._thread: Any = None

    def start(self) -> None:
        import threading

        self.busy, self.taken = [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(self._stop,), name="bench-sampler", daemon=True)
        self._thread.start()

    def _loop(self, stop: Any) -> None:
        import sys
        import threading

        me = threading.get_ident()
        while not stop.wait(self.every):
            names = {t.ident: t.name for t in threading.enumerate()}
            now = time.time()
            self.taken += 1
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                stack = []
                f: Any = frame
                while f is not None and len(stack) < self.depth:
                    stack.append(f"{Path(f.f_code.co_filename).name}:{f.f_code.co_name}")
                    f = f.f_back
                leaf = stack[0] if stack else ""
                if leaf.split(":")[0] in self.IDLE_FILES or leaf in self.IDLE_FRAMES:
                    continue
                name = names.get(ident, "?").rstrip("0123456789_-")
                self.busy.append((now, f"{name}: " + " < ".join(stack)))

    def stop(self) -> tuple[int, list[tuple[float, str]]]:
        self._stop.set()
        self._thread.join(5)
        return self.taken, self.busy


def busiest(samples: list[tuple[float, str]], start: float = 0.0, end: float = float("inf"), top: int = 8) -> str:
    """The stacks sampled most often between `start` and `end`."""
    counts = Counter(stack for t, stack in samples if start <= t <= end)
    return "\n".join(f"    {count:5d}  {stack}" for stack, count in counts.most_common(top)) or "    (nothing busy)"


# -- this process: the fake API server and the kubelet -----------------------------------------------------------
def set_phase(fake: Any, pod: dict[str, Any], phase: str) -> None:
    from odin.testing.kube.fake_resources import PODS

    state: dict[str, Any] = (
        {"running": {"startedAt": "2025-01-01T00:00:00Z"}}
        if phase == "Running"
        else {"terminated": {"exitCode": 0, "reason": "Completed"}}
    )
    status = {
        "phase": phase,
        "conditions": [{"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [
            {
                "name": "main",
                "image": "busybox",
                "imageID": "",
                "ready": phase == "Running",
                "restartCount": 0,
                "state": state,
            }
        ],
    }
    current = fake.get_object(PODS, NAMESPACE, pod["metadata"]["name"])
    fake.store.update(PODS, NAMESPACE, pod["metadata"]["name"], {**current, "status": status}, subresource="status")


def work_config_maps(fake: Any) -> list[Any]:
    """The runs' `${WORK_PATH}` ConfigMaps (the namespace's own kube-root-ca.crt stays)."""
    from odin.testing.kube.fake_resources import CONFIGMAPS

    return [c for c in fake.objects(CONFIGMAPS, NAMESPACE) if "odin.dev/run" in (c["metadata"].get("labels") or {})]


def wait(predicate: Any, timeout: float, what: str, every: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(every)


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    from odin.controller.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--chain", type=int, default=30)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--qps", type=float, default=200.0, help="ODIN_KUBE_QPS of the controller (0: no limit)")
    parser.add_argument("--burst", type=int, default=400, help="ODIN_KUBE_BURST of the controller")
    parser.add_argument("--gc-freeze", type=float, default=Settings().gc_freeze_interval,
                        help="the controller's ODIN_GC_FREEZE_INTERVAL (0: off, CPython's own collector)")  # fmt: skip
    parser.add_argument("--profile", action="store_true",
                        help="sample the controller's threads during the chain; print the busiest stacks")  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    from odin.testing.kube.fake_apiserver import FakeApiServer
    from odin.testing.kube.fake_resources import PODS

    n = args.runs * args.tasks
    if os.environ.get("ODIN_TEST_KUBECONFIG"):
        print("note: ODIN_TEST_KUBECONFIG is set, but this benchmark plays the kubelet through the fake API server's "
              "store: it measures the fake")  # fmt: skip
    print(f"machine: {os.cpu_count()} CPUs, load average {load_average()} before")
    print(f"{args.runs} runs x {args.tasks} tasks = {n} pods live at once; QPS {args.qps:g}, burst {args.burst}")
    wall = time.monotonic()
    context = multiprocessing.get_context("spawn")
    with (
        tempfile.TemporaryDirectory(prefix="odin-kube-scale-") as tmp,
        FakeApiServer(history_limit=4 * n + 10_000, job_controller=False, kubeflow_controller=False) as fake,
    ):
        fake.store.create(fake.kind("", "v1", "namespaces"), None, {"metadata": {"name": NAMESPACE}})
        ours, theirs = context.Pipe()
        options = {
            "gc_freeze": args.gc_freeze,
            "profile": args.profile,
            "qps": args.qps,
            "burst": args.burst,
            "tasks": max(args.tasks, 2),
            "max_active": n + args.chain + 16,
        }
        child = context.Process(target=controller, args=(theirs, fake.url, tmp, options), daemon=True)
        child.start()

        def ask(*command: Any, timeout: float = 600) -> Any:
            ours.send(command)
            if not ours.poll(timeout):
                raise TimeoutError(f"the controller did not answer {command[0]}")
            return ours.recv()

        def creates() -> int:
            return fake.requests.count(verb="create", resource="pods", status=201)

        try:
            fake.requests.reset()
            started = time.time()
            run_ids = ask("fanout", args.runs, args.tasks)
            wait(lambda: creates() >= n, 3600, "pods were not all created")
            create_times = [r.time for r in fake.requests.filter(verb="create", resource="pods")]
            created_s = max(create_times) - started
            busiest_second = max(fake.requests.per_second())
            busiest_window = fake.requests.max_in_window(1.0)
            seconds = max(1e-9, max(r.time for r in fake.requests) - min(r.time for r in fake.requests))
            mean_rate = len(fake.requests) / seconds
            print(f"  all {n} pods created after      {created_s:.1f} s ({n / created_s:.0f} creates/s)")
            print(
                f"  request rate the fake saw        busiest second {busiest_second}, busiest 1 s window "
                f"{busiest_window}, mean {mean_rate:.0f}/s   (allowed: burst {args.burst} + {args.qps:g}/s)"
            )

            for pod in fake.objects(PODS, NAMESPACE):
                set_phase(fake, pod, "Running")
            wait(lambda: ask("count", "running") >= n, 600, "not every task was recorded running", every=1.0)
            time.sleep(1.0)
            before = len(fake.requests)
            time.sleep(args.idle)
            idle = len(fake.requests) - before
            print(f"  requests in {args.idle:.0f} s with all {n} running   {idle}   (target: none)")

            # The fake's own collector must not be what is measured: it holds every pod, event and request.
            gc.disable()
            try:
                ask("gc-mark")
                chain = reaction(fake, ask, args.chain)
                latencies = chain.latencies
                chain_gc, profile, turns, seen, sent = ask("gc-window")
            finally:
                gc.enable()
            print(f"watch event -> dependent's create, {len(latencies)} steps of a chain while {n} pods are live:")
            print(
                f"  p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {percentile(latencies, 99) * 1000:.1f} ms,"
                f" max {max(latencies) * 1000:.1f} ms   (target p99 <= 100 ms)"
            )
            print(f"  the controller's garbage-collector pauses during the chain: {chain_gc}")
            slow = sorted(range(len(latencies)), key=lambda i: -latencies[i])[:5]
            print("  slowest steps: " + ", ".join(f"#{i} {latencies[i] * 1000:.0f} ms" for i in slow))
            if profile:
                report_profile(fake, profile, turns, seen, sent, chain)

            finishing = time.time()
            for pod in fake.objects(PODS, NAMESPACE):
                if pod.get("status", {}).get("phase") == "Running":
                    set_phase(fake, pod, "Succeeded")
            statuses = ask("wait", run_ids, 1800, timeout=1900)
            assert set(statuses) == {"succeeded"}, Counter(statuses)
            total_tasks = n + args.chain + 1
            wait(lambda: fake.requests.count(subresource="log") >= total_tasks, 1800, "logs were not all saved", 1.0)
            wait(
                lambda: not fake.objects(PODS, NAMESPACE) and not work_config_maps(fake),
                1800,
                "the namespace was not cleaned up",
                1.0,
            )
            time.sleep(2.0)  # anything still in flight
            done_s = time.time() - finishing
            stats = ask("stats")
            total = len(fake.requests)
            by_verb = Counter(
                f"{r.verb} {r.resource}{'/' + r.subresource if r.subresource else ''}" for r in fake.requests
            )
            print(
                f"API requests per task, clean-up included: {total / total_tasks:.2f}   (target <= 2.5; {total} "
                f"requests for {total_tasks} tasks; {done_s:.1f} s from the last success to an empty namespace)"
            )
            print("  " + ", ".join(f"{k} {v / total_tasks:.3f}" for k, v in by_verb.most_common()))
            print(
                f"  the controller counted {stats['requests']} requests of its own (token bucket), waited "
                f"{stats['waited_s']:.1f} s for tokens in all; journal entries left: {stats['journal_left']}"
            )
            writes = max(1, stats["journal_writes"])
            print(
                f"  create journal (kube/pending/): {stats['journal_writes']} entries written and removed, "
                f"{stats['journal_s'] / writes * 1e6:.0f} us per create, {stats['journal_s']:.2f} s in all"
            )
            print(f"  the controller's garbage-collector pauses: {stats['gc']}")
            print(f"  gc freezing (ODIN_GC_FREEZE_INTERVAL={args.gc_freeze:g}): {stats['freezer']}")
            print(f"controller peak RSS {stats['rss_mb']:.0f} MB   (target <= 1024 MB)")
        finally:
            try:
                ask("stop", timeout=60)
            finally:
                child.join(30)
                if child.is_alive():
                    child.kill()
    print(f"wall time {time.monotonic() - wall:.0f} s; load average {load_average()} after")
    return 0


def report_profile(
    fake: Any,
    profile: tuple[int, list[tuple[float, str]]],
    turns: list[tuple[float, float, bool]],
    seen: list[tuple[float, str, str]],
    sent: list[tuple[float, str]],
    chain: Chain,
) -> None:
    """`--profile`: where the slowest steps' time went -- the fake's status write and its slow requests around it,
    when the event reached the executor and when its create left, the engine's turns, the controller's stacks."""
    from odin.controller.executors.kubernetes import names

    run_id, starts, writes, latencies = chain.run_id, chain.starts, chain.writes, chain.latencies
    slow = sorted(range(len(latencies)), key=lambda i: -latencies[i])[:5]
    plain = [d for _, d, r in turns if not r]
    scans = [d for _, d, r in turns if r] or [0.0]
    print(f"  engine turns: {len(plain)} without a rescan, p50 {statistics.median(plain) * 1000:.1f} ms, max "
          f"{max(plain) * 1000:.0f} ms; {len(turns) - len(plain)} with one, p50 {statistics.median(scans) * 1000:.0f}"
          f" ms, max {max(scans) * 1000:.0f} ms")  # fmt: skip
    for i in slow:
        start, end = starts[i], starts[i] + latencies[i]
        pod, nxt = (names.attempt_name(run_id, f"s{k}", 1) for k in (i, i + 1))
        event = min((t for t, n, phase in seen if n == pod and phase == "Succeeded"), default=start)
        create = min((t for t, n in sent if n == nxt), default=start)
        around = [r for r in fake.requests if r.time <= end and r.time + r.duration >= start - 1 and r.duration > 0.02]
        during = [
            f"{d * 1000:.0f} ms{' (rescan)' if r else ''}" for t, d, r in turns if start - 1 <= t <= end and d > 0.005
        ]
        print(f"  step #{i}, {latencies[i] * 1000:.0f} ms: the fake's status write took {writes[i] * 1000:.0f} ms; the "
              f"event reached the executor after {(event - start) * 1000:.0f} ms, its create left after "
              f"{(create - start) * 1000:.0f} ms")  # fmt: skip
        print("    the fake's requests over 20 ms around it: "
              + (", ".join(f"{r.verb} {r.resource} {r.duration * 1000:.0f} ms" for r in around) or "none"))  # fmt: skip
        print("    engine turns over 5 ms around it: " + (", ".join(during) or "none"))
    taken, samples = profile
    print(f"  the controller's stacks, sampled {taken} times during the chain; the busiest:")
    print(busiest(samples, top=12))
    for i in slow[:2]:
        print(f"  during step #{i}:")
        print(busiest(samples, starts[i], starts[i] + latencies[i], top=5))


@dataclass
class Chain:
    """The measured chain: its run, and for each step when the status was written (`starts`), how long the write
    took (`writes`) and how long until the next create arrived (`latencies`)."""

    run_id: str
    starts: list[float] = field(default_factory=list)
    writes: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)


def reaction(fake: Any, ask: Any, chain: int) -> Chain:
    """Each step: mark the chain's pod Running, then Succeeded at t0; the time until the next step's create arrives
    (the first pod create the fake records after t0: nothing else creates pods meanwhile)."""
    from odin.controller.executors.kubernetes import names
    from odin.testing.kube.fake_resources import PODS

    run_id = ask("chain", chain)

    def pod(step: int) -> dict[str, Any] | None:
        return fake.get_object(PODS, NAMESPACE, names.attempt_name(run_id, f"s{step}", 1))  # type: ignore[no-any-return]

    starts: list[float] = []
    writes: list[float] = []
    latencies: list[float] = []
    wait(lambda: pod(0) is not None, 60, "the chain's first pod was not created", 0.01)
    for step in range(chain):
        current = pod(step)
        assert current is not None
        set_phase(fake, current, "Running")
        time.sleep(0.1)  # let RUNNING be recorded, so that the next write is the success alone
        cursor = len(fake.requests)
        t0 = time.time()
        set_phase(fake, current, "Succeeded")
        written = time.time()
        arrived = None
        deadline = time.monotonic() + 30
        while arrived is None:
            end = len(fake.requests)
            for i in range(cursor, end):
                r = fake.requests[i]
                if r.verb == "create" and r.resource == "pods":
                    arrived = r.time
                    break
            cursor = end
            if time.monotonic() > deadline:
                raise TimeoutError(f"step {step + 1} was not created")
            time.sleep(0.001)
        starts.append(t0)
        writes.append(written - t0)
        latencies.append(arrived - t0)
    wait(lambda: pod(chain) is not None, 30, "the chain's last pod was not created", 0.01)
    last = pod(chain)
    assert last is not None
    set_phase(fake, last, "Succeeded")
    return Chain(run_id, starts, writes, latencies)


if __name__ == "__main__":
    raise SystemExit(main())
