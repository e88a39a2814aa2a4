"""`run_queries.results_by_run` and `result_columns` on SQLite and Postgres: the pages of `odinctl results`.

Keyset pages must neither repeat nor skip a run, also where runs share a creation time (a burst of pushes recorded in
the same instant, or the same microsecond on a coarse clock); `result_columns` names every result of the range, in
the order a listing newest first meets them, whichever page a result first appears on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from odin.controller.store import run_queries
from odin.controller.store.models import RUNS, TASK_RUNS

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def add_run(db: Engine, run_id: str, at: datetime, tasks: list[tuple[str, dict[str, Any] | None]],
            pipeline: str = "train") -> None:  # fmt: skip
    with db.begin() as conn:
        conn.execute(
            RUNS.insert(),
            {"id": run_id, "pipeline": pipeline, "commit_sha": run_id.ljust(40, "0")[:40], "branch": "main",
             "trigger": "poll", "status": "succeeded", "created_at": at, "params": {}, "spec": {},
             "absorbed_commits": [], "conditions": []},
        )  # fmt: skip
        for name, results in tasks:
            conn.execute(
                TASK_RUNS.insert(),
                {"run_id": run_id, "name": name, "status": "succeeded", "attempt": 1, "gpus": [], "results": results},
            )


def test_pages_follow_the_cursor_without_repeating_or_skipping_runs_created_in_the_same_instant(db: Engine) -> None:
    # 7 runs: three pairs created in the same instant, and one alone; plus another pipeline's run (never listed).
    times = [NOW, NOW, NOW - timedelta(hours=1), NOW - timedelta(hours=1), NOW - timedelta(hours=2),
             NOW - timedelta(hours=3), NOW - timedelta(hours=3)]  # fmt: skip
    for i, at in enumerate(times):
        add_run(db, f"run-{i}", at, [("train", {"acc": i / 10})])
    add_run(db, "other-0", NOW, [("train", {"acc": 1.0})], pipeline="other")
    every = run_queries.results_by_run(db, "train", since=None, limit=100)
    assert [r.run_id for r in every] == ["run-1", "run-0", "run-3", "run-2", "run-4", "run-6", "run-5"]
    for size in (1, 2, 3):
        seen: list[str] = []
        before = None
        while True:
            page = run_queries.results_by_run(db, "train", since=None, limit=size, before=before)
            seen += [r.run_id for r in page]
            if len(page) < size:
                break
            before = (page[-1].created_at, page[-1].run_id)
        assert seen == [r.run_id for r in every], f"pages of {size}"
    since = run_queries.results_by_run(db, "train", since=NOW - timedelta(hours=1), limit=100)
    assert [r.run_id for r in since] == ["run-1", "run-0", "run-3", "run-2"], "since is inclusive"


def test_results_are_keyed_by_task_and_tasks_without_results_are_left_out(db: Engine) -> None:
    add_run(db, "run-a", NOW, [("train", {"acc": 0.9, "loss": 0.2}), ("export", None), ("eval", {})])
    (row,) = run_queries.results_by_run(db, "train", since=None, limit=10)
    assert row.results == {"train": {"acc": 0.9, "loss": 0.2}}
    assert (row.commit_sha, row.branch, row.status, row.created_at) == (
        "run-a".ljust(40, "0"),
        "main",
        "succeeded",
        NOW,
    )


def test_columns_of_the_whole_range_in_the_order_a_listing_meets_them(db: Engine) -> None:
    # The newest run records only `acc`; an older one adds `eval.auc`, the oldest `train.loss`: a first page of one
    # run knows only `train.acc`, the whole range all three.
    add_run(db, "new", NOW, [("train", {"acc": 0.9})])
    add_run(db, "mid", NOW - timedelta(days=1), [("train", {"acc": 0.8}), ("eval", {"auc": 0.7})])
    add_run(db, "old", NOW - timedelta(days=5), [("train", {"acc": 0.7, "loss": 0.3}), ("export", None)])
    assert run_queries.result_columns(db, "train", since=None) == ["train.acc", "eval.auc", "train.loss"]
    assert run_queries.result_columns(db, "train", since=NOW - timedelta(days=2)) == ["train.acc", "eval.auc"]
    assert run_queries.result_columns(db, "nothing", since=None) == []
