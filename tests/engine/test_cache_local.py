# ruff: noqa: E501 (the pipelines below are YAML, one shell command a line, as users write them)
"""Task caching (issue 11 item 6) on the local executor with real subprocesses and a real store (SQLite and
Postgres): a second run of the same inputs reuses a cached task's outputs without running it, `no_cache` bypasses the
lookup but records the key, a deleted artifact is a miss, and no input change (parameters, upstream results, the
pipeline's tree) ever hits."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine as DbEngine

from odin.controller.artifacts.retention import RetentionPolicy
from odin.controller.retention import sweep_once
from odin.controller.store.db import transaction
from odin.controller.store.runs import EVENTS, NewRun, create_run
from odin.controller.vocabulary import CACHED, RunStatus, Trigger
from odin.schema import load_pipeline
from odin.schema.model import PipelineSpec
from tests.engine.test_engine_local import Harness

TREE = "1" * 40


class CacheHarness(Harness):
    def run(
        self, spec: PipelineSpec, *, params: dict[str, str] | None = None, tree: str = TREE, no_cache: bool = False
    ) -> str:
        """Create a run, drive it to success, return its id."""
        new = NewRun(
            pipeline="p",
            spec=spec,
            trigger=Trigger.MANUAL,
            params=params or {},
            work_path=str(self.work),
            work_tree=tree,
            commit_sha="c" * 40,
            no_cache=no_cache,
        )
        with transaction(self.db) as conn:
            run_id = create_run(conn, new).run_id
        assert self.engine is not None
        self.engine.submit(run_id)
        assert self.engine.wait(run_id, 30) == RunStatus.SUCCEEDED, self.tasks(run_id)
        return run_id

    def ran(self, run_id: str, task: str) -> bool:
        """Whether the task was executed in this run (the local executor wrote its log)."""
        return (self.data_dir / "tasks" / run_id / f"{task}.1.log").exists()


@pytest.fixture
def harness(db: DbEngine, tmp_path: Path) -> Iterator[CacheHarness]:
    h = CacheHarness(db, tmp_path / "data")
    h.start()
    yield h
    h.close()


def pipeline(yaml: str) -> PipelineSpec:
    result = load_pipeline(yaml.encode(), file="main.yml", default_name="p")
    assert result.spec is not None, [str(p) for p in result.problems]
    return result.spec


TRAIN = """
params: {x: "1"}
tasks:
  - name: prep
    image: busybox
    command: [sh, -c, 'echo ${params.x} > "$RESULTS_PATH/v"']
    outputs: {results: [v]}
  - name: train
    image: busybox
    cache: true
    command: [sh, -c, 'printf "model-${tasks.prep.results.v}" > "$OUTPUT_PATH/model"; echo 0.9 > "$RESULTS_PATH/accuracy"']
    outputs: {artifacts: [model], results: [accuracy]}
    depends: prep
  - name: use
    image: busybox
    command: [sh, -c, 'cat ${tasks.train.artifacts.model}']
    depends: train
