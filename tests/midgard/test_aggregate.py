"""The fan-out over real HTTP: live, dead (killed) and stalled agents on loopback, with and without the token."""

from __future__ import annotations

import asyncio
import time

from odin.midgard.aggregate import Agent, Aggregator, static
from tests.support.agents import agent_group

TIMEOUT = 0.5
LIVE_TIMEOUT = 3.0
"""Where every live agent of a group must answer in time: 19 agent processes' first answers on a loaded 2-core CI
machine took more than 0.5 s once. A stalled agent never answers, so the wait it costs is this, whatever its size."""


def aggregator(
    urls: list[str], *, token: str | None = None, cache_ttl: float = 0.0, timeout: float = TIMEOUT
) -> Aggregator:
    return Aggregator(static([Agent(url=u) for u in urls]), token=lambda: token, timeout=timeout, cache_ttl=cache_ttl)


def test_dead_and_stalled_nodes_are_listed_with_their_last_reading_and_never_wait_twice() -> None:
    with agent_group(12) as live, agent_group(4) as doomed, agent_group(3, stall=True) as slow:

        async def scenario() -> None:
            agg = aggregator(live.urls + doomed.urls + slow.urls, timeout=LIVE_TIMEOUT)
            try:
                first = await agg.readings()
                by_url = {r.url: r for r in first}
                assert all(by_url[u].reachable and by_url[u].report is not None for u in live.urls + doomed.urls)
                for u in slow.urls:
                    assert not by_url[u].reachable and by_url[u].report is None
                    assert by_url[u].error == f"no answer within {LIVE_TIMEOUT:g} s"

                doomed.kill()
                started = time.monotonic()
                second = await agg.readings()
                # The stalled nodes are not waited for again; the killed ones refuse at once.
                assert time.monotonic() - started < LIVE_TIMEOUT
                by_url = {r.url: r for r in second}
                for u in doomed.urls:
                    r = by_url[u]
                    assert not r.reachable and r.error is not None and r.error.startswith("cannot connect")
                    assert r.report is not None and r.report.node == f"agent-{u.rsplit(':', 1)[1]}", "last good reading"
                    assert r.age_seconds is not None and r.age_seconds >= 0
                assert sum(r.reachable for r in second) == len(live.urls)

                await asyncio.sleep(0.2)
                third = {r.url: r for r in await agg.readings()}
                for u in doomed.urls:
                    assert third[u].age_seconds is not None and third[u].age_seconds >= 0.2, "the reading ages"
            finally:
                await agg.aclose()

        asyncio.run(scenario())


def test_a_node_that_comes_back_is_reachable_again() -> None:
    with agent_group(2, stall=True) as slow, agent_group(1) as fine:

        async def scenario() -> None:
            agg = aggregator(slow.urls)
            try:
                assert not any(r.reachable for r in await agg.readings())
                # The same node name answers again: point the aggregator at a live agent under the stalled URL's key.
                agg._discover = static([Agent(url=fine.urls[0])])
                back = await agg.readings()
                assert [r.reachable for r in back] == [True], "a new agent is waited for once"
            finally:
                await agg.aclose()

        asyncio.run(scenario())


def test_the_token_is_sent_and_a_refusal_says_so() -> None:
    with agent_group(1, token="s3cret-token") as group:

        async def scenario() -> None:
            for token, reachable in (("s3cret-token", True), ("wrong", False), (None, False)):
                agg = aggregator(group.urls, token=token)
                try:
                    [reading] = await agg.readings()
                finally:
                    await agg.aclose()
                assert reading.reachable is reachable
                if not reachable:
                    assert reading.error is not None and "refused the token (HTTP 401)" in reading.error
                    assert "s3cret" not in reading.error

        asyncio.run(scenario())


def test_a_burst_within_the_cache_ttl_costs_one_pass() -> None:
    with agent_group(3) as group:

        async def scenario() -> None:
            agg = aggregator(group.urls, cache_ttl=30.0)
            try:
                first = await agg.readings()
                group.kill()  # were the agents asked again, they would now be unreachable
                burst = await asyncio.gather(*(agg.readings() for _ in range(20)))
                assert all(r.reachable for readings in burst for r in readings)
                assert [r.observed_at for r in burst[-1]] == [r.observed_at for r in first]
            finally:
                await agg.aclose()

        asyncio.run(scenario())


def test_embedded_reads_this_machine_in_process_with_the_same_timeout() -> None:
    from datetime import UTC, datetime

    from odin.midgard.report import NodeReport, SystemReport

    calls: list[float] = []

    def collect() -> NodeReport:
        calls.append(time.monotonic())
        if len(calls) == 2:
            time.sleep(TIMEOUT * 3)  # a stuck NVML call
        return NodeReport(
            node="here", sampled_at=datetime.now(UTC), system=SystemReport(hostname="here"), gpu_unavailable_reason="x"
        )

    async def scenario() -> None:
        agg = Aggregator(None, local=collect, timeout=TIMEOUT, cache_ttl=0.0)
        try:
            [ok] = await agg.readings()
            assert ok.reachable and ok.url is None and ok.node == "here"
            [stuck] = await agg.readings()
            assert not stuck.reachable and stuck.report is not None and stuck.error == f"no answer within {TIMEOUT:g} s"
        finally:
            await agg.aclose()

    asyncio.run(scenario())
