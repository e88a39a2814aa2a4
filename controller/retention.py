"""The retention sweep: the leader lets go of the artifacts its repositories' policies no longer keep (and, through
`history_retention`, of the events and logs `ODIN_EVENTS_KEEP_DAYS` / `ODIN_LOGS_KEEP_DAYS` no longer keep, the
artifact store's copies of logs included).

Once per `ODIN_ARTIFACTS_RETENTION_INTERVAL` the leader, for each repository (and the runs of none), reads every run
and the artifact records of its tasks (`store/retention.py`) and asks the pure `plan_retention` which runs expire
under that repository's policy. The store is one content-addressed namespace for every repository, so what it then
deletes is what the expired runs reference and nothing that any kept run of *any* repository, or any pipeline
directory stored for pods, references; then it marks the expired runs (their `artifacts_expired_at`, and
`gone: true` on each of their artifact records) in one transaction.

What a run references is every artifact record of its tasks: the digest (for a directory, the tree manifest and every
file it lists), or for the local executor's records, which live in the run's own outputs directory and not in the
store, the recorded path. A task reused by a rerun, or taken from the cache, carries the very records of the run it
came from, so a kept run keeps them: nothing a kept run (or its cache entries) references is ever deleted, however
old the run that produced it. A directory that cannot be read back (its manifest is missing) is treated as
referencing nothing more than itself; a store that fails mid-sweep leaves the runs unmarked, and the next sweep tries
again (deleting is idempotent).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from odin.controller.artifacts.digest import is_digest
from odin.controller.artifacts.errors import ArtifactError
from odin.controller.artifacts.retention import RetentionPolicy, RunArtifacts, plan_retention
from odin.controller.artifacts.settings import MissingCredential
from odin.controller.artifacts.store import ArtifactStore
from odin.controller.artifacts.trees import WORK_TREES, read_tree, work_tree_record
from odin.controller.history_retention import HistoryPolicy, Progress, prune_once
from odin.controller.periodic import PeriodicWorker
from odin.controller.store import retention as rows
from odin.controller.store.db import DbEngine

log = logging.getLogger(__name__)
PATH = "path:"  # a local executor's record: its file under <data>/outputs, not a blob


@dataclass(frozen=True, slots=True)
class SweepReport:
    expired_runs: tuple[str, ...]
    deleted: int


def references(store: ArtifactStore | None, artifacts: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> set[str]:
    """Every blob (and local path) one run's artifact records reference; records already gone reference nothing."""
    found: set[str] = set()
    for records in artifacts.values():
        for record in records.values():
            if record.get("gone"):
                continue
            location = str(record.get("location") or "")
            if "://" not in location and location:
                found.add(PATH + location)
                continue
            digest = str(record.get("digest") or "")
            if not digest:
                continue
            found.add(digest)
            if record.get("tree") and store is not None:
                try:
                    found |= read_tree(store, digest).digests()
                except ArtifactError as e:
                    log.warning("retention: cannot read tree %s (%s); keeping only the manifest", digest, e)
    return found


def sweep_once(
    db: DbEngine,
    store: ArtifactStore | None,
    default: RetentionPolicy,
    *,
    outputs_dir: Path | None = None,
    now: datetime | None = None,
) -> SweepReport:
    """One sweep over every repository (see the module docstring).

    Each repository's policy decides which of *its* runs expire, but blobs are shared by content across the whole
    store: repository A's expired model may be byte for byte repository B's kept one, or a file of a pipeline
    directory stored for pods (`work_tree_references`). So what may be deleted is what the expired runs reference
    minus what every kept run of every repository (those whose policy keeps everything included) and every stored
    pipeline directory references; the kept runs of other repositories are read only when there is something to
    delete."""
    now = now or datetime.now(UTC)
    policies = {p.repo_id: p for p in rows.policies(db)}
    newly_by_repo: dict[int | None, list[str]] = {}
    candidates: set[str] = set()
    kept: set[str] = set()
    unread: list[int | None] = []  # repositories whose runs are all kept, read only if something may go
    for repo_id in [*policies, None]:
        found = policies.get(repo_id)
        policy = RetentionPolicy(found.keep_runs, found.keep_days) if found is not None else default
        if found is not None and found.keep_runs is None and found.keep_days is None:
            policy = default
        if policy.keeps_everything:
            unread.append(repo_id)
            continue
        outputs = rows.run_outputs(db, repo_id)
        runs = _as_retention(store, outputs)
        plan = plan_retention(runs, policy, now)
        kept_ids = set(plan.kept_runs)
        kept.update(*(r.digests for r in runs if r.run_id in kept_ids))
        candidates |= plan.deletable
        not_marked = {r.run_id for r in outputs if not r.expired}
        newly = [run_id for run_id in plan.expired_runs if run_id in not_marked]
        if newly:
            newly_by_repo[repo_id] = newly
    if not newly_by_repo and not candidates - kept:
        return SweepReport((), 0)
    deletable = candidates - kept
    if deletable:
        for repo_id in unread:
            for run in _as_retention(store, rows.run_outputs(db, repo_id)):
                deletable -= run.digests
        deletable -= work_tree_references(store)
    deleted = _delete(store, deletable, outputs_dir)
    expired: list[str] = []
    for repo_id, newly in newly_by_repo.items():
        rows.mark_expired(db, newly, now)
        expired += newly
        log.info("retention: artifacts of %d run(s) let go (repository %s)", len(newly), repo_id)
    return SweepReport(tuple(expired), deleted)


