"""`concurrency:` and `priority:` in main.yml (issue 13 item 5): the forms, frozen with the run, and bad input at
file:line:col with "did you mean"."""

from __future__ import annotations

from odin.schema.model import Concurrency, PipelineSpec
from tests.schema.helpers import problems, spec

TASKS = "tasks:\n  - {name: t, image: busybox, command: echo}\n"


def test_concurrency_and_priority_are_read_and_frozen_with_the_run() -> None:
    found = spec("concurrency: {limit: 2, policy: replace}\npriority: 5\n" + TASKS)
    assert (found.concurrency, found.priority) == (Concurrency(2, "replace"), 5)
    assert PipelineSpec.from_dict(found.to_dict()) == found
    assert spec("concurrency: {}\n" + TASKS).concurrency == Concurrency(1, "queue")  # the defaults
    plain = spec(TASKS)
    assert (plain.concurrency, plain.priority) == (None, 0)
    assert "concurrency" not in plain.to_dict() and "priority" not in plain.to_dict()


def test_a_misspelt_policy_or_field_is_a_located_problem_with_a_suggestion() -> None:
    assert problems("concurrency:\n  limit: 1\n  policy: replce\n" + TASKS) == [
        "3:11: `concurrency.policy` must be one of queue, replace, skip, not `replce` (did you mean `replace`?)"
    ]
    (unknown,) = problems("concurrency: {limt: 1}\n" + TASKS)
    assert unknown.startswith("1:15: ") and "`limt`" in unknown and "did you mean `limit`" in unknown
    (top,) = problems("concurency: {limit: 1}\n" + TASKS)
    assert top == "1:1: unknown top-level field `concurency` (did you mean `concurrency`?)"


def test_a_limit_below_one_or_a_priority_that_is_not_a_whole_number_is_a_problem() -> None:
    assert problems("concurrency: {limit: 0}\n" + TASKS) == ["1:22: `concurrency.limit` must be at least 1, not 0"]
    (bad,) = problems("priority: high\n" + TASKS)
    assert bad.startswith("1:11: `priority` must be ")
