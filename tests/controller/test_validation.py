"""Validation away from the server's threads: worker processes, a time budget, and results cached by git tree id."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from odin.controller.git.mirror import Mirror
from odin.controller.pipelines import read_pipeline
from odin.controller.validation import IN_PROCESS, INLINE_BYTES, ResultCache, Validator
from odin.schema import load_pipeline
from tests.support.git import GitRemote

HOSTILE = ("tasks:\n  - name: a\n    image: x\n    command: " + "${" * 400_000 + "\n").encode()
VALID = "tasks:\n  - {name: a, image: busybox, command: [echo, hi]}\n"


@pytest.fixture(scope="module")
def validator() -> Iterator[Validator]:
    v = Validator(workers=1, budget=60)
    try:
        yield v
    finally:
        v.close()


def test_a_large_file_is_validated_in_a_worker_with_the_same_result(validator: Validator) -> None:
    result = validator.validate(HOSTILE, file="p/main.yml", default_name="p")
    assert result == load_pipeline(HOSTILE, file="p/main.yml", default_name="p")
    assert not result.ok
    assert validator._idle and validator._idle[0].process.pid != os.getpid()  # a worker did it, and is kept


def test_a_file_over_its_cpu_budget_is_one_clear_problem() -> None:
    v = Validator(workers=1, budget=0.001)  # no 800 kB file validates in a millisecond of CPU time
    try:
        result = v.validate(HOSTILE, file="p/main.yml", default_name="p")
        assert [p.message for p in result.problems] == [
            "validation took longer than 0.001 s; the file is too large or too complex"
        ]
        v.budget = 60
        assert v.validate(VALID.encode() + b"#" * INLINE_BYTES, file="m", default_name="p").ok
    finally:
        v.close()


def test_a_worker_that_stops_answering_is_killed_and_replaced() -> None:
    v = Validator(workers=1, budget=0.2)  # killed after WALL_FACTOR x 0.2 s = 2 s without an answer
    try:
        data = VALID.encode() + b"#" * INLINE_BYTES
        assert v.validate(data, file="m", default_name="p").ok
        [worker] = v._idle
        os.kill(worker.process.pid or 0, signal.SIGSTOP)  # alive, but never answers
        result = v.validate(data, file="m", default_name="p")
        assert result.problems[0].message.startswith("validation took longer than 0.2 s")
        assert not worker.process.is_alive() and v._idle == []
        assert v.validate(data, file="m", default_name="p").ok  # a fresh worker
    finally:
        v.close()


def test_a_worker_that_dies_is_a_problem_then_replaced(validator: Validator) -> None:
    validator.validate(HOSTILE, file="p/main.yml", default_name="p")
    [worker] = validator._idle
    os.kill(worker.process.pid or 0, signal.SIGKILL)
    worker.process.join(10)
    result = validator.validate(HOSTILE, file="p/main.yml", default_name="p")
    assert not result.ok and "validation took longer" not in result.problems[0].message  # a fresh worker answered


def test_small_files_are_validated_in_the_calling_thread() -> None:
    v = Validator(workers=1, budget=60)
    assert v.validate(VALID.encode(), file="m", default_name="p").ok
    assert v._idle == []  # no worker was started for it


def test_unchanged_pipelines_are_validated_once_whatever_the_commit(tmp_path: Path) -> None:
    remote = GitRemote.create(tmp_path / "git")
    first = remote.commit({"a/main.yml": VALID, "b/main.yml": "tasks: [\n"}, message="two pipelines")
    second = remote.commit({"c/other.txt": "unrelated"}, message="a change elsewhere")
    mirror = Mirror(remote.url, tmp_path / "cache", branch="main")
    mirror.fetch()
    v = Validator(workers=0)
    at = [read_pipeline(mirror, sha, name, validator=v) for sha in (first, second, first) for name in ("a", "b")]
    assert v.validated == 2
    assert [(x.sha, x.pipeline, x.ok) for x in at[:2]] == [(first, "a", True), (first, "b", False)]
    assert [(x.sha, x.ok, x.problems) for x in at[2:4]] == [(second, True, []), (second, False, at[1].problems)]
    remote.commit({"a/main.yml": VALID.replace("hi", "hello")}, message="change a")
    mirror.fetch()
    read_pipeline(mirror, mirror.resolve("main"), "a", validator=v)
    assert v.validated == 3  # a new tree, validated again


def test_the_cache_is_bounded_by_weight() -> None:
    cache = ResultCache(max_weight=100)
    for i in range(10):
        cache.put(i, f"v{i}", 30)
    assert len(cache) == 3 and cache.get(9) == "v9" and cache.get(0) is None
    cache.put("huge", "x", 101)
    assert cache.get("huge") is None


LOOPING_TEMPLATE = b"x: 1\n{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
TEMPLATE = b"tasks:\n  - {name: a, image: busybox, command: [echo, '{{ who | default(\"hi\") }}']}\n"


def test_a_template_is_rendered_in_a_worker_under_the_cpu_budget_whatever_its_size() -> None:
    # The renderer's own deadline (2 s) would come later; so would the wall deadline on a loaded machine (it once
    # came first at 10 x 0.3 s, load ~6, and the worker was killed instead of stopped by its CPU budget).
    v = Validator(workers=1, budget=0.3, wall_factor=100)
    try:
        result = v.validate_template(LOOPING_TEMPLATE, file="p/main.yml.jinja2", default_name="p").result
        assert [p.message for p in result.problems] == [
            "validation took longer than 0.3 s; the file is too large or too complex"
        ]
        [worker] = v._idle  # the worker it ran in was kept: the budget stopped the template, not the worker
        assert worker.process.pid != os.getpid()
    finally:
        v.close()


def test_a_template_rendered_in_a_worker_gives_its_spec_and_variables(validator: Validator) -> None:
    given = validator.validate_template(TEMPLATE, file="p/main.yml.jinja2", default_name="p", params={"who": "you"})
    assert given.result.ok and given.variables == {"who"}
    assert given.result.spec is not None and given.result.spec.tasks[0].command == ("echo", "you")
    assert given == IN_PROCESS.validate_template(
        TEMPLATE, file="p/main.yml.jinja2", default_name="p", params={"who": "you"}
    )


def test_a_template_that_runs_a_worker_out_of_memory_is_a_problem_and_the_worker_goes_on() -> None:
    # 400 distinct strings of 1 MB, each within the renderer's limits, in a worker that may use 256 MiB.
    hoarding = (
        b"x: 1\n{% set ns = namespace(keep=[]) %}{% for i in range(400) %}"
        b"{% if ns.keep.append(('x' * 1000000) ~ i) %}{% endif %}{% endfor %}"
    )
    v = Validator(workers=1, budget=60, memory=256 << 20)
    try:
        result = v.validate_template(hoarding, file="p/main.yml.jinja2", default_name="p").result
        assert [str(p) for p in result.problems] == ["p/main.yml.jinja2:2:1: rendering ran out of memory; stopped"]
        [worker] = v._idle
        assert v.validate_template(TEMPLATE, file="p/main.yml.jinja2", default_name="p").result.ok
        assert v._idle == [worker], "the same worker answered"
    finally:
        v.close()
