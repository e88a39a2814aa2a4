"""Which stored artifacts may go: a pure function of the runs, what they reference, and a policy.

Because blobs are shared between runs (content addressing), "delete run 12's artifacts" is wrong: run 40 may have
produced the same model file. The rule here is the only safe one: a digest may be deleted only when *no kept run*
references it. A run is kept when the policy keeps it by count (the last `keep_runs` runs of its pipeline) *or* by
age (younger than `keep_days`), and always while it has not finished (its outputs are still being recorded) or is
pinned. No clock, store or database here: the caller lists the runs (with tree manifests expanded to the files they
reference, see `trees.Tree.digests`) and `now`, and gets back what to delete, so the policy is tested exhaustively
without any of them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Keep the last `keep_runs` runs of each pipeline and every run younger than `keep_days`; None turns a rule off.
    With both off, everything is kept (retention is opt-in)."""

    keep_runs: int | None = None
    keep_days: float | None = None

    def __post_init__(self) -> None:
        if self.keep_runs is not None and self.keep_runs < 0:
            raise ValueError("keep_runs must not be negative")
        if self.keep_days is not None and self.keep_days < 0:
            raise ValueError("keep_days must not be negative")

    @property
    def keeps_everything(self) -> bool:
        return self.keep_runs is None and self.keep_days is None


@dataclass(frozen=True, slots=True)
class RunArtifacts:
    """One run as retention sees it: pipeline, when it was created, whether it is over, and every digest it
    references (its artifacts, the files of its trees, its inputs)."""

    run_id: str
    pipeline: str
    created_at: datetime
    digests: frozenset[str]
    finished: bool = True
    pinned: bool = False


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    """What the policy lets go: the runs whose artifacts expire, and the digests no kept run references."""

    expired_runs: tuple[str, ...]
    deletable: frozenset[str]
    kept_runs: tuple[str, ...]


def plan_retention(runs: Iterable[RunArtifacts], policy: RetentionPolicy, now: datetime) -> RetentionPlan:
    """Apply `policy` at `now` (timezone-aware like the runs' `created_at`)."""
    by_pipeline: dict[str, list[RunArtifacts]] = defaultdict(list)
    for run in runs:
        by_pipeline[run.pipeline].append(run)

    kept: list[RunArtifacts] = []
    expired: list[RunArtifacts] = []
    horizon = None if policy.keep_days is None else now - timedelta(days=policy.keep_days)
    for pipeline_runs in by_pipeline.values():
        # Newest first; the run id breaks ties between runs created in the same instant.
        pipeline_runs.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        for rank, run in enumerate(pipeline_runs):
            keep = (
                policy.keeps_everything
                or not run.finished
                or run.pinned
                or (policy.keep_runs is not None and rank < policy.keep_runs)
                or (horizon is not None and run.created_at >= horizon)
            )
            (kept if keep else expired).append(run)

    referenced = frozenset().union(*(run.digests for run in kept)) if kept else frozenset()
    candidates = frozenset().union(*(run.digests for run in expired)) if expired else frozenset()
    return RetentionPlan(
        expired_runs=tuple(sorted(run.run_id for run in expired)),
        deletable=candidates - referenced,
        kept_runs=tuple(sorted(run.run_id for run in kept)),
    )
