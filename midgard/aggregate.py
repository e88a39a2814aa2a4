"""The fan-out: every agent's report at once, each within a timeout, a dead or slow node never holding the answer.

The API's `/v1/nodes` and `/v1/gpus` (and `odinctl nodes/gpus`) read the whole cluster through `Aggregator.readings`.
What it promises, and how:

- **Concurrent, one timeout per agent.** Every agent is asked at the same time (one kept-alive connection per agent,
  `wire.py`); each request is cut at `timeout` seconds, connect to last byte. The original Midgard asked node by
  node with no timeout, so one hung kubelet made the page hang.
- **A bad node is waited for once.** A node whose last try failed (refused, timed out, answered garbage) is still
  refreshed, but in the background: the answer does not wait for it and lists it `reachable: false` with its last
  good reading and that reading's age. So a slow node costs at most one `timeout`, on the first query after it went
  bad; a dead one (connection refused) costs nothing measurable.
- **A burst costs one pass.** A reading younger than `cache_ttl` is reused; concurrent queries share the requests in
  flight instead of sending their own.
- **The embedded default.** Without agents, the API reports the machine it runs on by calling the agent's own
  collection code in a worker thread (`local`), with the same timeout and staleness rules.

Agents are given by a `Discover` callable (a static list, or the Service's EndpointSlices through the Kubernetes
adapter), so this module knows nothing of Kubernetes or of Odin's controller (import-linter keeps midgard apart).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import anyio.to_thread
import msgspec

from odin.midgard.report import NodeReport, decode_report
from odin.midgard.wire import Connection, WireError

log = logging.getLogger(__name__)

REPORT_PATH = "/v1/report"
LOCAL = "local"
"""The key of the in-process source (the embedded default)."""

Collect = Callable[[], NodeReport]
"""The agent's collection, run in-process (blocking: NVML and psutil calls)."""


@dataclass(frozen=True, slots=True)
class Agent:
    """One agent to ask: its base URL and, when discovery knows it, its node's name and readiness."""

    url: str
    node: str | None = None
    ready: bool = True


Discover = Callable[[], Awaitable[Sequence[Agent]]]


@dataclass(frozen=True, slots=True)
class NodeReading:
    """One node as the API shows it now: its last good report (if any) and whether the latest try reached it."""

    key: str
    node: str
    url: str | None
    reachable: bool
    report: NodeReport | None
    error: str | None
    observed_at: datetime | None
    """When the API received `report` (its clock; the agent's own time is `report.sampled_at`)."""
    age_seconds: float | None


@dataclass
class _State:
    agent: Agent
    report: NodeReport | None = None
    observed_at: datetime | None = None
    observed_mono: float = 0.0
    tried_mono: float = float("-inf")
    failing: bool = False
    error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    client: Connection | None = field(default=None, repr=False)


def node_name_of(agent: Agent) -> str:
    """A node's name before its first report: the slice's nodeName, else the URL's host."""
    return agent.node or urlsplit(agent.url).hostname or agent.url


def static(agents: Sequence[Agent]) -> Discover:
    """A fixed list of agents (ODIN_MIDGARD_AGENTS)."""
    fixed = tuple(agents)

    async def discover() -> Sequence[Agent]:
        return fixed

    return discover


