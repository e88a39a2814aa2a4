"""Midgard aggregation: `GET /v1/gpus`'s fan-out over 100 agents on loopback with 10 of them dead.

Target (issue 10): the answer in <= 500 ms p95. Agents are real HTTP servers on loopback (tests/support/agents.py:
many per process, so 100 fit on a small machine), each answering with a report of 8 GPUs in the agent's format. The
dead ones are killed after a first reading, so they are listed unreachable with their last reading. Every query is a
full fan-out (cache TTL 0) through `GpuService.gpus` -- the fan-out, decoding, attribution and filters the API
handler runs. A second scenario makes the 10 bad nodes stall instead (accept, never answer): after the first query
(which waits one timeout for them) they must not slow the answer either.

Usage: python benchmarks/bench_midgard_aggregate.py [--agents 100] [--bad 10] [--queries 200] [--timeout 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from odin.api.services.gpus import GpuService
from odin.midgard.aggregate import Agent, Aggregator, static
from tests.support.agents import agent_group


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


async def measure(urls: list[str], queries: int, timeout: float, kill: object = None) -> tuple[list[float], int, int]:
    service = GpuService(Aggregator(static([Agent(url=u) for u in urls]), timeout=timeout, cache_ttl=0.0), "static")
    try:
        first = await service.gpus()  # warm: connections opened, every node read once
        if callable(kill):
            kill()
        times = []
        answer = first
        for _ in range(queries):
            started = time.perf_counter()
            answer = await service.gpus()
            times.append(time.perf_counter() - started)
        return times, answer.total, len(answer.unreachable_nodes)
    finally:
        await service.aclose()


def report(name: str, times: list[float], gpus: int, unreachable: int, target: float = 0.5) -> bool:
    ok = p95(times) <= target
    print(
        f"{name}: {len(times)} queries, GPUs listed {gpus}, unreachable nodes {unreachable}; "
        f"p50 {statistics.median(times) * 1000:.1f} ms, p95 {p95(times) * 1000:.1f} ms, "
        f"max {max(times) * 1000:.1f} ms (target p95 <= {target * 1000:.0f} ms: {'ok' if ok else 'MISSED'})"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--bad", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=1.0)
    parser.add_argument("--per-process", type=int, default=30)
    ns = parser.parse_args()
    good = ns.agents - ns.bad
    ok = True
    with ExitStack() as stack:
        groups = [
            stack.enter_context(agent_group(min(ns.per_process, good - i), gpus=8))
            for i in range(0, good, ns.per_process)
        ]
        good_urls = [u for g in groups for u in g.urls]
        dead = stack.enter_context(agent_group(ns.bad, gpus=8))
        slow = stack.enter_context(agent_group(ns.bad, gpus=8, stall=True))
        times, gpus, unreachable = asyncio.run(measure(good_urls + dead.urls, ns.queries, ns.timeout, dead.kill))
        ok &= report(f"{ns.agents} agents, {ns.bad} dead (killed)", times, gpus, unreachable)
        times, gpus, unreachable = asyncio.run(measure(good_urls + slow.urls, ns.queries, ns.timeout))
        ok &= report(f"{ns.agents} agents, {ns.bad} stalled", times, gpus, unreachable)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