def work_tree_references(store: ArtifactStore | None) -> set[str]:
    """Every blob of the pipeline directories stored for pods (`executors.kubernetes.transfer.WorkTrees`, one
    record `trees/<git tree id>/digest` each): never a run's artifact, but the same content-addressed blobs, which a
    pod's `odin-work` step downloads for as long as that directory is run. Kept for good (a directory's size is
    bounded by `ODIN_KUBE_WORK_MAX_BYTES`, and pipelines are rerun at old commits)."""
    if store is None:
        return set()
    found: set[str] = set()
    after = ""
    while True:
        page = store.record_folders(WORK_TREES, after=after, limit=1000)
        for oid in page:
            data = store.get_record(work_tree_record(oid), 200)
            digest = data.decode(errors="replace").strip() if data is not None else ""
            if not is_digest(digest):
                continue
            found.add(digest)
            try:
                found |= read_tree(store, digest).digests()
            except ArtifactError as e:
                log.warning("retention: cannot read the stored pipeline directory %s (%s)", digest, e)
        if len(page) < 1000:
            return found
        after = page[-1]


def _as_retention(store: ArtifactStore | None, runs: Iterable[rows.RunOutputs]) -> list[RunArtifacts]:
    return [
        RunArtifacts(
            run_id=r.run_id,
            pipeline=r.pipeline,
            created_at=r.created_at,
            digests=frozenset(references(store, r.artifacts)),
            finished=r.finished,
        )
        for r in runs
    ]


def _delete(store: ArtifactStore | None, deletable: Iterable[str], outputs_dir: Path | None) -> int:
    count = 0
    for item in sorted(deletable):
        if item.startswith(PATH):
            path = Path(item[len(PATH) :])
            # Only what the local executor wrote under its outputs directory, never a path a record merely names.
            if outputs_dir is None or not path.resolve().is_relative_to(outputs_dir.resolve()):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            count += 1
        elif store is not None:
            store.delete(item)
            count += 1
    return count


class RetentionSweeper:
    """Runs `sweep_once` every `interval` seconds on its own thread while this replica leads, and with it the
    retention of events and logs (`history_retention.prune_once`, `history`): when a tick leaves history to delete
    (its time budget ran out), the next tick comes after `BUSY_PAUSE` seconds instead, without another artifact
    sweep until its interval has passed."""

    BUSY_PAUSE = 1.0

    def __init__(
        self,
        db: DbEngine,
        store: Callable[[], ArtifactStore | None],
        default: RetentionPolicy,
        *,
        interval: float,
        outputs_dir: Path | None = None,
        history: HistoryPolicy | None = None,
        tasks_dir: Path | None = None,
    ) -> None:
        """`store` opens the artifact store on the first sweep (boto3 loads only on a replica that leads)."""
        self.db, self.open_store, self.default, self.interval = db, store, default, interval
        self.outputs_dir = outputs_dir
        self.history = history or HistoryPolicy()
        self.tasks_dir = tasks_dir
        self._artifacts_due = 0.0  # monotonic time of the next artifact sweep
        self._history_left: Progress | None = None  # where the last tick ran out of budget (None: it did not)
        self._worker = PeriodicWorker(
            "odin-retention",
            self._sweep,
            interval=interval,
            pause=self._pause,
            logger=log,
            what="retention: the sweep",
        )

    def start(self) -> None:
        self._artifacts_due = 0.0
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop(10)

    def _pause(self) -> float:
        return self.BUSY_PAUSE if self._history_left is not None else self.interval

    def _sweep(self) -> None:
        resume, self._history_left = self._history_left, None
        if time.monotonic() >= self._artifacts_due:
            self._artifacts_due = time.monotonic() + self.interval
            sweep_once(self.db, self.open_store(), self.default, outputs_dir=self.outputs_dir)
        if not self.history.keeps_everything:
            store = self._log_copies_store()
            done = prune_once(self.db, self.history, tasks_dir=self.tasks_dir, store=store, resume=resume)
            self._history_left = done.progress if done.more else None

    def _log_copies_store(self) -> ArtifactStore | None:
        """The artifact store whose log copies `ODIN_LOGS_KEEP_DAYS` prunes; None when logs are kept, or when it
        cannot be opened (said once per tick: events and local logs are pruned all the same)."""
        if self.history.logs_keep_days is None:
            return None
        try:
            return self.open_store()
        except (ArtifactError, MissingCredential) as e:
            log.warning("retention: log copies in the artifact store are not pruned this time: %s", e)
            return None
