"""The cache key (issue 11 item 6): every component changes it, per-run values do not, and a hit needs every
artifact still in place. Pure: runs are built as the engine adopts them from the store, without a database."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from odin.controller.artifacts.local import LocalStore
from odin.controller.engine.adoption import ActiveRun, active_run, run_context
from odin.controller.engine.cache import (
    cache_key,
    choose,
    image_identity,
    key_document,
    local_outputs_present,
    store_outputs_present,
)
from odin.controller.executors.local import LocalExecutor
from odin.controller.store.cache_queries import CachedTask
from odin.controller.store.runs import LoadedRun
from odin.controller.vocabulary import CACHED
from odin.schema import load_pipeline
from odin.schema.model import PipelineSpec

YAML = """
params: {lr: "0.1"}
tasks:
  - name: prep
    image: busybox
    command: echo
    outputs: {artifacts: [data], results: [n]}
  - name: train
    image: pytorch/pytorch:2.3
    cache: true
    command: [python, train.py, --lr, "${params.lr}", --out, "${OUTPUT_PATH}/m",
              --run, "${RUN_PATH}/x", --id, "${PIPE_ID}"]
    args: [--data, "${tasks.prep.artifacts.data}", --n, "${tasks.prep.results.n}"]
    env: {SEED: "1", COMMIT: "${COMMIT_SHA}", TASK: "${TASK_ID}"}
    num_gpus: 1
    outputs: {artifacts: [model], results: [accuracy]}
    depends: prep
"""


def spec_of(yaml: str = YAML) -> PipelineSpec:
    result = load_pipeline(yaml.encode(), file="main.yml", default_name="p")
    assert result.spec is not None, [str(p) for p in result.problems]
    return result.spec


def make_run(tmp_path: Path, spec: PipelineSpec | None = None, **changes: Any) -> ActiveRun:
    """A run as the engine holds it once `prep` succeeded; `changes` override the run row or prep's outputs."""
    prep_artifact = {"data": {"path": "data", "location": changes.pop("location", "/r1/data"), "type": "file",
                              "size": 3, "digest": changes.pop("digest", "sha256:" + "a" * 64)}}  # fmt: skip
    prep_results = {"n": changes.pop("n", 10)}
    row: dict[str, Any] = {
        "id": "p-abc-1", "pipeline": "p", "commit_sha": "c" * 40, "trigger": "manual", "work_tree": "1" * 40,
        "work_path": str(tmp_path), "spec": (spec or spec_of()).to_dict(), "cancel_requested": False,
        "params": {"lr": "0.1"}, "parallelism": None, "status": "running", "run_path_id": None,
        "repo_url": "https://git.example/ml.git", "no_cache": False,
    }  # fmt: skip
    row.update(changes)
    tasks = [
        {"name": "prep", "status": "succeeded", "attempt": 1, "results": prep_results, "artifacts": prep_artifact},
        {"name": "train", "status": "pending", "attempt": 0},
    ]
    loaded = LoadedRun(row, tasks)
    executor = LocalExecutor(tmp_path / "data")  # only asked for the run's paths
    try:
        return active_run(loaded, run_context(loaded), executor, default_parallelism=4)
    finally:
        executor.shutdown()


def key(tmp_path: Path, spec: PipelineSpec | None = None, **changes: Any) -> str:
    run = make_run(tmp_path, spec, **changes)
    return cache_key(run, run.tasks["train"])


def edited(**fields: Any) -> PipelineSpec:
    spec = spec_of()
    return dataclasses.replace(
        spec, tasks=tuple(dataclasses.replace(t, **fields) if t.name == "train" else t for t in spec.tasks)
    )


@pytest.mark.parametrize(
    ("what", "spec_fields", "run_changes"),
    [
        ("image", {"image": "pytorch/pytorch:2.4"}, {}),
        ("command", {"command": ("python", "train2.py")}, {}),
        ("args", {"args": ("--data", "${tasks.prep.artifacts.data}")}, {}),
        ("env", {"env": {"SEED": "2"}}, {}),
        ("num_gpus", {"num_gpus": 2}, {}),
        ("num_workers", {"num_workers": 2}, {}),
        ("resource_type", {"resource_type": "PyTorchJob"}, {}),
        ("declared outputs", {"results": ()}, {}),
        ("task name", {"name": "train2"}, {}),
        ("parameter value", {}, {"params": {"lr": "0.2"}}),
        ("tree id", {}, {"work_tree": "2" * 40}),
        ("repository", {}, {"repo_url": "https://git.example/fork.git"}),
        ("pipeline", {}, {"pipeline": "q"}),
        ("input artifact digest", {}, {"digest": "sha256:" + "b" * 64}),
        ("input result value", {}, {"n": 11}),
    ],
)
def test_every_component_changes_the_key(
    tmp_path: Path, what: str, spec_fields: dict[str, Any], run_changes: dict[str, Any]
) -> None:
    base = key(tmp_path)
    spec = edited(**spec_fields) if spec_fields else None
    if spec is not None and "name" in spec_fields:
        run = make_run(tmp_path, spec)
        changed = cache_key(run, run.tasks["train2"])
    else:
        changed = key(tmp_path, spec, **run_changes)
    assert changed != base, what


