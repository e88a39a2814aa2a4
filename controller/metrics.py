"""Prometheus metrics updated by more than one component, defined once, process-wide.

`odin_webhook_deliveries_total{provider,outcome}` is incremented by `odin.webhooks` (which may import the controller
but not the API); task durations are observed from the engine's events. The API serves them on `/metrics` together
with the metrics it computes at scrape time from the store (runs by status, sync lag; see `odin.api.metrics`).
"""

from __future__ import annotations

import threading
from datetime import datetime

from prometheus_client import Counter, Histogram

from odin.controller.bus import EventDict
from odin.controller.vocabulary import TaskStatus

WEBHOOK_DELIVERIES = Counter(
    "odin_webhook_deliveries",
    "Webhook deliveries answered, by provider and outcome (accepted, ignored, duplicate, rejected, unavailable).",
    ["provider", "outcome"],
)

VALIDATIONS = Counter(
    "odin_pipeline_validations",
    "main.yml files validated (cache hits not counted), by outcome (valid, invalid, timeout, failed).",
    ["outcome"],
)

TASK_DURATION = Histogram(
    "odin_task_duration_seconds",
    "Wall time of task attempts from running to their end, by final status of the attempt.",
    ["status"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400, float("inf")),
)

_ENDED = {TaskStatus.SUCCEEDED.value, TaskStatus.FAILED.value, TaskStatus.CANCELLED.value, TaskStatus.RETRYING.value}


class TaskDurations:
    """A bus subscriber: remembers when each attempt was seen running and observes its duration when it ends.

    Only attempts this process saw start are measured (the engine publishes on the leader): after a restart, the
    attempts that were running are not counted, rather than counted wrong.
    """

    def __init__(self, max_tracked: int = 100_000) -> None:
        self._running: dict[tuple[str, str], datetime] = {}
        self._lock = threading.Lock()
        self._max = max_tracked

    def __call__(self, event: EventDict) -> None:
        if event.get("kind") != "task.status":
            return
        data = event.get("data") or {}
        status = data.get("status")
        key = (str(event.get("run_id")), str(event.get("task")))
        at = event.get("time")
        if not isinstance(at, datetime):
            return
        with self._lock:
            if status == TaskStatus.RUNNING.value:
                if len(self._running) < self._max:
                    self._running[key] = at
                return
            if status not in _ENDED:
                return
            started = self._running.pop(key, None)
        if started is not None:
            TASK_DURATION.labels(status=str(status)).observe(max(0.0, (at - started).total_seconds()))
