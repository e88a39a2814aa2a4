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
the run ended before the horizon: a run still active, or a directory no run accounts for, is left alone.

The Kubernetes executor also copies each log into the artifact store (`logs/<run>/<file>`, `artifacts/
log_records.py`), since a replica's data directory is neither shared nor kept across restarts. Those copies follow
the same rule, in a third pass driven by the store itself: it lists the run folders under `logs/` in the store's
order, a batch of `LOG_CHUNK` at a time from where the last tick stopped, asks the database which of those runs
ended before the horizon, marks them `logs_pruned_at` (a short transaction of its own) and then deletes their folders, a
`DeleteObjects` of at most 1,000 keys at a time on S3. The listing is the state: a folder deleted is not listed
again, so a pass that a crash or a failing store interrupted is finished by the next one, started from scratch, with
nothing but time lost (marking before deleting is what keeps the mark when the crash falls between the two; the
mark only says what the policy already decided). Only that folder is ever deleted -- never a blob, never an outputs
record (`runs/...`), never the folder of a run the database does not know or of a run still young -- and the run
folder is deleted by its name followed by "/", so run `p-1` never takes `p-10`'s logs with it.
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

from odin.controller.artifacts import log_records
from odin.controller.artifacts.errors import ArtifactError
from odin.controller.artifacts.store import ArtifactStore
from odin.controller.store import history
from odin.controller.store.db import DbEngine

log = logging.getLogger(__name__)

LOG_CHUNK = 500
"""Run directories (or run folders of log copies in the artifact store) looked up in the database per query."""


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
    copies_after: str = (
        ""  # the last run folder of log copies in the artifact store looked at, in the store's listing order
    )


@dataclass(slots=True)
class PruneReport:
    events_deleted: int = 0
    log_dirs_deleted: int = 0
    more: bool = False  # the budget ran out with work left: tick again soon, from `progress`
    progress: Progress = field(default_factory=Progress)
    runs_with_logs_pruned: list[str] = field(default_factory=list)
    log_copies_deleted: int = 0  # records deleted from the artifact store
    runs_with_log_copies_pruned: list[str] = field(default_factory=list)


def prune_once(
    db: DbEngine,
    policy: HistoryPolicy,
    *,
    tasks_dir: Path | None,
    store: ArtifactStore | None = None,
    now: datetime | None = None,
    budget: float = 5.0,
    batch: int = history.BATCH,
    clock: Callable[[], float] = time.monotonic,
    resume: Progress | None = None,
) -> PruneReport:
    """Delete what the policy no longer keeps, for at most `budget` seconds (at least one batch), from `resume` (the
    `progress` of a report that said `more`) or from the start; `store`: the artifact store holding copies of logs."""
    now = now or datetime.now(UTC)
    start = resume or Progress()
    report = PruneReport(progress=Progress(start.events_after, start.logs_after, start.copies_after))
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
    if policy.logs_keep_days is not None and store is not None and not report.more:
        before = now - timedelta(days=policy.logs_keep_days)
        report.more = _prune_copies(db, store, before, now, deadline, clock, report)
    if report.events_deleted or report.log_dirs_deleted or report.runs_with_log_copies_pruned:
        log.info(
            "retention: %d event(s), the logs of %d run(s) and %d log copies of %d run(s) in the artifact store "
            "deleted%s",
            report.events_deleted,
            report.log_dirs_deleted,
            report.log_copies_deleted,
            len(report.runs_with_log_copies_pruned),
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


def _prune_copies(
    db: DbEngine,
    store: ArtifactStore,
    before: datetime,
    now: datetime,
    deadline: float,
    clock: Callable[[], float],
    report: PruneReport,
) -> bool:
    """Delete the artifact store's log copies of runs that ended before `before`, a batch of run folders at a time
    from where the last tick stopped; True when the budget ran out first. A store that fails ends this pass with a
    warning: the next tick's pass, from the start, finishes it (see the module docstring)."""
    try:
        while True:
            names = store.record_folders(log_records.FOLDER, after=report.progress.copies_after, limit=LOG_CHUNK)
            if not names:
                report.progress.copies_after = ""
                return False
            ended = [r.run_id for r in history.ended_before(db, names, before)]
            history.mark_logs_pruned(db, ended, now)
            for run_id in ended:
                report.log_copies_deleted += store.delete_records(log_records.run_folder(run_id))
                report.runs_with_log_copies_pruned.append(run_id)
            report.progress.copies_after = names[-1]
            if len(names) < LOG_CHUNK:
                report.progress.copies_after = ""
                return False
            if clock() >= deadline:
                return True
    except ArtifactError as e:
        log.warning(
            "retention: the log copies in the artifact store (%s) could not all be deleted, the next pass goes on: %s",
            store.kind,
            e.message,
        )
        report.progress.copies_after = ""
        return False
