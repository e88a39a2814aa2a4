"""Pipelines written in the original Odin's format run on the local executor, as its users wrote them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from odin.controller.embedded import run_pipeline
from odin.schema.problems import PipelineInvalid
from tests.support.server import BIN

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


TEMPLATED = """\
name: legacy-template
base: &base
  image: busybox:1.36
  command: sh
  num_workers: null
tasks:
{% for lang in langs.split(",") %}
- <<: *base
  name: tokenize-{{ lang }}
  id: {{ lang }}-1
  args: ["-c", "echo {{ lang }} > ${TASK_PATH}/lang"]
{% endfor %}
- <<: *base
  name: report
  args:
  - "-c"
  - "cat {% for lang in langs.split(',') %}${RUN_PATH}/tokenize-{{ lang }}/lang {% endfor %}> ${RUN_PATH}/all"
  depends: [{% for lang in langs.split(",") %}tokenize-{{ lang }}{{ "," if not loop.last }}{% endfor %}]
"""


@pytest.mark.slow  # a real `odin run` subprocess: ~8 s on a 2-core machine
def test_a_jinja2_template_renders_from_the_run_parameters_and_runs(tmp_path: Path) -> None:
    pipeline = tmp_path / "repo" / "legacy-template"
    pipeline.mkdir(parents=True)
    (pipeline / "main.yml.jinja2").write_text(TEMPLATED)
    res = subprocess.run(
        [str(BIN / "odin"), "run", str(pipeline), "-p", "langs=en,de,fr", "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=120, check=False, env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    run_path = tmp_path / "data" / "runs" / "legacy-template-local-1"
    assert (run_path / "all").read_text().split() == ["en", "de", "fr"]


def test_a_template_missing_its_parameter_is_refused_with_the_template_line(tmp_path: Path) -> None:
    pipeline = write_pipeline(tmp_path / "repo", "legacy-template", "")
    (pipeline / "main.yml").unlink()
    (pipeline / "main.yml.jinja2").write_text(TEMPLATED)
    with pytest.raises(PipelineInvalid) as raised:
        run_pipeline(pipeline, data_dir=tmp_path / "data")
    assert [p.line for p in raised.value.problems] == [7]
    assert raised.value.problems[0].message == "undefined variable: 'langs' is undefined"


EPHEMERAL = """\
name: legacy-ephemeral
tasks:
- name: shm
  image: blah:800000.6
  command: sh
  args:
  - "-c"
  - 'echo scratch > "$ODIN_EPHEM_DSHM/f" && cat "$ODIN_EPHEM_DSHM/f" && echo "$ODIN_EPHEM_DSHM" > ${RUN_PATH}/where'
  mounts:
   - name: data
     path: "/data"
     claim: "myclaim"
   - path: /dev/shm
     name: dshm
  ephem_volumes:
   - name: dshm
     type: emptyDir
     medium: Memory
"""


def test_ephemeral_volumes_are_a_temporary_directory_per_attempt_removed_after(tmp_path: Path) -> None:
    pipeline = write_pipeline(tmp_path / "repo", "legacy-ephemeral", EPHEMERAL)
    result = run_pipeline(pipeline, data_dir=tmp_path / "data")
    assert result.ok, result.tasks
    where = Path((result.run_path / "where").read_text().strip())
    assert where == tmp_path / "data" / "tasks" / result.run_id / "shm.1.ephem" / "dshm"
    assert not where.parent.exists(), "removed when the attempt ended"
    [task] = result.tasks
    assert task.log_path is not None and "scratch" in Path(task.log_path).read_text()
