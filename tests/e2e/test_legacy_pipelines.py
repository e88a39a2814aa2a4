"""Pipelines written in the original Odin's format run on the local executor, as its users wrote them."""

from __future__ import annotations

import json
from pathlib import Path

from odin.controller.embedded import run_pipeline

ANCHORED = """\
name: legacy-anchors
image: &busybox busybox:1.36
data: &data
  name: data
  path: /data
  claim: data-rw-many
tasks:
- name: prepare
  id: legacy-prepare
  image: *busybox
  command: sh
  args:
  - "-c"
  - >-
    echo prepared > ${TASK_PATH}/marker &&
    echo '${TASK_IDS}' > ${RUN_PATH}/ids.json &&
    echo ${DATA_PATH} > ${RUN_PATH}/data.txt
  mount: *data
  inputs: null
  outputs: null
  num_workers: null
  pull_policy: null
  depends: null
- name: train
  id: legacy-train
  image: *busybox
  command: sh
  args: ["-c", "cat ${RUN_PATH}/prepare/marker > ${TASK_PATH}/seen && echo ${TASK_ID} >> ${TASK_PATH}/seen"]
  num_gpus: null
  node_selector: null
  depends: [prepare]
"""


def write_pipeline(root: Path, name: str, text: str) -> Path:
    directory = root / name
    directory.mkdir(parents=True)
    (directory / "main.yml").write_text(text)
    return directory


def test_an_anchored_pipeline_with_nulls_and_ids_runs_with_the_original_variables(tmp_path: Path) -> None:
    pipeline = write_pipeline(tmp_path / "repo", "legacy-anchors", ANCHORED)
    result = run_pipeline(pipeline, data_dir=tmp_path / "data")
    assert result.ok, result.tasks
    run_path = result.run_path
    ids = json.loads((run_path / "ids.json").read_text())
    assert ids == [f"{result.run_id}--prepare", f"{result.run_id}--train"]
    assert (run_path / "data.txt").read_text().strip() == str(tmp_path / "data" / "root")
    assert (run_path / "train" / "seen").read_text().splitlines() == ["prepared", f"{result.run_id}--train"]
