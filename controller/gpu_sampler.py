"""Sampling running tasks' GPUs: every `ODIN_GPU_SAMPLE_INTERVAL` seconds, one NVML pass for all of them.

Which GPUs are a task's: those its own processes run on, when Midgard's attribution (a process's ODIN_* environment)
finds any in the sample; otherwise those the executor gave it (the local executor's CUDA_VISIBLE_DEVICES, through
`Executor.gpu_holdings`). A task that never got GPUs from the executor but whose processes show up on one (a
`num_gpus: 0` task that opens every GPU it sees) is sampled too.

Each sample folds into the attempt's `UsageTracker` and the summaries of every sampled attempt are written in ONE
transaction (`store/gpu_usage.py`), so the API shows them live; an attempt's summary is written a last time with
`running: false` when the executor releases its GPUs (or, for attribution-only tasks, when its processes have been
gone for a few samples). A task newly flagged idle also gets a `task.gpu_idle` event, published on the bus.

The source is injected (`GpuSampleSource`): the controller may not import Midgard; `odin serve` hands it Midgard's
in-process collection (`odin.cli.local_gpus.local_gpu_sampler`), or with agents configured the API's aggregation of
them (`odin.cli.cluster_gpus.cluster_gpu_sampler`: Kubernetes tasks are sampled from attribution alone). Runs only on
the leader, beside the engine.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from odin.controller.executors.base import Executor
from odin.controller.gpu_usage import IdlePolicy, UsageTracker
from odin.controller.gpus import GpuHolding, GpuReading, GpuSample, GpuSampleSource
from odin.controller.periodic import PeriodicWorker
from odin.controller.store.db import DbEngine, StoreUnavailable
from odin.controller.store.gpu_usage import UsageUpdate, record_gpu_usage, recorded_gpu_usage

log = logging.getLogger(__name__)

Key = tuple[str, str, int]  # (run id, task, attempt)

# Samples an attribution-only attempt may go unseen before its summary is closed (a process restarting, a CUDA
# context not yet created): one missed sample must not split one attempt's usage in two.
_UNSEEN_GRACE = 2


class GpuSampler:
    """Samples on its own thread (`start`/`stop`); `sample_once` is the whole of one tick (tests, benchmarks)."""

    def __init__(
        self,
        db: DbEngine,
        executor: Executor,
        source: GpuSampleSource,
        *,
        interval: float,
        policy: IdlePolicy,
        publish: Callable[[dict[str, Any]], None] | None = None,
        node: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.executor = executor
        self.source = source
        self.interval = interval
        self.policy = policy
        self.publish = publish
        self.node = node or socket.gethostname()
        self.clock = clock
        self._trackers: dict[Key, UsageTracker] = {}
        self._unseen: dict[Key, int] = {}  # attribution-only attempts: ticks since last seen
        self._given: set[Key] = set()  # attempts the executor gave GPUs to
        self._pending_events: list[dict[str, Any]] = []  # kept across a store outage
        # A sampler problem must never reach the tasks or the engine: failures are logged (rate-limited) and retried.
        self._worker = PeriodicWorker(
            "odin-gpu-sampler",
            self.sample_once,
            interval=interval,
            pause=lambda: self.interval,
            logger=log,
            what="GPU usage sampling",
        )

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop(10)

    # -- one tick -------------------------------------------------------------------------------------------------
    def sample_once(self) -> None:
        holdings = {(h.run_id, h.task, h.attempt): h for h in self.executor.gpu_holdings()}
        attributed: dict[Key, list[GpuReading]] = {}
        sample = self._read()  # even with no holdings: a task may use GPUs it was not given
        now = self.clock()
        by_index = {r.index: r for r in sample.gpus}
        held_attempt = {(run, task): attempt for (run, task, attempt) in holdings}
        for reading in sample.gpus:
            for holder in reading.holders:
                attempt = held_attempt.get((holder.run_id, holder.task), holder.attempt)
                if attempt is None:
                    continue
                readings = attributed.setdefault((holder.run_id, holder.task, attempt), [])
                if reading not in readings:
                    readings.append(reading)

        updates: list[UsageUpdate] = []
        events = self._pending_events
        self._pending_events = []
        for key in holdings.keys() | attributed.keys():
            holding = holdings.get(key)
            readings = attributed.get(key) or _given(holding, by_index)
            if not readings:
                continue
            tracker = self._trackers.get(key)
            if tracker is None:
                tracker = self._trackers[key] = self._tracker(key)
            self._unseen.pop(key, None)
            if holding is not None:
                self._given.add(key)
            since = max(holding.since, now - self.interval) if holding is not None else now - self.interval
            if tracker.add(now, readings, since=since):
                events.append(self._idle_event(key, tracker, readings))
            updates.append(UsageUpdate(*key, tracker.summary(running=True)))
        for key in [k for k in self._trackers if k not in holdings and k not in attributed]:
            if self._ended(key):
                tracker = self._trackers.pop(key)
                self._unseen.pop(key, None)
                self._given.discard(key)
                updates.append(UsageUpdate(*key, tracker.summary(running=False)))
        self._record(updates, events)

    def _tracker(self, key: Key) -> UsageTracker:
        """A new tracker, or one continuing what this attempt recorded before a restart of the controller."""
        try:
            stored = recorded_gpu_usage(self.db, *key)
        except StoreUnavailable:
            stored = None
        if stored is not None:
            try:
                return UsageTracker.resume(stored, self.policy, node=self.node)
            except (KeyError, TypeError, ValueError) as e:  # written by another version: start afresh
                log.warning("cannot continue the recorded GPU usage of %s: %s", key, e)
        return UsageTracker(key[2], self.policy, node=self.node)

    def _read(self) -> GpuSample:
        try:
            return self.source()
        except Exception as e:  # NVML failing mid-run: no sample this tick, the figures so far stand
            log.warning("reading GPUs for usage sampling failed: %s", e)
            return GpuSample()

    def _ended(self, key: Key) -> bool:
        """An attempt not seen this tick: ended at once if the executor had given it GPUs (it released them: the
        attempt is over), after `_UNSEEN_GRACE` ticks if it was only ever seen through its processes."""
        if key in self._given:
            return True
        misses = self._unseen.get(key, 0) + 1
        self._unseen[key] = misses
        return misses > _UNSEEN_GRACE

    def _idle_event(self, key: Key, tracker: UsageTracker, readings: list[GpuReading]) -> dict[str, Any]:
        run_id, task, attempt = key
        idle = tracker.summary(running=True)["idle"] or {}
        return {
            "kind": "task.gpu_idle",
            "run_id": run_id,
            "task": task,
            "data": {
                "attempt": attempt,
                "gpus": [r.uuid for r in readings],
                "since": idle.get("since"),
                "threshold_percent": self.policy.utilization_percent,
                "after_seconds": self.policy.after_seconds,
                "message": f"GPU{'s' if len(readings) > 1 else ''} at or under "
                f"{self.policy.utilization_percent:g}% utilisation for {self.policy.after_seconds:g} s "
                "(the task is left running)",
            },
        }

    def _record(self, updates: list[UsageUpdate], events: list[dict[str, Any]]) -> None:
        try:
            stored = record_gpu_usage(self.db, updates, events)
        except StoreUnavailable as e:
            log.warning("cannot record GPU usage (%s); the next sample writes it", e)
            self._pending_events = events + self._pending_events
            return
        if self.publish is not None:
            for event in stored:
                self.publish(event)


def _given(holding: GpuHolding | None, by_index: dict[int, GpuReading]) -> list[GpuReading]:
    if holding is None:
        return []
    return [by_index[i] for i in holding.indices if i in by_index]
