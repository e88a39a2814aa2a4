"""Retention of the artifact store's copies of task logs (`ODIN_LOGS_KEEP_DAYS`, `logs/<run>/<file>` records) on the
local-directory store and on S3 (SeaweedFS), with SQLite and Postgres: the copies of runs that ended before the
horizon go in batches, and nothing else does -- no blob, no outputs record, no copy of a young, active or unknown
run, not the copies of `p-10` when `p-1` goes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine as DbEngine

from odin.api.services import runs as run_service
from odin.controller import history_retention
from odin.controller.artifacts import log_records
from odin.controller.artifacts.errors import StoreUnavailable
from odin.controller.artifacts.local import LocalStore
from odin.controller.artifacts.retention import RetentionPolicy
from odin.controller.artifacts.store import ArtifactStore
from odin.controller.history_retention import HistoryPolicy, prune_once
from odin.controller.retention import RetentionSweeper
from odin.controller.store.db import transaction
from odin.controller.store.models import RUNS
from tests.controller.test_history_retention import NOW, new_run
from tests.support.wait import wait_until

POLICY = HistoryPolicy(logs_keep_days=7)
LATER = NOW + timedelta(days=10)  # past the horizon of a run that ended at NOW, not of one that ended at NOW + 9 days


def save_copies(store: ArtifactStore, run_id: str, files: int = 2) -> None:
    for i in range(files):
        store.put_record(log_records.record_key(run_id, f"t{i}.1.log"), f"log {i} of {run_id}\n".encode())


def copies(store: ArtifactStore, run_id: str, files: int = 2) -> int:
    return sum(store.get_record(log_records.record_key(run_id, f"t{i}.1.log"), 1000) is not None for i in range(files))


def test_log_copies_of_old_runs_go_and_nothing_else_does(db: DbEngine, store: ArtifactStore) -> None:
    runs = [new_run(db, f"{i:040x}", finished=NOW) for i in range(1, 11)]
    first, tenth = runs[0], runs[9]
    assert tenth.startswith(first), "the run ids share a prefix: deleting the first must not take the tenth's logs"
    old = runs[:9]
    young = new_run(db, "b" * 40, finished=NOW + timedelta(days=9))
    active = new_run(db, "c" * 40, finished=None)
    for run_id in [*old, young, active, "not-a-run-1"]:
        save_copies(store, run_id)
    # The tenth is young too: it ended a day before the sweep.
    with transaction(db) as conn:
        conn.execute(RUNS.update().where(RUNS.c.id == tenth).values(finished_at=LATER - timedelta(days=1)))
    save_copies(store, tenth)
    # What the run produced, under the same run id: never a log copy, so never deleted.
    blob = store.put_bytes(b"the model of run one")
    store.put_record(f"runs/{first}/train/1", b'{"outputs": {}}')

    report = prune_once(db, POLICY, tasks_dir=None, store=store, now=LATER)

    assert sorted(report.runs_with_log_copies_pruned) == sorted(old)
    assert report.log_copies_deleted == 2 * len(old) and not report.more
    assert all(copies(store, r) == 0 for r in old)
    assert all(copies(store, r) == 2 for r in (tenth, young, active, "not-a-run-1"))
    assert store.exists(blob.digest) and store.get_record(f"runs/{first}/train/1", 100) == b'{"outputs": {}}'
    assert sorted(store.record_folders(log_records.FOLDER)) == sorted([tenth, young, active, "not-a-run-1"])
    assert run_service.get_run(db, first).logs_pruned_at is not None
    assert run_service.get_run(db, tenth).logs_pruned_at is None

    again = prune_once(db, POLICY, tasks_dir=None, store=store, now=LATER)
    assert again.runs_with_log_copies_pruned == [] and again.log_copies_deleted == 0


def test_a_pass_over_log_copies_goes_on_where_the_last_tick_stopped(
    db: DbEngine, store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One run folder a batch and one batch a tick: each folder is looked at once, young ones included."""
    monkeypatch.setattr(history_retention, "LOG_CHUNK", 1)
    young = new_run(db, "1" * 40, finished=NOW + timedelta(days=9))
    old = [new_run(db, f"{c}" * 40, finished=NOW) for c in "234"]
    for run_id in (young, *old):
        save_copies(store, run_id, files=1)
    ticks = iter(range(1000))
    reports = [prune_once(db, POLICY, tasks_dir=None, store=store, now=LATER, budget=0.5, clock=lambda: next(ticks))]
    while reports[-1].more:
        reports.append(
            prune_once(
                db, POLICY, tasks_dir=None, store=store, now=LATER, budget=0.5, clock=lambda: next(ticks),
                resume=reports[-1].progress,
            )
        )  # fmt: skip
    assert len(reports) == 5, "four folders, one a tick, then a tick that finds none after the last"
    assert sorted(r for report in reports for r in report.runs_with_log_copies_pruned) == sorted(old)
    assert list(store.record_folders(log_records.FOLDER)) == [young]


class FailingDeletes(LocalStore):
    """A local store whose `delete_records` fails after `ok` deletes, as a store that goes down mid-sweep does."""

    def __init__(self, root: Path, ok: int) -> None:
        super().__init__(root)
        self.ok = ok

    def delete_records(self, prefix: str) -> int:
        if self.ok == 0:
            raise StoreUnavailable("the store went away")
        self.ok -= 1
        return super().delete_records(prefix)


def test_a_pass_cut_short_by_the_store_is_finished_by_the_next_one(db: DbEngine, tmp_path: Path) -> None:
    """A failing store ends the pass with a warning; a new pass from scratch (a restart: no progress kept) deletes
    what is left, and marks every run."""
    old = [new_run(db, f"{c}" * 40, finished=NOW) for c in "123"]
    failing = FailingDeletes(tmp_path / "store", ok=1)
    for run_id in old:
        save_copies(failing, run_id)

    cut = prune_once(db, POLICY, tasks_dir=None, store=failing, now=LATER)
    assert not cut.more and cut.runs_with_log_copies_pruned == [old[0]]
    assert [copies(failing, r) for r in old] == [0, 2, 2]
    assert all(run_service.get_run(db, r).logs_pruned_at is not None for r in old), "marked before deleting"

    healthy = LocalStore(tmp_path / "store")
    done = prune_once(db, POLICY, tasks_dir=None, store=healthy, now=LATER)
    assert sorted(done.runs_with_log_copies_pruned) == sorted(old[1:])
    assert [copies(healthy, r) for r in old] == [0, 0, 0]


def test_the_leaders_retention_worker_prunes_log_copies(db: DbEngine, store: ArtifactStore) -> None:
    """The sweeper the leader starts opens the artifact store and prunes its log copies on its ticks."""
    old = new_run(db, "e" * 40, finished=NOW - timedelta(days=30))
    young = new_run(db, "f" * 40, finished=NOW)
    for run_id in (old, young):
        save_copies(store, run_id)
    sweeper = RetentionSweeper(db, lambda: store, RetentionPolicy(), interval=0.05, history=POLICY)
    sweeper.start()
    try:
        wait_until(lambda: copies(store, old) == 0, timeout=10)
    finally:
        sweeper.stop()
    assert copies(store, young) == 2
    assert run_service.get_run(db, old).logs_pruned_at is not None
