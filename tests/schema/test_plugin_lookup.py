"""Resource-handler plugins are looked for only when a pipeline needs them (issue 15 item 2): a pipeline of built-in
kinds is validated without reading every installed distribution's entry points, and one naming another kind still
gets the plugins' kinds (tests/kube/test_handler_plugins.py installs a real plugin)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from odin.schema import load_pipeline, schemafile


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the entry-point lookups, on caches cleared before and after (they are per process)."""
    made: list[int] = []
    real = schemafile.plugin_resource_types

    def counted() -> tuple[str, ...]:
        made.append(1)
        return real()

    caches = (schemafile._schema, schemafile.validator, schemafile.fast_check, schemafile._with_plugins)
    for cached in caches:
        cached.cache_clear()
    monkeypatch.setattr(schemafile, "plugin_resource_types", counted)
    yield made
    for cached in caches:
        cached.cache_clear()


def test_a_pipeline_of_built_in_kinds_is_validated_without_looking_for_plugins(lookups: list[int]) -> None:
    yaml = b"tasks:\n  - name: a\n    image: busybox\n    command: echo hi\n    resource_type: Job\n"
    result = load_pipeline(yaml, file="main.yml", default_name="p")
    assert result.ok, result.problems
    assert lookups == []


def test_an_unknown_kind_looks_for_plugins_once_and_is_refused_without_one(lookups: list[int]) -> None:
    yaml = b"tasks:\n  - name: a\n    image: busybox\n    command: echo hi\n    resource_type: RayJob\n"
    for _ in range(2):
        result = load_pipeline(yaml, file="main.yml", default_name="p")
        assert next(p.message for p in result.problems).startswith("`resource_type` must be one of Pod, Job,")
    assert lookups == [1], "looked for once, then cached"