class Aggregator:
    """Reads every agent (or this machine) with the rules in the module docstring. One per API process."""

    def __init__(
        self,
        discover: Discover | None,
        *,
        local: Collect | None = None,
        token: Callable[[], str | None] = lambda: None,
        timeout: float = 1.0,
        cache_ttl: float = 2.0,
    ) -> None:
        if (discover is None) == (local is None):
            raise ValueError("give either agents to discover or a local collector")
        self._discover = discover
        self._local = local
        self._token = token
        self.timeout = timeout
        self.cache_ttl = cache_ttl
        self._states: dict[str, _State] = {}
        self._tls: ssl.SSLContext | None = None

    @property
    def embedded(self) -> bool:
        return self._local is not None

    def _connection(self, state: _State) -> Connection:
        """The agent's own kept-alive connection (`wire.py`); one TLS context for all (loading CAs costs ~20 ms)."""
        if state.client is None:
            if self._tls is None and state.agent.url.startswith("https:"):
                self._tls = ssl.create_default_context()
            state.client = Connection(state.agent.url, tls=self._tls)
        return state.client

    async def aclose(self) -> None:
        for state in self._states.values():
            if state.task is not None:
                state.task.cancel()
        tasks = [s.task for s in self._states.values() if s.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for state in self._states.values():
            if state.client is not None:
                state.client.close()
                state.client = None

    async def _agents(self) -> Sequence[Agent]:
        if self._local is not None:
            return (Agent(url=LOCAL),)
        assert self._discover is not None
        return await self._discover()

    async def readings(self) -> list[NodeReading]:
        """Every node, by name: refreshed where stale, within one timeout, bad nodes not waited for."""
        agents = await self._agents()
        keys = {a.url for a in agents}
        for gone in set(self._states) - keys:  # left the Service: forget it (and its request in flight)
            left = self._states.pop(gone)
            if left.task is not None:
                left.task.cancel()
            if left.client is not None:
                left.client.close()
        now = time.monotonic()
        waiting: list[asyncio.Task[None]] = []
        for agent in agents:
            state = self._states.get(agent.url)
            if state is None:
                state = self._states[agent.url] = _State(agent)
            state.agent = agent
            if state.task is None and now - state.tried_mono >= self.cache_ttl:
                state.task = asyncio.create_task(self._refresh(state), name=f"midgard {agent.url}")
            if state.task is not None and not state.failing:
                waiting.append(state.task)
        if waiting:
            # Each refresh ends by its own timeout; the margin only covers scheduling.
            await asyncio.wait(waiting, timeout=self.timeout + 0.5)
        wall = datetime.now(UTC)
        out = [self._reading(self._states[a.url], wall) for a in agents]
        return sorted(out, key=lambda r: (r.node, r.key))

    def _reading(self, state: _State, wall: datetime) -> NodeReading:
        report = state.report
        name = report.node if report is not None else node_name_of(state.agent)
        age = (wall - state.observed_at).total_seconds() if state.observed_at is not None else None
        pending = state.report is None and state.error is None
        return NodeReading(
            key=state.agent.url,
            node=name,
            url=None if state.agent.url == LOCAL else state.agent.url,
            reachable=not state.failing and not pending,
            report=report,
            error="no answer yet" if pending else state.error,
            observed_at=state.observed_at,
            age_seconds=max(0.0, age) if age is not None else None,
        )

    async def _refresh(self, state: _State) -> None:
        url = state.agent.url
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    report = await (self._collect_local() if url == LOCAL else self._fetch(state))
            except TimeoutError:
                self._failed(state, f"no answer within {self.timeout:g} s")
            except AgentError as e:
                self._failed(state, str(e))
            except Exception as e:  # a collector bug must not take the API's view of the cluster down
                log.exception("reading node %s failed", url)
                self._failed(state, f"reading failed: {type(e).__name__}")
            else:
                state.report = report
                state.observed_at = datetime.now(UTC)
                state.observed_mono = time.monotonic()
                state.failing = False
                state.error = None
        finally:
            state.tried_mono = time.monotonic()
            state.task = None

    def _failed(self, state: _State, message: str) -> None:
        if not state.failing or state.error != message:
            log.info("Midgard agent %s unreachable: %s", state.agent.url, message)
        state.failing = True
        state.error = message

    async def _collect_local(self) -> NodeReport:
        assert self._local is not None
        # abandon_on_cancel: a stuck NVML call must not keep the timeout from firing; the thread ends on its own.
        return await anyio.to_thread.run_sync(self._local, abandon_on_cancel=True)

    async def _fetch(self, state: _State) -> NodeReport:
        headers = {"Accept": "application/json"}
        token = self._token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            status, body = await self._connection(state).get(REPORT_PATH, headers)
        except WireError as e:
            raise AgentError(str(e)) from e
        except OSError as e:
            raise AgentError(f"connection failed ({e.strerror or type(e).__name__})") from e
        if status in (401, 403):
            raise AgentError(f"the agent refused the token (HTTP {status}); check ODIN_MIDGARD_TOKEN")
        if status != 200:
            raise AgentError(f"the agent answered HTTP {status}")
        try:
            return decode_report(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            raise AgentError(f"the agent's report is malformed: {e}") from e


class AgentError(Exception):
    """An agent that could not be read; the message says why, for the `error` of its node (no secrets in it)."""


def _reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) <= 120 else text[:117] + "..."