"""


def test_a_second_run_of_the_same_inputs_reuses_the_cached_task(harness: CacheHarness) -> None:
    spec = pipeline(TRAIN)
    first = harness.run(spec, params={"x": "1"})
    assert harness.ran(first, "train")
    second = harness.run(spec, params={"x": "1"})

    assert not harness.ran(second, "train")  # never handed to the executor
    assert harness.ran(second, "use") and harness.ran(second, "prep")  # not cached: they ran again
    old, new = harness.tasks(first)["train"], harness.tasks(second)["train"]
    assert (new.status, new.reason, new.exit_code) == ("succeeded", CACHED, 0)
    assert new.message == f"cached from run {first} (commit {'c' * 12})"
    assert new.results == old.results == {"accuracy": 0.9}
    assert new.artifacts == old.artifacts
    assert new.cache_key == old.cache_key and len(new.cache_key) == 64
    assert harness.log(second, "use").strip() == "model-1"  # the dependent read the cached artifact
    with harness.db.connect() as conn:
        events = conn.execute(sa.select(EVENTS).where(EVENTS.c.run_id == second, EVENTS.c.task == "train")).all()
    assert any(e.data.get("reason") == CACHED and e.data.get("status") == "succeeded" for e in events)

    # A hit on a cached task names the run that really ran it.
    third = harness.run(spec, params={"x": "1"})
    assert harness.tasks(third)["train"].message == new.message


def test_no_cache_runs_the_task_and_still_records_its_key(harness: CacheHarness) -> None:
    spec = pipeline(TRAIN)
    first = harness.run(spec, params={"x": "1"})
    bypassed = harness.run(spec, params={"x": "1"}, no_cache=True)
    assert harness.ran(bypassed, "train")
    row = harness.tasks(bypassed)["train"]
    assert row.reason != CACHED and row.cache_key == harness.tasks(first)["train"].cache_key


def test_a_cached_artifact_that_was_deleted_is_a_miss(harness: CacheHarness) -> None:
    spec = pipeline(TRAIN)
    first = harness.run(spec, params={"x": "1"})
    Path(harness.tasks(first)["train"].artifacts["model"]["location"]).unlink()  # what retention does
    second = harness.run(spec, params={"x": "1"})
    assert harness.ran(second, "train")
    assert harness.tasks(second)["train"].reason != CACHED
    assert harness.log(second, "use").strip() == "model-1"
    third = harness.run(spec, params={"x": "1"})  # the second run's outputs are there: a hit on it
    assert harness.tasks(third)["train"].message == f"cached from run {second} (commit {'c' * 12})"


def test_a_cached_artifact_deleted_by_the_retention_sweep_is_a_miss(harness: CacheHarness) -> None:
    """The real sweep, with a policy (keep 1 day, swept 2 days later) that expires the first run: it deletes the
    cached model file, and the next run of the same inputs runs `train` again and succeeds."""
    spec = pipeline(TRAIN)
    first = harness.run(spec, params={"x": "1"})
    made = harness.tasks(first)["train"]
    model = Path(made.artifacts["model"]["location"])
    assert model.read_text() == "model-1"

    later = datetime.now(UTC) + timedelta(days=2)
    report = sweep_once(
        harness.db, None, RetentionPolicy(keep_days=1), outputs_dir=harness.data_dir / "outputs", now=later
    )
    assert report.expired_runs == (first,) and report.deleted >= 1
    assert not model.exists(), "the sweep deleted the cached artifact"

    second = harness.run(spec, params={"x": "1"})  # succeeds (asserted by `run`), not an error
    assert harness.ran(second, "train")
    again = harness.tasks(second)["train"]
    assert (again.status, again.exit_code) == ("succeeded", 0) and again.reason != CACHED
    assert again.cache_key == made.cache_key, "the same inputs: a miss only because the outputs are gone"
    assert harness.log(second, "use").strip() == "model-1", "the dependent read the new model"
    third = harness.run(spec, params={"x": "1"})
    assert harness.tasks(third)["train"].message == f"cached from run {second} (commit {'c' * 12})"


def test_a_different_input_result_or_tree_is_never_a_hit(harness: CacheHarness) -> None:
    spec = pipeline(TRAIN)
    keys: set[str] = set()
    for params, tree in ((({"x": "1"}), TREE), ({"x": "2"}, TREE), ({"x": "1"}, "2" * 40)):
        run_id = harness.run(spec, params=params, tree=tree)
        assert harness.ran(run_id, "train"), (params, tree)
        keys.add(harness.tasks(run_id)["train"].cache_key)
    assert len(keys) == 3


def test_a_changed_parameter_in_the_command_is_never_a_hit(harness: CacheHarness) -> None:
    spec = pipeline("""
params: {lr: "0.1"}
tasks:
  - name: t
    image: busybox
    cache: true
    command: [sh, -c, 'echo ${params.lr}']
""")
    a = harness.run(spec, params={"lr": "0.1"})
    b = harness.run(spec, params={"lr": "0.2"})
    c = harness.run(spec, params={"lr": "0.1"})
    assert harness.ran(a, "t") and harness.ran(b, "t") and not harness.ran(c, "t")
    # Without declared outputs, only the success is reused.
    row: Any = harness.tasks(c)["t"]
    assert (row.status, row.reason, row.results, row.artifacts) == ("succeeded", CACHED, None, None)
