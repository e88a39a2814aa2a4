"""Retention as a pure function: what a policy lets go, and never a digest a kept run references."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odin.controller.artifacts.retention import RetentionPolicy, RunArtifacts, plan_retention

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def run(run_id: int, pipeline: str, days_ago: float, *digests: str, **kw: bool) -> RunArtifacts:
    return RunArtifacts(run_id, pipeline, NOW - timedelta(days=days_ago), frozenset(digests), **kw)


def test_keep_last_n_per_pipeline() -> None:
    runs = [
        run(1, "train", 10, "d1", "shared"),
        run(2, "train", 5, "d2"),
        run(3, "train", 1, "d3", "shared"),
        run(4, "eval", 20, "e1"),
    ]
    plan = plan_retention(runs, RetentionPolicy(keep_runs=1), NOW)
    assert plan.expired_runs == (1, 2)
    assert plan.kept_runs == (3, 4)
    assert plan.deletable == {"d1", "d2"}, "'shared' is referenced by kept run 3"


def test_keep_days() -> None:
    runs = [run(1, "train", 10, "old"), run(2, "train", 2, "new"), run(3, "train", 30, "older", "new")]
    plan = plan_retention(runs, RetentionPolicy(keep_days=7), NOW)
    assert plan.expired_runs == (1, 3)
    assert plan.deletable == {"old", "older"}


def test_either_rule_keeps() -> None:
    runs = [run(1, "train", 100, "a"), run(2, "train", 50, "b"), run(3, "train", 1, "c")]
    plan = plan_retention(runs, RetentionPolicy(keep_runs=2, keep_days=7), NOW)
    assert plan.expired_runs == (1,)


def test_unfinished_and_pinned_runs_are_kept() -> None:
    runs = [
        run(1, "train", 100, "running", finished=False),
        run(2, "train", 90, "pinned", pinned=True),
        run(3, "train", 80, "gone"),
        run(4, "train", 1, "latest"),
    ]
    plan = plan_retention(runs, RetentionPolicy(keep_runs=1), NOW)
    assert plan.expired_runs == (3,)
    assert plan.deletable == {"gone"}


def test_no_policy_keeps_everything() -> None:
    plan = plan_retention([run(1, "p", 1000, "a")], RetentionPolicy(), NOW)
    assert plan.deletable == frozenset()
    assert plan.expired_runs == ()


def test_keep_zero_runs_deletes_all_finished() -> None:
    plan = plan_retention([run(1, "p", 0, "a"), run(2, "p", 0, "b")], RetentionPolicy(keep_runs=0), NOW)
    assert plan.deletable == {"a", "b"}


def test_negative_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="keep_runs"):
        RetentionPolicy(keep_runs=-1)


runs_strategy = st.lists(
    st.builds(
        lambda i, p, age, ds, fin, pin: RunArtifacts(i, p, NOW - timedelta(days=age), frozenset(ds), fin, pin),
        st.integers(0, 10_000),
        st.sampled_from(["train", "eval", "export"]),
        st.floats(0, 60),
        st.sets(st.sampled_from([f"d{i}" for i in range(12)]), max_size=4),
        st.booleans(),
        st.booleans(),
    ),
    max_size=25,
    unique_by=lambda r: r.run_id,
)


@settings(max_examples=300, deadline=None)
@given(
    runs=runs_strategy,
    keep_runs=st.none() | st.integers(0, 5),
    keep_days=st.none() | st.floats(0, 30),
)
def test_never_deletes_what_a_kept_run_references(
    runs: list[RunArtifacts], keep_runs: int | None, keep_days: float | None
) -> None:
    plan = plan_retention(runs, RetentionPolicy(keep_runs, keep_days), NOW)
    kept = {r.run_id for r in runs} - set(plan.expired_runs)
    assert set(plan.kept_runs) == kept
    for r in runs:
        if r.run_id in kept:
            assert not (r.digests & plan.deletable)
        else:
            assert r.finished and not r.pinned
    # Everything deletable belongs to some expired run.
    expired = [r for r in runs if r.run_id in plan.expired_runs]
    assert plan.deletable <= frozenset().union(*(r.digests for r in expired)) if expired else not plan.deletable