@pytest.mark.parametrize(
    "run_changes",
    [
        {"id": "p-def-7"},  # PIPE_ID, TASK_ID, RUN_PATH, OUTPUT_PATH
        {"commit_sha": "d" * 40},  # another commit with the same tree
        {"location": "/r2/data"},  # the same bytes elsewhere
        {"trigger": "poll"},
    ],
)
def test_per_run_values_do_not_change_the_key(tmp_path: Path, run_changes: dict[str, Any]) -> None:
    assert key(tmp_path, **run_changes) == key(tmp_path)


def test_the_key_document_hashes_inputs_by_digest_and_per_run_values_as_names(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    doc = key_document(run, run.tasks["train"])
    assert doc["inputs"] == {"tasks.prep.artifacts.data": "sha256:" + "a" * 64, "tasks.prep.results.n": 10}
    assert doc["args"] == ["--data", "sha256:" + "a" * 64, "--n", "10"]
    assert "${OUTPUT_PATH}/m" in doc["command"] and "${RUN_PATH}/x" in doc["command"] and "${PIPE_ID}" in doc["command"]
    assert doc["env"] == {"COMMIT": "${COMMIT_SHA}", "SEED": "1", "TASK": "${TASK_ID}"}


def test_image_identity_prefers_a_pinned_digest() -> None:
    digest = "sha256:" + "e" * 64
    assert image_identity(f"pytorch/pytorch:2.3@{digest}") == digest
    assert image_identity(f"registry:5000/pytorch@{digest}") == digest
    assert image_identity("registry:5000/pytorch:2.3") == "registry:5000/pytorch:2.3"
    assert image_identity(None) is None


def candidate(
    run_id: str, artifacts: dict[str, Any] | None, *, reason: str = "Completed", message: str = ""
) -> CachedTask:
    return CachedTask(run_id, "f" * 40, reason, message, 0, {"accuracy": 0.9}, artifacts)


def test_a_hit_needs_every_artifact_in_place(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.write_bytes(b"abc")
    record = {"location": str(model), "type": "file", "size": 3, "digest": "sha256:x"}
    assert local_outputs_present({"model": record})
    assert not local_outputs_present({"model": {**record, "size": 4}})  # replaced by something else
    assert not local_outputs_present({"model": {**record, "type": "directory"}})
    assert not local_outputs_present({"model": {**record, "location": "s3://bucket/x"}})
    gone = {"location": str(tmp_path / "gone"), "type": "file", "size": 3}

    hit = choose([candidate("new", {"model": gone}), candidate("old", {"model": record})], local_outputs_present)
    assert hit is not None and hit.source.run_id == "old" and hit.message == "cached from run old (commit ffffffffffff)"
    assert choose([candidate("new", {"model": gone})], local_outputs_present) is None
    assert choose([candidate("x", None)], local_outputs_present) is not None  # no outputs declared: success only
    chained = choose([candidate("b", None, reason=CACHED, message="cached from run a (commit 1234)")], lambda a: True)
    assert chained is not None and chained.message == "cached from run a (commit 1234)"


def test_artifacts_in_the_object_store_are_checked_there(tmp_path: Path) -> None:
    """Kubernetes pods record `s3://` locations: a hit asks the store for the blob; a deleted blob, a record retention
    marked gone, or a store that cannot answer is a miss, never an error."""
    store = LocalStore(tmp_path / "store")
    blob = store.put_bytes(b"weights")
    remote = {"location": f"s3://bucket/{blob.digest}", "type": "file", "size": blob.size, "digest": blob.digest}
    model = tmp_path / "model"
    model.write_bytes(b"abc")
    local = {"location": str(model), "type": "file", "size": 3, "digest": "sha256:x"}
    present = store_outputs_present(lambda: store)
    assert present({"model": remote, "report": local})
    assert not present({"model": {**remote, "gone": True}})
    assert not present({"model": remote, "report": {**local, "size": 9}})
    assert not present({"model": {**remote, "digest": "sha256:" + "0" * 64}})

    def broken() -> LocalStore:
        raise OSError("store unreachable")

    assert not store_outputs_present(broken)({"model": remote})
    assert not local_outputs_present({"model": {**local, "gone": True}})
