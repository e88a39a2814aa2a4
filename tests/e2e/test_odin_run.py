"""`odin run` and `run_pipeline`: one pipeline directory, once, on the local executor — the samples for real."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from odin.controller.embedded import run_pipeline
from odin.controller.vocabulary import RunStatus
from odin.schema import ParamError
from odin.schema.problems import PipelineInvalid
from tests.support.server import BIN

SAMPLES = Path(__file__).resolve().parents[2] / "sample-pipelines"


def odin_run(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "odin"), "run", *args, "--data-dir", str(data)],
        capture_output=True, text=True, timeout=180, check=False, env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("sample", "code"),
    [("hello", 0), ("train", 0), ("failing", 1), ("parameterised", 0)],
)
def test_local_samples_run_for_real(sample: str, code: int, tmp_path: Path) -> None:
    res = odin_run(str(SAMPLES / sample), data=tmp_path)
    assert res.returncode == code, res.stdout + res.stderr
    assert f"run {sample}-local-1: {'succeeded' if code == 0 else 'failed'}" in res.stdout


def test_a_main_yml_path_runs_its_directory_and_a_failure_shows_the_log(tmp_path: Path) -> None:
    res = odin_run(str(SAMPLES / "failing" / "main.yml"), data=tmp_path)
    assert res.returncode == 1, res.stdout + res.stderr
    log = tmp_path / "tasks" / "failing-local-1" / "flaky.2.log"
    assert "✗ flaky failed (attempt 2, exit 3)" in res.stdout
    assert "│ " + log.read_text().splitlines()[-1] in res.stdout, "the failing attempt's last log lines"
    assert f"more: less {log}" in res.stdout
    other = tmp_path / "pipeline.yml"
    other.write_text("name: x\n")
    res = odin_run(str(other), data=tmp_path / "other")
    assert res.returncode == 2 and "is not a main.yml: pass a pipeline directory or its main.yml" in res.stderr
    res = odin_run(str(tmp_path / "missing"), data=tmp_path / "other")
    assert res.returncode == 2 and "no such file or directory" in res.stderr


def test_train_sample_produces_an_exported_model(tmp_path: Path) -> None:
    result = run_pipeline(SAMPLES / "train", params={"epochs": "50"}, data_dir=tmp_path, parallelism=3)
    assert result.ok, result.tasks
    # The sweep's members keep the names the hand-written tasks had; `export` runs only if the model is good enough.
    assert [t.name for t in result.tasks if t.status == "succeeded"] == [
        "prepare", "train-lr-0-1", "train-lr-0-03", "train-lr-0-01", "evaluate", "export",
    ]  # fmt: skip


def test_params_reach_commands_and_env(tmp_path: Path) -> None:
    res = odin_run(str(SAMPLES / "parameterised"), "-p", "size=large", "-p", "repeats=3", data=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    output = (tmp_path / "runs" / "parameterised-local-1" / "output.txt").read_text().splitlines()
    assert output == ["hi from large #1", "hi from large #2", "hi from large #3"]


def test_failing_sample_reports_retry_skip_and_branch(tmp_path: Path) -> None:
    result = run_pipeline(SAMPLES / "failing", data_dir=tmp_path, retry_backoff=0.05)
    assert result.status == RunStatus.FAILED
    tasks = {t.name: t for t in result.tasks}
    assert (tasks["flaky"].status, tasks["flaky"].attempt, tasks["flaky"].exit_code) == ("failed", 2, 3)
    assert tasks["after-flaky"].status == "skipped"
    assert tasks["after-steady"].status == "succeeded"


def test_bad_input_exit_codes(tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "main.yml").write_text(
        "name: bad\ntasks:\n  - name: a\n    image: x\n    command: [true]\n    depends: zz\n"
    )
    res = odin_run(str(tmp_path / "bad"), data=tmp_path / "d1")
    assert res.returncode == 1 and "main.yml:6:" in res.stderr and "zz" in res.stderr
    res = odin_run(str(tmp_path / "nowhere"), data=tmp_path / "d2")
    assert res.returncode == 2 and "no main.yml" in res.stderr
    res = odin_run(str(SAMPLES / "parameterised"), "-p", "size=huge", data=tmp_path / "d3")
    assert res.returncode == 2 and "size" in res.stderr
    res = odin_run(str(SAMPLES / "hello"), "-p", "oops", data=tmp_path / "d4")
    assert res.returncode == 2 and "key=value" in res.stderr
    with pytest.raises(PipelineInvalid):
        run_pipeline(tmp_path / "bad", data_dir=tmp_path / "d5")
    with pytest.raises(ParamError):
        run_pipeline(SAMPLES / "hello", params={"nope": "1"}, data_dir=tmp_path / "d6")
