"""The published JSON Schema, and the compiled fast check that must agree with jsonschema on every document."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from odin.schema import RESOURCE_TYPES, SCHEMA_ID, load_pipeline, pipeline_schema, schema_path
from odin.schema.fastcheck import UnsupportedKeyword, compile_schema
from odin.schema.legacy import accept_legacy
from odin.schema.schemafile import fast_check, validator
from odin.schema.yamlload import load_yaml

DATA = Path(__file__).parent / "data"
FIXTURES = sorted(DATA.glob("*/main.yml"))


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = pipeline_schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == SCHEMA_ID == "https://odin.dev/schemas/pipeline.schema.json"
    assert schema["title"]


def test_schema_file_is_installed_package_data() -> None:
    path = schema_path()
    assert path.name == "pipeline.schema.json"
    assert json.loads(path.read_text(encoding="utf-8")) == pipeline_schema()


def test_pipeline_schema_returns_a_copy() -> None:
    pipeline_schema()["title"] = "changed"
    assert pipeline_schema()["title"] != "changed"


def _subschemas(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            if key in ("properties", "patternProperties", "$defs"):
                for name, sub in value.items():
                    yield from _subschemas(sub, f"{where}/{key}/{name}")
            elif key in ("items", "additionalProperties", "propertyNames"):
                yield from _subschemas(value, f"{where}/{key}")
            elif key in ("anyOf", "allOf"):
                for i, sub in enumerate(value):
                    yield from _subschemas(sub, f"{where}/{key}/{i}")


def test_every_property_is_described_for_editors() -> None:
    undocumented = []
    for where, node in _subschemas(pipeline_schema()):
        for name, sub in node.get("properties", {}).items():
            if "description" not in sub:
                undocumented.append(f"{where}/properties/{name}")
    assert undocumented == []


def test_schema_examples_are_valid() -> None:
    schema = pipeline_schema()
    for example in schema["examples"]:
        assert validator().is_valid(example)
    for name in ("task", "mount", "securityContext", "elastic", "toleration", "resources", "param"):
        sub = Draft202012Validator({"$ref": f"#/$defs/{name}", "$defs": schema["$defs"]})
        for example in schema["$defs"][name]["examples"]:
            assert sub.is_valid(example), (name, example)


def test_resource_types_match_the_model() -> None:
    task = pipeline_schema()["$defs"]["task"]["properties"]
    assert tuple(task["resource_type"]["enum"]) == RESOURCE_TYPES


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.parent.name)
def test_fixtures_validate_with_jsonschema_directly(fixture: Path) -> None:
    assert validator().is_valid(yaml.safe_load(fixture.read_text()))


# --- the compiled fast check --------------------------------------------------------------------------------------


def test_compiler_refuses_keywords_it_does_not_implement() -> None:
    with pytest.raises(UnsupportedKeyword, match="oneOf"):
        compile_schema({"oneOf": [{"type": "string"}]})
    with pytest.raises(UnsupportedKeyword, match="recursive"):
        compile_schema({"$ref": "#/$defs/a", "$defs": {"a": {"items": {"$ref": "#/$defs/a"}}}})


@pytest.mark.parametrize(
    ("schema", "instance", "valid"),
    [
        ({"type": "integer"}, 2.0, True),
        ({"type": "integer"}, True, False),
        ({"type": "number"}, False, False),
        ({"type": ["string", "number", "boolean"]}, True, True),
        ({"enum": [1]}, True, False),
        ({"const": 0}, False, False),
        ({"pattern": "b"}, "abc", True),  # search, not match
        ({"pattern": "^b"}, 5, True),  # applies to strings only
        ({"minimum": 0}, "x", True),
        ({"exclusiveMinimum": 0}, 0, False),
        ({"additionalProperties": False, "patternProperties": {"^x-": True}}, {"x-a": 1}, True),
        ({"additionalProperties": False, "properties": {"a": True}}, {"b": 1}, False),
        ({"propertyNames": {"maxLength": 1}}, {"ab": 1}, False),
        ({"minProperties": 1}, {}, False),
        ({"allOf": [{"minimum": 1}, {"maximum": 2}]}, 3, False),
        (True, 1, True),
        ({"description": "x", "errorMessage": "y"}, 1, True),
        # Fused checks (one closure for a whole subschema) keep every keyword's meaning.
        ({"type": "string", "minLength": 1, "maxLength": 3, "pattern": "^a"}, "abc", True),
        ({"type": "string", "minLength": 1, "maxLength": 3, "pattern": "^a"}, "abcd", False),
        ({"type": "string", "minLength": 1, "maxLength": 3, "pattern": "^a"}, "", False),
        ({"type": "string", "minLength": 1, "maxLength": 3, "pattern": "^a"}, "bc", False),
        ({"type": "string", "maxLength": 3}, 12, False),
        ({"type": "integer", "minimum": 1, "maximum": 3}, 2.0, True),
        ({"type": "integer", "minimum": 1, "maximum": 3}, True, False),
        ({"type": "integer", "minimum": 1, "maximum": 3}, 4, False),
        ({"type": "integer", "exclusiveMinimum": 1}, 1, False),
        ({"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}, {"a": 1}, True),
        ({"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}, {}, False),
        ({"type": "object", "properties": {}}, [], False),
        ({"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}}, {}, False),
        ({"properties": {"a": {"type": "integer"}}}, [], True),
    ],
)
def test_compiled_check_keyword_semantics_match_jsonschema(schema: Any, instance: Any, valid: bool) -> None:
    assert compile_schema(schema)(instance) is valid
    assert Draft202012Validator(schema).is_valid(instance) is valid


VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2.5, 2.0, 101, 10**20, "", "x", "Train_Model", "/abs", "../up", "500m", "4Gi",
    "90s", "1h30m", "Always", "PyTorchJob", "integer", "${RUN_PATH}", [], ["x"], [1], [None],
    [{"name": "m", "path": "/m", "claim": "c"}], {}, {"a": 1}, {"name": "x", "path": "/p"}, {"requests": "1"},
    {"type": "RuntimeDefault"}, {"key": "k", "operator": "Exists"},
]  # fmt: skip


def _all_property_names(node: Any) -> set[str]:
    names: set[str] = set()
    for _, sub in _subschemas(node):
        names.update(sub.get("properties", {}))
    return names


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*prefix, i))


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


def _mutations(doc: dict[str, Any], rng: random.Random, count: int) -> Iterator[Any]:
    """Documents one edit away from a valid one: a value replaced, a key removed, a key added. Most are invalid in
    exactly one place, which is where a fast check that is subtly more lenient than jsonschema would show."""
    paths = list(_paths(doc))
    keys = [*sorted(_all_property_names(pipeline_schema())), "bogus", "x-ext", "camelCase"]
    for _ in range(count):
        mutated = copy.deepcopy(doc)
        path = rng.choice(paths)
        target = _at(mutated, path)
        kind = rng.random()
        if kind < 0.55 and path:
            _at(mutated, path[:-1])[path[-1]] = copy.deepcopy(rng.choice(VALUES))
        elif kind < 0.75 and isinstance(target, dict) and target:
            del target[rng.choice(sorted(target))]
        elif kind < 0.8 and isinstance(target, list) and target:
            del target[rng.randrange(len(target))]
        elif isinstance(target, dict):
            target[rng.choice(keys)] = copy.deepcopy(rng.choice(VALUES))
        else:
            _at(mutated, path[:-1])[path[-1]] = copy.deepcopy(rng.choice(VALUES)) if path else mutated
        yield mutated


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.parent.name)
def test_compiled_check_agrees_with_jsonschema_on_mutated_pipelines(fixture: Path) -> None:
    doc = yaml.safe_load(fixture.read_text())
    check = fast_check()
    reference = validator()
    rng = random.Random(f"odin-{fixture.parent.name}")
    seen = {True: 0, False: 0}
    for mutated in _mutations(doc, rng, 800):
        expected = reference.is_valid(mutated)
        assert check(mutated) is expected, json.dumps(mutated)[:2000]
        seen[expected] += 1
    assert seen[True] > 30 and seen[False] > 300  # the sample exercises both answers


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.parent.name)
def test_load_pipeline_never_raises_on_mutated_pipelines(fixture: Path) -> None:
    doc = yaml.safe_load(fixture.read_text())
    rng = random.Random(f"fuzz-{fixture.parent.name}")
    for mutated in _mutations(doc, rng, 150):
        data = yaml.safe_dump(mutated, sort_keys=False).encode()
        result = load_pipeline(data, file="main.yml", default_name="fuzz")
        assert result.ok == (result.spec is not None)
        if result.ok:
            loaded, _ = load_yaml(data, file="main.yml")
            assert loaded is not None
            accept_legacy(loaded, "main.yml")  # nulls of known fields are absent, as the original Odin read them
            assert validator().is_valid(loaded.value)
        for problem in result.problems:
            assert problem.line >= 1 and problem.column >= 1 and problem.message
