"""`odinctl validate` behaviour (validate_main) and directory discovery (validate_path)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import yaml

from odin.schema import Limits, validate_path
from odin.schema.cli import validate_main

VALID = "tasks:\n  - {name: a, image: busybox, command: echo hi}\n"
INVALID = "tasks:\n  - {name: a, image: busybox, command: echo hi, depend: b}\n"
REPO_ROOT = Path(__file__).resolve().parents[2]


def run(paths: list[str], output: str = "text") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = validate_main(paths, output, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A pipeline repository: two valid pipelines, one invalid, and a main.yml inside .git that must be ignored."""
    for name, text in {"train": VALID, "nested/eval": VALID, "broken": INVALID, ".git/hooks": INVALID}.items():
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "main.yml").write_text(text)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "main.yaml").write_text(INVALID)  # not the pipeline file name
    return tmp_path


def test_validate_path_finds_every_pipeline_but_not_in_git(repo: Path) -> None:
    found = validate_path([repo])
    assert [path.relative_to(repo).as_posix() for path, _ in found] == [
        "broken/main.yml",
        "nested/eval/main.yml",
        "train/main.yml",
    ]
    assert [result.ok for _, result in found] == [False, True, True]


def test_symlinks_are_not_pipelines(repo: Path) -> None:
    (repo / "linked").mkdir()
    (repo / "linked" / "main.yml").symlink_to(repo / "broken" / "main.yml")
    (repo / "linked-dir").symlink_to(repo / "broken", target_is_directory=True)
    found = validate_path([repo])
    assert [path.relative_to(repo).as_posix() for path, _ in found] == [
        "broken/main.yml",
        "nested/eval/main.yml",
        "train/main.yml",
    ]


def test_pipeline_names_default_to_their_directory(repo: Path) -> None:
    specs = {path.parent.name: result.spec for path, result in validate_path([repo]) if result.spec}
    assert {name: spec.name for name, spec in specs.items()} == {"eval": "eval", "train": "train"}


def test_files_directories_and_repeats(repo: Path) -> None:
    found = validate_path([repo / "train" / "main.yml", repo / "train", repo / "nested"])
    assert [path.relative_to(repo).as_posix() for path, _ in found] == ["train/main.yml", "nested/eval/main.yml"]


def test_validate_path_of_a_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        validate_path([tmp_path / "nope"])


def test_an_oversized_file_is_rejected_from_its_size(tmp_path: Path) -> None:
    path = tmp_path / "main.yml"
    path.write_text(VALID + "#" * 5000)
    [(_, result)] = validate_path([path], limits=Limits(max_bytes=1000))
    assert [p.message for p in result.problems] == ["file is 5.1 kB; the limit is 1.0 kB"]


def test_text_output_and_exit_code_for_problems(repo: Path) -> None:
    code, out, err = run([str(repo)])
    assert code == 1
    assert out == f"{repo}/broken/main.yml:2:49: unknown field `depend` in task (did you mean `depends`?)\n"
    assert err == "3 pipelines, 1 problem\n"


def test_every_output_line_is_file_line_column_message(repo: Path) -> None:
    (repo / "broken" / "main.yml").write_text("tasks:\n  - name: Bad\n    image: x\n    num_gpus: -1\n")
    code, out, _ = run([str(repo / "broken")])
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 3
    assert all(re.fullmatch(r".+/main\.yml:\d+:\d+: .+", line) for line in lines)


def test_valid_pipelines_exit_zero_and_print_only_the_summary(repo: Path) -> None:
    code, out, err = run([str(repo / "train"), str(repo / "nested")])
    assert (code, out, err) == (0, "", "2 pipelines, 0 problems\n")


def test_json_output(repo: Path) -> None:
    code, out, err = run([str(repo)], output="json")
    assert code == 1
    assert err == ""
    document = json.loads(out)
    assert document == {
        "pipelines": [
            {
                "file": f"{repo}/broken/main.yml",
                "ok": False,
                "problems": [
                    {
                        "file": f"{repo}/broken/main.yml",
                        "line": 2,
                        "column": 49,
                        "message": "unknown field `depend` in task (did you mean `depends`?)",
                        "severity": "error",
                    }
                ],
            },
            {"file": f"{repo}/nested/eval/main.yml", "ok": True, "problems": []},
            {"file": f"{repo}/train/main.yml", "ok": True, "problems": []},
        ]
    }


def test_json_output_for_valid_pipelines_exits_zero(repo: Path) -> None:
    code, out, _ = run([str(repo / "train")], output="json")
    assert code == 0
    assert json.loads(out)["pipelines"][0]["ok"] is True


@pytest.mark.parametrize(
    ("paths", "output", "message"),
    [
        (["missing-dir"], "text", "odinctl validate: no such file or directory: missing-dir\n"),
        (
            ["."],
            "xml",
            "odinctl validate: unknown output format 'xml' (expected one of: table, wide, name, json, yaml, text)\n",
        ),
        (["notes"], "text", "odinctl validate: no main.yml found under notes\n"),
    ],
)
def test_usage_errors_exit_two(
    repo: Path, monkeypatch: pytest.MonkeyPatch, paths: list[str], output: str, message: str
) -> None:
    monkeypatch.chdir(repo)
    assert run(paths, output) == (2, "", message)


def test_no_paths_means_the_current_directory(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo / "train")
    assert run([]) == (0, "", "1 pipeline, 0 problems\n")


def test_relative_paths_are_printed_as_given(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    code, out, _ = run(["broken/main.yml"])
    assert code == 1
    assert out.startswith("broken/main.yml:2:49: ")


def test_pre_commit_hook_definition() -> None:
    [hook] = yaml.safe_load((REPO_ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "odin-validate"
    assert hook["entry"] == "odinctl validate"
    assert hook["language"] == "python"
    files = re.compile(hook["files"])
    assert files.search("main.yml")
    assert files.search("pipelines/mnist/main.yml")
    assert not files.search("pipelines/mnist/main.yaml")
    assert not files.search("domain.yml")
