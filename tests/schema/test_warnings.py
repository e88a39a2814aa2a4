"""Warnings: problems of severity `warning` (ElasticJob's deprecation) never fail validation, and show wherever
problems do: the result, `odinctl validate`'s text and JSON output, and the stored problem dicts."""

from __future__ import annotations

import io
import json
from pathlib import Path

from odin.schema import load_pipeline
from odin.schema.cli import validate_main
from odin.schema.problems import Problem, cap_problems

ELASTIC = (
    "tasks:\n  - name: train\n    image: busybox\n    command: c\n    resource_type: ElasticJob\n    num_workers: 2\n"
)
ELASTIC_AND_BROKEN = ELASTIC + "  - {name: b, image: busybox, command: c, depend: x}\n"


def test_an_elasticjob_task_is_valid_with_a_deprecation_warning() -> None:
    result = load_pipeline(ELASTIC.encode(), file="p/main.yml", default_name="p")
    assert result.ok and result.spec is not None and result.problems == []
    [warning] = result.warnings
    assert (warning.file, warning.line, warning.column, warning.severity) == ("p/main.yml", 5, 20, "warning")
    assert "deprecated" in warning.message and "PyTorchJob" in warning.message and "TrainJob" in warning.message
    assert str(warning) == f"p/main.yml:5:20: warning: {warning.message}"


def test_warnings_are_kept_beside_the_errors_of_an_invalid_file() -> None:
    result = load_pipeline(ELASTIC_AND_BROKEN.encode(), file="main.yml", default_name="p")
    assert not result.ok and result.spec is None
    assert [p.severity for p in result.problems] == ["error"]
    assert [p.severity for p in result.warnings] == ["warning"]
    assert result.shown == [*result.problems, *result.warnings]


def test_other_resource_types_have_no_warning() -> None:
    text = ELASTIC.replace("ElasticJob", "PyTorchJob")
    assert load_pipeline(text.encode(), file="main.yml", default_name="p").warnings == []


def test_severity_round_trips_and_old_dicts_read_as_errors() -> None:
    warning = Problem("f", 1, 2, "m", "warning")
    assert Problem.from_dict(warning.to_dict()) == warning
    assert Problem.from_dict({"file": "f", "line": 1, "column": 2, "message": "m"}).severity == "error"


def test_capping_keeps_the_severity_of_long_and_left_out_warnings() -> None:
    many = [Problem("f", i, 1, "x" * 2000, "warning") for i in range(1, 5)]
    capped = cap_problems(many, 2)
    assert [p.severity for p in capped] == ["warning"] * 3
    assert len(capped[0].message) <= 1000 and capped[-1].message == "and 2 more problems"


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "main.yml").write_text(text)
    return tmp_path / "p"


def test_odinctl_validate_prints_warnings_and_exits_zero_when_only_warnings(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = validate_main([str(_write(tmp_path, ELASTIC))], stdout=out, stderr=err)
    assert code == 0
    [line] = out.getvalue().splitlines()
    assert line.startswith(f"{tmp_path}/p/main.yml:5:20: warning: resource_type ElasticJob is deprecated")
    assert err.getvalue() == "1 pipeline, 0 problems, 1 warning\n"


def test_odinctl_validate_fails_on_errors_and_still_prints_the_warnings(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    code = validate_main([str(_write(tmp_path, ELASTIC_AND_BROKEN))], stdout=out, stderr=err)
    assert code == 1
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and ": warning: " not in lines[0] and ": warning: " in lines[1]


def test_odinctl_validate_json_lists_warnings_with_their_severity(tmp_path: Path) -> None:
    out = io.StringIO()
    code = validate_main([str(_write(tmp_path, ELASTIC))], "json", stdout=out, stderr=io.StringIO())
    [pipeline] = json.loads(out.getvalue())["pipelines"]
    assert code == 0 and pipeline["ok"] is True
    assert [p["severity"] for p in pipeline["problems"]] == ["warning"]


def test_name_output_does_not_list_a_file_with_only_warnings(tmp_path: Path) -> None:
    out = io.StringIO()
    assert validate_main([str(_write(tmp_path, ELASTIC))], "name", stdout=out, stderr=io.StringIO()) == 0
    assert out.getvalue() == ""
