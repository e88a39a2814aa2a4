"""Safe, bounded, located YAML loading (odin.schema.yamlload), and how its problems surface through load_pipeline."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml

from odin.schema import Limits, load_pipeline, yamlload
from odin.schema.yamlload import load_yaml

from .helpers import load, problems

DATA = Path(__file__).parent / "data"


def loaded(text: str, limits: Limits | None = None) -> tuple[object, list[str]]:
    doc, found = load_yaml(text.encode(), file="f.yml", limits=limits)
    return (doc.value if doc is not None else None), [str(p) for p in found]


# --- values -------------------------------------------------------------------------------------------------------


def test_scalars_resolve_like_pyyaml_safe_load() -> None:
    text = "a: yes\nb: No\nc: 010\nd: 0x1F\ne: 1.5\nf: ~\ng: 1_000\nh: '010'\ni: -7\nj: 1:30\nk: .5\nl: null\nm: text\n"
    value, found = loaded(text)
    assert found == []
    assert value == yaml.safe_load(text)
    assert value == {
        "a": True, "b": False, "c": 8, "d": 31, "e": 1.5, "f": None, "g": 1000, "h": "010", "i": -7, "j": 90,
        "k": 0.5, "l": None, "m": "text",
    }  # fmt: skip


def test_timestamps_and_non_finite_floats_stay_text() -> None:
    value, found = loaded("when: 2024-05-01\nbig: .inf\nnan: .NaN\n")
    assert found == []
    assert value == {"when": "2024-05-01", "big": ".inf", "nan": ".NaN"}


def test_keys_are_their_text_not_yaml_booleans_or_numbers() -> None:
    value, _ = loaded("on: 1\n1: one\nNO: x\n")
    assert value == {"on": 1, "1": "one", "NO": "x"}


def test_explicit_tags() -> None:
    text = "a: !!str 10\nb: !!int '7'\nc: !!float '2'\nd: !!bool 'on'\n"
    value, found = loaded(text)
    assert found == []
    assert value == {"a": "10", "b": 7, "c": 2.0, "d": True} == yaml.safe_load(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: !!binary aGk=\n", "f.yml:1:4: unsupported YAML tag `tag:yaml.org,2002:binary`"),
        ("a: !!int ten\n", "f.yml:1:4: `ten` is not a valid `!!int`"),
        ("a: !Ref x\n", "f.yml:1:4: unsupported YAML tag `!Ref`"),
        ("a: !!set {x}\n", "f.yml:1:4: unsupported YAML tag `tag:yaml.org,2002:set`"),
    ],
)
def test_unsupported_or_invalid_tags(text: str, message: str) -> None:
    assert message in loaded(text)[1]


def test_complex_keys_are_rejected() -> None:
    assert loaded("? [a, b]\n: 1\n")[1] == ["f.yml:1:3: mapping keys must be plain strings, not collections or aliases"]


# --- positions ----------------------------------------------------------------------------------------------------


def test_every_node_and_key_is_located() -> None:
    doc, _ = load_yaml(b"tasks:\n  - name: a\n    args: [x, 'y', 3]\n", file="f")
    assert doc is not None
    assert doc.position(("tasks",)) == (2, 3)
    assert doc.position(("tasks", 0)) == (2, 5)
    assert doc.position(("tasks", 0, "name")) == (2, 11)
    assert doc.key_position(("tasks", 0, "args")) == (3, 5)
    assert doc.position(("tasks", 0, "args", 1)) == (3, 15)
    assert doc.position(("tasks", 0, "args", 2)) == (3, 20)
    # A path that does not exist falls back to its nearest located ancestor.
    assert doc.position(("tasks", 0, "args", 9)) == (3, 11)
    assert doc.position(("nope",)) == (1, 1)


def test_aliased_nodes_point_into_the_anchor_and_the_alias_itself_at_the_star() -> None:
    doc, found = load_yaml(b"base: &b\n  x: [1, 2]\nuse: *b\n", file="f")
    assert found == []
    assert doc is not None
    assert doc.value == {"base": {"x": [1, 2]}, "use": {"x": [1, 2]}}
    assert doc.position(("use",)) == (3, 6)
    assert doc.position(("use", "x", 1)) == (2, 10)
    assert doc.key_position(("use", "x")) == (2, 3)


# --- merge keys ---------------------------------------------------------------------------------------------------


def test_merge_keys_follow_yaml_precedence() -> None:
    value, found = loaded(
        "a: &a {p: 1, q: 1}\n"
        "b: &b {q: 2, r: 2}\n"
        "c:\n"
        "  <<: [*a, *b]\n"
        "  r: 3\n"
    )  # fmt: skip
    assert found == []
    assert value["c"] == {"p": 1, "q": 1, "r": 3}  # type: ignore[index]
    # Same answer as PyYAML's own flatten_mapping.
    assert value == yaml.safe_load("a: &a {p: 1, q: 1}\nb: &b {q: 2, r: 2}\nc:\n  <<: [*a, *b]\n  r: 3\n")


def test_merged_values_are_located_where_they_were_written() -> None:
    doc, _ = load_yaml(b"x-d: &d\n  image: busybox\nt:\n  <<: *d\n  name: a\n", file="f")
    assert doc is not None
    assert doc.position(("t", "image")) == (2, 10)
    assert doc.key_position(("t", "image")) == (2, 3)
    assert doc.position(("t", "name")) == (5, 9)


def test_merge_of_a_scalar_is_a_problem() -> None:
    assert loaded("a:\n  <<: 5\n")[1] == ["f.yml:2:7: a merge key `<<` takes a mapping or a list of mappings"]


def test_merge_in_a_task_is_validated_like_written_fields() -> None:
    assert problems(
        """
        x-defaults: &defaults
          image: busybox
          num_gpus: -1
        tasks:
          - name: a
            <<: *defaults
            command: echo
        """
    ) == ["3:13: `num_gpus` must be at least 0, not -1"]


# --- duplicates ---------------------------------------------------------------------------------------------------


def test_duplicate_keys_are_reported_at_the_second_occurrence() -> None:
    assert problems(
        """
        tasks:
          - name: a
            image: busybox
            command: echo
            image: alpine
        """
    ) == ["5:5: duplicate key `image` (first at line 3): YAML would silently keep only the last one"]


def test_duplicate_top_level_keys() -> None:
    value, found = loaded("name: a\nname: b\n")
    assert value == {"name": "b"}
    assert found == ["f.yml:2:1: duplicate key `name` (first at line 1): YAML would silently keep only the last one"]


# --- hostile input ------------------------------------------------------------------------------------------------


def billion_laughs(levels: int = 9) -> bytes:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for previous, name in itertools.pairwise("abcdefghij"[:levels]):
        lines.append(f"{name}: &{name} [{', '.join(['*' + previous] * 9)}]")
    return ("\n".join(lines) + "\n").encode()


def test_billion_laughs_is_rejected_naming_alias_expansion() -> None:
    result = load_pipeline(billion_laughs(), file="main.yml", default_name="x")
    assert result.spec is None
    assert len(result.problems) == 1
    assert "alias expansion exceeds 100,000 nodes" in result.problems[0].message
    assert result.problems[0].line == 6  # the alias that crossed the budget


def test_node_budget_is_configurable() -> None:
    _, found = loaded("a: &a [1, 2, 3]\nb: [*a, *a, *a]\n", Limits(max_nodes=10))
    assert len(found) == 1
    assert "alias expansion exceeds 10 nodes" in found[0]


def test_a_large_document_without_aliases_is_counted_too() -> None:
    _, found = loaded("[" + ", ".join(["1"] * 50) + "]\n", Limits(max_nodes=20))
    assert found == ["f.yml:1:1: document has more than 20 nodes"]


def test_recursive_and_undefined_aliases() -> None:
    assert loaded("a: &a [1, *a]\n")[1] == ["f.yml:1:11: alias `*a` is inside its own anchor (a recursive structure)"]
    assert loaded("a: *nope\n")[1] == ["f.yml:1:4: alias `*nope` refers to no anchor `&nope` defined before it"]


def test_deep_flow_nesting_is_rejected_without_crashing() -> None:
    # libyaml's own composer recurses in C and segfaults on this; the event-driven builder stops at the limit.
    result = load_pipeline(b"[" * 500_000 + b"]" * 500_000, file="main.yml", default_name="x")
    assert [str(p) for p in result.problems] == ["main.yml:1:65: nesting is deeper than 64 levels"]


def test_deep_block_nesting_and_a_custom_depth_limit() -> None:
    assert loaded("- " * 100 + "x\n")[1] == ["f.yml:1:129: nesting is deeper than 64 levels"]
    assert loaded("a:\n  b:\n    c: 1\n", Limits(max_depth=2))[1] == ["f.yml:3:5: nesting is deeper than 2 levels"]


def test_a_50_mb_file_is_rejected_before_parsing() -> None:
    data = b"#" * 50_000_000  # would take seconds to parse; the size check answers at once
    result = load_pipeline(data, file="main.yml", default_name="x")
    assert [str(p) for p in result.problems] == ["main.yml:1:1: file is 50.0 MB; the limit is 1.0 MiB"]


def test_size_limit_boundary_shows_exact_bytes() -> None:
    limits = Limits(max_bytes=1024)
    ok = b"tasks: [{name: a, image: b, command: c}]\n"
    assert load_pipeline(ok + b"#" * (1024 - len(ok)), file="m", default_name="x", limits=limits).ok
    result = load_pipeline(ok + b"#" * (1025 - len(ok)), file="m", default_name="x", limits=limits)
    assert [p.message for p in result.problems] == ["file is 1.0 kB; the limit is 1.0 KiB (1025 > 1024 bytes)"]


def test_non_utf8_bytes_are_located() -> None:
    result = load_pipeline(b"name: ok\ntasks: \xff\n", file="main.yml", default_name="x")
    assert [str(p) for p in result.problems] == ["main.yml:2:8: not valid UTF-8 (byte 0xff at offset 16)"]


def test_non_utf8_column_counts_characters_not_bytes() -> None:
    result = load_pipeline("description: é\xe9".encode()[:-2] + b"\xc3", file="m", default_name="x")
    assert [(p.line, p.column) for p in result.problems] == [(1, 15)]


def test_utf8_bom_is_accepted() -> None:
    assert load_pipeline(b"\xef\xbb\xbftasks: [{name: a, image: b, command: c}]\n", file="m", default_name="x").ok


def test_control_characters_are_located() -> None:
    result = load_pipeline(b"name: a\ndescription: x\x07y\n", file="main.yml", default_name="x")
    assert [str(p) for p in result.problems] == ["main.yml:2:15: character U+0007 is not allowed in YAML"]


# --- document shape -----------------------------------------------------------------------------------------------


def test_syntax_errors_use_pyyaml_text_and_mark() -> None:
    assert problems("tasks: [a, b\nname: x\n") == [
        "2:5: YAML syntax error: did not find expected ',' or ']' (while parsing a flow sequence at line 1, column 8)"
    ]
    assert problems("tasks:\n  - name: a\n    image: b: c\n") == [
        "3:13: YAML syntax error: mapping values are not allowed in this context"
    ]


def test_multiple_documents_are_a_problem() -> None:
    assert problems("tasks: []\n---\ntasks: []\n") == [
        "2:1: more than one YAML document (`---`); main.yml must hold exactly one"
    ]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "--- ~\n"])
def test_empty_files(text: str) -> None:
    assert problems(text) == ["1:1: file is empty; expected a mapping with `tasks:`"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- name: a\n", "1:1: the top level must be a mapping with `tasks:`, not a list"),
        ("hello\n", "1:1: the top level must be a mapping with `tasks:`, not a single value"),
    ],
)
def test_top_level_must_be_a_mapping(text: str, message: str) -> None:
    assert problems(text) == [message]


# --- the pure-Python parser gives the same answers ----------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        (DATA / "distributed" / "main.yml").read_bytes(),
        (DATA / "mnist" / "main.yml").read_bytes(),
        b"tasks:\n  - name: Bad_Name\n    image: x\n    command: [a, {b: 1}]\n    depend: y\n",
        b"tasks: [a, b\n",
        b"a: 1\na: 2\n",
        billion_laughs(),
        b"[" * 1000,
    ],
)
def test_pure_python_parser_matches_libyaml(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    if yamlload._Loader is yaml.SafeLoader:
        pytest.skip("PyYAML was built without libyaml")
    fast = load_pipeline(data, file="main.yml", default_name="x")
    monkeypatch.setattr(yamlload, "_Loader", yaml.SafeLoader)
    slow = load_pipeline(data, file="main.yml", default_name="x")
    assert slow.spec == fast.spec
    # Same places; the wording of syntax errors is each parser's own.
    assert [(p.line, p.column) for p in slow.problems] == [(p.line, p.column) for p in fast.problems]
    syntax = "YAML syntax error"
    assert [p for p in slow.problems if syntax not in p.message] == [
        p for p in fast.problems if syntax not in p.message
    ]


def test_libyaml_is_used_when_available() -> None:
    assert yamlload._Loader is getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def test_load_reports_every_kind_of_problem_as_values_not_exceptions() -> None:
    for data in (b"\x00", b"\xfe\xff", b"%YAML 9.9\n---\na: 1\n", b"&a", b"*a", b"[", b"{a: b, a: c}", b"!"):
        result = load(data.decode("latin-1"))
        assert result.spec is None
        assert result.problems
