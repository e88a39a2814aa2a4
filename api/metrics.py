"""`/metrics`: Prometheus text format, from three sources.

- process-wide counters and histograms, updated as things happen (HTTP requests here, task durations and webhook
  deliveries in `odin.controller.metrics`);
- values read at scrape time from the store and the controller (runs by status, sync lag per repository), through a
  collector registered per app, so several apps in one process (tests) never clash;
- the WebSocket hub's connection count.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from odin.controller.facade import Controller
from odin.controller.store.db import DbEngine, StoreUnavailable
from odin.controller.store.run_queries import count_by_status
from odin.controller.vocabulary import RunStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

HTTP_REQUESTS = Counter(
    "odin_http_requests", "HTTP requests answered, by method, route template and status.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "odin_http_request_duration_seconds",
    "Time to answer HTTP requests (until the response started), by method and route template.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)


class StoreCollector(Collector):
    """Gauges computed when scraped: runs by status (from the store), sync lag and readiness per repository."""

    def __init__(
        self, db: DbEngine, controller: Controller | None, ws_connections: Callable[[], int] = lambda: 0
    ) -> None:
        self.db = db
        self.controller = controller
        self.ws_connections = ws_connections

    def collect(self) -> Iterator[Metric]:
        runs = GaugeMetricFamily("odin_runs", "Runs in the store, by status.", labels=["status"])
        counts = dict.fromkeys((s.value for s in RunStatus), 0)
        try:
            counts.update(count_by_status(self.db))
        except StoreUnavailable:
            counts = {}
        up = GaugeMetricFamily("odin_store_up", "1 when the store answered this scrape.")
        up.add_metric([], 1 if counts else 0)
        yield up
        for status, n in sorted(counts.items()):
            runs.add_metric([status], n)
        yield runs

        lag = GaugeMetricFamily(
            "odin_sync_lag_seconds", "Seconds since the last successful sync of each repository.", labels=["repo"]
        )
        ready = GaugeMetricFamily("odin_repo_ready", "1 when the last sync reached the repository.", labels=["repo"])
        if self.controller is not None:
            now = time.time()
            for repo in self.controller.repos.values():
                last = repo.poller.last_success
                if last is not None:
                    lag.add_metric([repo.name], max(0.0, now - last))
                outcome = repo.poller.last_outcome
                ready.add_metric([repo.name], 1 if outcome is not None and outcome.error is None else 0)
            leading = GaugeMetricFamily("odin_leader", "1 when this replica runs the engine and the pollers.")
            leading.add_metric([], 1 if self.controller.leading else 0)
            yield leading
        yield lag
        yield ready
        ws = GaugeMetricFamily("odin_websocket_connections", "Open WebSocket connections.")
        ws.add_metric([], self.ws_connections())
        yield ws


class Metrics:
    """Everything `/metrics` serves for one app."""

    def __init__(self, collector: StoreCollector) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)

    def render(self) -> bytes:
        return generate_latest(REGISTRY) + generate_latest(self.registry)
