"""What one task attempt used of its GPUs, folded from readings one sample at a time (pure: no clock, no I/O).

The sampler (`gpu_sampler.py`) hands each attempt's readings to its `UsageTracker` every `ODIN_GPU_SAMPLE_INTERVAL`
seconds; the tracker keeps only running figures (sums, maxima, the GPUs seen), so an attempt that runs for weeks
costs the same memory as one that runs for a minute, and `summary()` is what the task run records (`gpu_usage`):

- **GPU-seconds**: each sample stands for the time since the previous one (the first, for the time since the GPUs
  were given, at most one interval) times the number of GPUs the attempt had in it;
- **utilisation**: mean weighted the same way over every (GPU, sample), and the peak of any one GPU;
- **memory**: the peak in use on any one of its GPUs (what tells whether the job fits the card);
- **idle**: the attempt is flagged once every GPU it has stays at or under the idle threshold for `idle_after`
  seconds. The flag stays (it happened), `idle.since` says when the stretch began and `idle.active` whether it
  still lasts. Nothing is ever killed for it: a task may legitimately wait for data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from odin.controller.gpus import GpuReading


@dataclass(frozen=True, slots=True)
class IdlePolicy:
    """When a task's GPUs count as idle: at or under `utilization_percent` for `after_seconds` in a row."""

    utilization_percent: float = 5.0
    after_seconds: float = 600.0


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _epoch(text: Any) -> float | None:
    return datetime.fromisoformat(text).timestamp() if isinstance(text, str) else None


class UsageTracker:
    """One attempt's running figures. `add` one sample's readings of its GPUs; `summary()` at any time."""

    def __init__(self, attempt: int, policy: IdlePolicy, *, node: str | None = None) -> None:
        self.attempt = attempt
        self.policy = policy
        self.node = node
        self.gpus: dict[str, dict[str, Any]] = {}  # uuid -> {uuid, index, model}, in order first seen
        self.samples = 0
        self.gpu_seconds = 0.0
        self._util_weighted = 0.0  # sum of utilisation x seconds over readings that had one
        self._util_seconds = 0.0
        self.util_peak: int | None = None
        self.memory_peak: int | None = None
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.idle_since: float | None = None  # start of the current stretch at or under the threshold
        self.idle_flagged_at: float | None = None
        self.idle_flagged_since: float | None = None

    @classmethod
    def resume(cls, stored: dict[str, Any], policy: IdlePolicy, *, node: str | None = None) -> UsageTracker:
        """Continue from a summary this attempt already recorded (a restarted controller re-attached to a task that
        kept running): the figures go on from there instead of starting again at zero. The time between the last
        recorded sample and the next one counts as one stretch (the controller was down; the GPUs were still held);
        the utilisation mean is taken as weighted by the GPU-seconds recorded."""
        tracker = cls(int(stored["attempt"]), policy, node=node)
        for gpu in stored.get("gpus") or []:
            tracker.gpus[str(gpu["uuid"])] = {"uuid": gpu["uuid"], "index": gpu["index"], "model": gpu["model"]}
        tracker.samples = int(stored.get("samples") or 0)
        tracker.gpu_seconds = float(stored.get("gpu_seconds") or 0.0)
        mean = stored.get("utilization_mean_percent")
        if mean is not None:
            tracker._util_seconds = tracker.gpu_seconds
            tracker._util_weighted = float(mean) * tracker.gpu_seconds
        tracker.util_peak = stored.get("utilization_peak_percent")
        tracker.memory_peak = stored.get("memory_peak_bytes")
        tracker.first_at = _epoch(stored.get("first_sample_at"))
        tracker.last_at = _epoch(stored.get("last_sample_at"))
        idle = stored.get("idle")
        if idle:
            tracker.idle_flagged_at = _epoch(idle.get("flagged_at"))
            tracker.idle_flagged_since = _epoch(idle.get("since"))
            tracker.idle_since = tracker.idle_flagged_since if idle.get("active") else None
        return tracker

    def add(self, now: float, readings: Sequence[GpuReading], *, since: float | None = None) -> bool:
        """Fold one sample in; `since`: when the GPUs were given (bounds the first sample's share of time).
        True when this sample raised the idle flag (the caller records a `task.gpu_idle` event)."""
        if not readings:
            return False
        previous = self.last_at
        if previous is None:
            # The first reading stands for the time since the attempt got its GPUs (the sampler bounds it to one
            # interval); without `since`, for no time at all.
            previous = since if since is not None else now
        dt = max(0.0, now - previous)
        self.samples += 1
        if readings[0].node:  # read through an agent: the GPU's node, not the sampler's
            self.node = readings[0].node
        self.first_at = now if self.first_at is None else self.first_at
        self.last_at = now
        self.gpu_seconds += dt * len(readings)
        all_idle = True
        for r in readings:
            self.gpus.setdefault(r.uuid, {"uuid": r.uuid, "index": r.index, "model": r.name})
            if r.utilization_percent is not None:
                self._util_weighted += r.utilization_percent * dt
                self._util_seconds += dt
                self.util_peak = max(self.util_peak or 0, r.utilization_percent)
                if r.utilization_percent > self.policy.utilization_percent:
                    all_idle = False
            else:
                all_idle = False  # cannot tell (MIG): never flagged on a guess
            if r.memory_used_bytes is not None:
                self.memory_peak = max(self.memory_peak or 0, r.memory_used_bytes)
        if not all_idle:
            self.idle_since = None
            return False
        if self.idle_since is None:
            self.idle_since = previous  # the reading covers the time since the previous one
        if self.idle_flagged_at is None and now - self.idle_since >= self.policy.after_seconds:
            self.idle_flagged_at, self.idle_flagged_since = now, self.idle_since
            return True
        return False

    @property
    def idle_flagged(self) -> bool:
        return self.idle_flagged_at is not None

    def summary(self, *, running: bool) -> dict[str, Any]:
        """The JSON recorded on the task run (`task_runs.gpu_usage`) and served as the task's `gpu_usage`."""
        mean = self._util_weighted / self._util_seconds if self._util_seconds > 0 else None
        if mean is None and self.util_peak is not None:
            mean = float(self.util_peak)  # a single instant reading: no time to weigh it by
        idle: dict[str, Any] | None = None
        if self.idle_flagged_at is not None and self.idle_flagged_since is not None:
            idle = {
                "since": _iso(self.idle_flagged_since),
                "flagged_at": _iso(self.idle_flagged_at),
                "active": self.idle_since is not None,
                "threshold_percent": self.policy.utilization_percent,
                "after_seconds": self.policy.after_seconds,
            }
        return {
            "attempt": self.attempt,
            "running": running,
            "node": self.node,
            "gpus": list(self.gpus.values()),
            "samples": self.samples,
            "gpu_seconds": round(self.gpu_seconds, 1),
            "utilization_mean_percent": None if mean is None else round(mean, 1),
            "utilization_peak_percent": self.util_peak,
            "memory_peak_bytes": self.memory_peak,
            "first_sample_at": None if self.first_at is None else _iso(self.first_at),
            "last_sample_at": None if self.last_at is None else _iso(self.last_at),
            "idle": idle,
        }
