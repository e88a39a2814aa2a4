"""Retention of events and logs: the leader lets go of history older than `ODIN_EVENTS_KEEP_DAYS` /
`ODIN_LOGS_KEEP_DAYS`, in the background, a small batch at a time.

It runs beside the artifact sweep on the retention worker (`controller/retention.py`), on the leader only. Each tick
works for at most `budget` seconds: events go in batches of `store.history.BATCH`, each its own short transaction
(`store/history.py` says why no lock lasts), and logs a run directory at a time. When the budget runs out the
tick says so, with where it stopped (`Progress`), and the worker comes back at once from there rather than after
its interval, so a first sweep over a year of events finishes in minutes of background work, never as one long
statement, and a stop request waits for one batch at most. What is kept and how a run says its history is gone is
in `store/history.py`.

Logs are files on this replica's data directory: `<data>/tasks/<run id>/` holds a run's task logs and the local
executor's records of its attempts (pid, exit code). A directory is deleted only when the store knows its run and
the run ended before the horizon: a run still active, or a directory no run accounts for, is left alone. Copies of
Kubernetes logs in the artifact store (`logs/<run>/...`) follow the artifact store's own lifecycle rules.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from odin.controller.store import history
from odin.controller.store.db import DbEngine

log = logging.getLogger(__name__)

LOG_CHUNK = 500
"""Run directories looked up in the store per query."""


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """Days of events and of logs to keep (None: keep them all)."""

    events_keep_days: float | None = None
    logs_keep_days: float | None = None

    @property
    def keeps_everything(self) -> bool:
        return self.events_keep_days is None and self.logs_keep_days is None


@dataclass(slots=True)
class Progress:
    """Where a pass that ran out of budget stopped, so the next tick goes on from there rather than over what it
    already looked at (rows it kept, dead rows not vacuumed yet, directories of runs still young)."""

    events_after: int = 0  # the last event id looked at
    logs_after: str = ""  # the last run directory looked at, in name order


@dataclass(slots=True)
class PruneReport:
    events_deleted: int = 0
    log_dirs_deleted: int = 0
    more: bool = False  # the budget ran out with work left: tick again soon, from `progress`
    progress: Progress = field(default_factory=Progress)
    runs_with_logs_pruned: list[str] = field(default_factory=list)


def prune_once(
    db: DbEngine,
    policy: HistoryPolicy,
    *,
    tasks_dir: Path | None,
    now: datetime | None = None,
    budget: float = 5.0,
    batch: int = history.BATCH,
    clock: Callable[[], float] = time.monotonic,
    resume: Progress | None = None,
) -> PruneReport:
    """Delete what the policy no longer keeps, for at most `budget` seconds (at least one batch), from `resume` (the
    `progress` of a report that said `more`) or from the start."""
    now = now or datetime.now(UTC)
    start = resume or Progress()
    report = PruneReport(progress=Progress(start.events_after, start.logs_after))
    deadline = clock() + budget
    if policy.events_keep_days is not None and report.progress.events_after >= 0:
        before = now - timedelta(days=policy.events_keep_days)
        while True:
            done = history.prune_events(db, before, now, after=report.progress.events_after, batch=batch)
            report.events_deleted += done.deleted
            if done.resume_after is None:
                report.progress.events_after = -1  # this pass is through the events
                break
            report.progress.events_after = done.resume_after
            if clock() >= deadline:
                report.more = True
                break
    if policy.logs_keep_days is not None and tasks_dir is not None and not report.more:
        before = now - timedelta(days=policy.logs_keep_days)
        report.more = _prune_logs(db, tasks_dir, before, now, deadline, clock, report)
    if report.events_deleted or report.log_dirs_deleted:
        log.info(
            "retention: %d event(s) and the logs of %d run(s) deleted%s",
            report.events_deleted,
            report.log_dirs_deleted,
            " (more left for the next tick)" if report.more else "",
        )
    return report


def _prune_logs(
    db: DbEngine,
    tasks_dir: Path,
    before: datetime,
    now: datetime,
    deadline: float,
    clock: Callable[[], float],
    report: PruneReport,
) -> bool:
    """Delete the log directories of runs that ended before `before`, in name order from where the last tick
    stopped; True when the budget ran out first (`report.progress.logs_after` says where)."""
    try:
        with os.scandir(tasks_dir) as entries:
            after = report.progress.logs_after
            names = sorted(e.name for e in entries if e.name > after and e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return False
    for start in range(0, len(names), LOG_CHUNK):
        chunk = names[start : start + LOG_CHUNK]
        _delete_logs(db, tasks_dir, chunk, before, now, report)
        report.progress.logs_after = chunk[-1]
        if clock() >= deadline and start + LOG_CHUNK < len(names):
            return True
    return False


def _delete_logs(
    db: DbEngine, tasks_dir: Path, names: list[str], before: datetime, now: datetime, report: PruneReport
) -> None:
    ended = history.ended_before(db, names, before)
    deleted = []
    for run in ended:
        shutil.rmtree(tasks_dir / run.run_id, ignore_errors=True)
        if not (tasks_dir / run.run_id).exists():
            deleted.append(run.run_id)
    history.mark_logs_pruned(db, deleted, now)
    report.log_dirs_deleted += len(deleted)
    report.runs_with_logs_pruned += deleted
