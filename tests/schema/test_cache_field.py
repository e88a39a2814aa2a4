"""`cache:` in main.yml (issue 11 item 6): per task, or the pipeline's default; wrong types located."""

from __future__ import annotations

from odin.schema import load_pipeline
from odin.schema.model import PipelineSpec


def load(yaml: str) -> tuple[PipelineSpec | None, list[str]]:
    result = load_pipeline(yaml.encode(), file="main.yml", default_name="p")
    return result.spec, [str(p) for p in result.problems]


def test_the_pipeline_default_applies_unless_a_task_says_otherwise() -> None:
    spec, problems = load("""
cache: true
tasks:
  - {name: a, image: busybox, command: echo}
  - {name: b, image: busybox, command: echo, cache: false}
  - {name: c, image: busybox, command: echo, matrix: {x: [1, 2]}}
""")
    assert problems == [] and spec is not None
    assert {t.name: t.cache for t in spec.tasks} == {"a": True, "b": False, "c-x-1": True, "c-x-2": True}
    assert PipelineSpec.from_dict(spec.to_dict()) == spec  # frozen and restored with the run


def test_off_by_default_and_per_task() -> None:
    spec, problems = load("""
tasks:
  - {name: a, image: busybox, command: echo}
  - {name: b, image: busybox, command: echo, cache: true}
""")
    assert problems == [] and spec is not None
    assert {t.name: t.cache for t in spec.tasks} == {"a": False, "b": True}
    assert "cache" not in spec.tasks[0].to_dict()  # defaults stay out of the frozen spec


def test_a_cache_that_is_not_a_boolean_is_a_located_problem() -> None:
    spec, problems = load("""
cache: yes please
tasks:
  - name: a
    image: busybox
    command: echo
    cache: 1
""")
    assert spec is None
    assert problems == [
        "main.yml:2:8: `cache` must be a boolean, not a string (`yes please`)",
        "main.yml:7:12: `cache` must be a boolean, not a number (1)",
    ]
