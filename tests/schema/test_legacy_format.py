"""Pipelines as the original Odin's users wrote them: nulls for unset fields, task ids, anchors in top-level keys."""

from __future__ import annotations

import io
from pathlib import Path

from odin.schema.cli import validate_main
from tests.schema.helpers import load, problems, spec

GENERATED = """
name: sst2
image: &gpu meadml/mead2-gpu:2.0
claim: &claim {name: data, path: /data, claim: data-rw-many}
tasks:
- name: train
  id: sst2-train-1
  image: *gpu
  command: mead-train
  args: ["--basedir", "${TASK_PATH}", "--datasets", "${DATA_PATH}/datasets.yml", "--label", "${TASK_IDS}"]
  mount: *claim
  inputs: null
  outputs: null
  num_workers: null
  pull_policy: null
  node_selector: null
  depends: null
  num_gpus: 1
- name: report
  id: null
  image: *gpu
  command: python3
  args: ["-c", "print('done')"]
  depends: [train]
  security_context: null
"""


def test_a_generated_pipeline_with_nulls_ids_and_anchor_keys_is_valid() -> None:
    result = load(GENERATED)
    assert result.problems == [], [str(p) for p in result.problems]
    assert result.spec is not None
    train, report = result.spec.tasks
    assert train.image == report.image == "meadml/mead2-gpu:2.0"
    assert train.num_workers == 1 and train.pull_policy is None and train.depends == ()
    assert [m.claim for m in train.mounts] == ["data-rw-many"]
    assert "${TASK_PATH}" in train.args and train.uses_variable("TASK_IDS")
    assert [f"{n.line}:{n.column}" for n in result.notes] == ["6:3", "19:3"]
    assert "task field `id` `sst2-train-1` is ignored" in result.notes[0].message


def test_a_misspelt_field_set_to_null_still_gets_its_suggestion() -> None:
    assert problems("""
        tasks:
          - name: t
            image: busybox
            command: "true"
            depnds: null
    """) == ["5:5: unknown field `depnds` in task (did you mean `depends`?)"]


def test_an_unknown_top_level_key_is_allowed_only_when_an_alias_uses_its_anchor() -> None:
    unused = problems("""
        image: &gpu busybox
        tasks:
          - {name: t, image: busybox, command: "true"}
    """)
    assert unused == ["1:1: unknown top-level field `image`; extension fields must start with `x-`"]
    nested = spec("""
        defaults:
          image: &img busybox
          env: &env {SEED: 1}
        tasks:
          - {name: t, image: *img, command: "true", env: *env}
    """)
    assert nested.tasks[0].env == {"SEED": "1"}


def test_a_misspelt_known_top_level_field_holding_an_anchor_still_gets_did_you_mean() -> None:
    found = problems("""
        task: &t {name: t, image: busybox, command: "true"}
        tasks:
          - *t
    """)
    assert "1:1: unknown top-level field `task` (did you mean `tasks`?)" in found


def test_null_top_level_fields_are_absent() -> None:
    pipeline = spec("""
        name: plain
        description: null
        params: null
        tasks:
          - {name: t, image: busybox, command: "echo ${DATA_PATH}", inputs: null}
    """)
    assert pipeline.description is None and pipeline.params == ()


def test_ephemeral_volumes_are_mounted_by_claimless_mounts_of_their_name() -> None:
    pipeline = spec("""
        tasks:
          - name: shm
            image: busybox
            command: "true"
            mounts:
              - {name: data, path: /data, claim: myclaim}
              - {name: dshm, path: /dev/shm}
            ephem_volumes:
              - {name: dshm, type: emptyDir, medium: Memory, size_limit: 2Gi}
    """)
    [task] = pipeline.tasks
    assert [m.name for m in task.mounts] == ["data"]
    assert [(v.name, v.paths, v.medium, v.size_limit) for v in task.ephem_volumes] == [
        ("dshm", ("/dev/shm",), "Memory", "2Gi")
    ]
    assert type(task).from_dict(task.to_dict()) == task


def test_a_claimless_mount_without_its_volume_and_an_unmounted_volume_are_problems() -> None:
    assert problems("""
        tasks:
          - name: t
            image: busybox
            command: "true"
            mount: {name: dshm, path: /dev/shm}
            ephem_volumes: [{name: scratch}]
    """) == [
        "5:5: mount `dshm` has no `claim`: name a PersistentVolumeClaim, or declare `dshm` under `ephem_volumes`",
        "6:21: ephemeral volume `scratch` is not mounted: add `{name: scratch, path: /...}` to `mounts`",
    ]
    assert problems("""
        tasks:
          - {name: t, image: busybox, command: "true", ephem_volumes: [{name: scratch, type: hostPath}]}
    """) == ["2:86: `ephem_volumes[0].type` must be one of emptyDir, not `hostPath`"]


def test_odinctl_validate_prints_the_note_and_passes(tmp_path: Path) -> None:
    pipeline = tmp_path / "sst2"
    pipeline.mkdir()
    (pipeline / "main.yml").write_text(GENERATED.lstrip("\n"))
    out, err = io.StringIO(), io.StringIO()
    assert validate_main([str(tmp_path)], stdout=out, stderr=err) == 0
    assert out.getvalue() == ""
    assert f"{pipeline / 'main.yml'}:6:3: note: task field `id` `sst2-train-1` is ignored" in err.getvalue()
