"""Planning reruns: what runs again, what is reused, what is refused (pure; no store, no git)."""

from __future__ import annotations

from typing import Any

import pytest

from odin.controller.reruns import RerunRefused, plan_rerun
from odin.schema.model import PipelineSpec, TaskSpec

#   prep -> train -> evaluate
#        \-> stats
#   lint (independent)
SPEC = PipelineSpec(
    name="p",
    tasks=(
        TaskSpec("prep", "x", ("true",)),
        TaskSpec("train", "x", ("true",), depends=("prep",)),
        TaskSpec("evaluate", "x", ("true",), depends=("train",)),
        TaskSpec("stats", "x", ("true",), depends=("prep",)),
        TaskSpec("lint", "x", ("true",)),
    ),
)


def rows(**statuses: str) -> dict[str, dict[str, Any]]:
    return {name: {"name": name, "status": status, "attempt": 1, "exit_code": 0} for name, status in statuses.items()}


FAILED_TRAIN = rows(prep="succeeded", train="failed", evaluate="skipped", stats="succeeded", lint="failed")
ALL_OK = rows(prep="succeeded", train="succeeded", evaluate="succeeded", stats="succeeded", lint="succeeded")


def test_a_plain_rerun_runs_everything_and_reuses_nothing() -> None:
    plan = plan_rerun(SPEC, "p-1", FAILED_TRAIN)
    assert plan.rerun == ("prep", "train", "evaluate", "stats", "lint")
    assert (plan.reused, plan.initial_tasks, plan.shares_run_path) == ((), {}, False)


def test_failed_only_reuses_what_succeeded() -> None:
    plan = plan_rerun(SPEC, "p-1", FAILED_TRAIN, failed_only=True)
    assert plan.rerun == ("train", "evaluate", "lint")
    assert plan.reused == ("prep", "stats") and plan.shares_run_path
    assert plan.initial_tasks["prep"]["status"] == "succeeded"
    assert (plan.initial_tasks["prep"]["reason"], plan.initial_tasks["prep"]["message"]) == (
        "Reused",
        "reused from p-1",
    )


def test_failed_only_of_a_run_that_succeeded_is_refused() -> None:
    with pytest.raises(RerunRefused) as e:
        plan_rerun(SPEC, "p-1", ALL_OK, failed_only=True)
    assert e.value.status == 409 and "nothing to rerun" in e.value.message


def test_a_task_and_its_descendants_reuse_the_rest() -> None:
    plan = plan_rerun(SPEC, "p-1", ALL_OK, task="train")
    assert plan.rerun == ("train", "evaluate")
    assert plan.reused == ("prep", "stats", "lint") and plan.left_out == ()


def test_tasks_outside_the_selection_that_did_not_succeed_are_left_out() -> None:
    plan = plan_rerun(SPEC, "p-1", FAILED_TRAIN, task="train")
    assert plan.rerun == ("train", "evaluate") and plan.left_out == ("lint",)
    assert plan.initial_tasks["lint"] == {
        "status": "skipped",
        "reason": "NotSelected",
        "message": "not part of the rerun of 'train'",
    }


def test_a_task_whose_inputs_did_not_succeed_cannot_be_rerun_alone() -> None:
    with pytest.raises(RerunRefused) as e:
        plan_rerun(SPEC, "p-1", FAILED_TRAIN, task="evaluate")
    assert e.value.status == 409 and "needs the outputs of train" in e.value.message


@pytest.mark.parametrize(
    ("kwargs", "words"), [({"task": "nope"}, "no task 'nope'"), ({"task": "prep", "failed_only": True}, "either")]
)
def test_bad_requests(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(RerunRefused) as e:
        plan_rerun(SPEC, "p-1", ALL_OK, **kwargs)
    assert e.value.status == 422 and words in e.value.message
