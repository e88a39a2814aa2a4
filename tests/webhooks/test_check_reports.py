"""What a check says, built from what the store recorded: pure functions, no server (test_checks.py sends them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from odin.controller.store.reports import ReportedRun, ReportedTask
from odin.webhooks.notifiers.bitbucket import KEY_LIMIT, status_key
from odin.webhooks.notifiers.github_checks import annotation_body
from odin.webhooks.notifiers.report import Annotation, first_problem, run_report, validation_report

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def problem(line: int, message: str, severity: str = "error") -> dict[str, object]:
    return {"file": "train/main.yml", "line": line, "column": 3, "message": message, "severity": severity}


def test_a_warning_is_annotated_as_a_warning_and_errors_come_first() -> None:
    report = validation_report([problem(9, "deprecated", "warning"), problem(4, "unknown field")], ["train"])
    assert (report.errors, report.warnings) == (1, 1)
    assert report.title == "1 problem in the pipeline files, 1 warning"
    assert [annotation_body(a)["annotation_level"] for a in report.annotations] == ["warning", "failure"]
    assert first_problem(report) == "1 problem; first at train/main.yml:4: unknown field"
    assert report.summary.splitlines()[2:] == [
        "- **error** `train/main.yml:4:3`: unknown field",
        "- warning `train/main.yml:9:3`: deprecated",
    ]


def test_a_valid_commit_names_its_pipelines_and_has_nothing_to_annotate() -> None:
    report = validation_report([], ["train", "eval"])
    assert report.title == "2 pipelines valid" and report.annotations == () and first_problem(report) is None


def test_a_problem_keeps_its_identity_and_a_line_of_at_least_one() -> None:
    a, b = Annotation.of(problem(0, "empty file")), Annotation.of(problem(0, "empty file"))
    assert a.line == 1 and a.key == b.key and a.key != Annotation.of(problem(1, "other")).key


def test_long_bitbucket_keys_stay_distinct_within_the_limit() -> None:
    one, two = status_key("odin/" + "a" * 60 + "/one"), status_key("odin/" + "a" * 60 + "/two")
    assert len(one) == len(two) == KEY_LIMIT and one != two and one.startswith("odin/aaa")
    assert status_key("odin/train") == "odin/train"


def test_a_failed_run_names_its_failed_task_and_shows_its_last_lines() -> None:
    tasks = (
        ReportedTask("prepare", "succeeded", 1, 0, None, None, T0, T0 + timedelta(seconds=5)),
        ReportedTask(
            "train", "failed", 2, 3, "Error", "exit code 3", T0 + timedelta(seconds=5), T0 + timedelta(seconds=65)
        ),
        ReportedTask("report", "skipped", 0, None, "DependencyFailed", None, None, None),
    )
    run = ReportedRun("r-1", "train", "failed", None, "task train failed", T0, T0, T0 + timedelta(seconds=66), tasks, 3)
    report = run_report(run, "failed", ["epoch 1", "```", "Traceback"])
    assert report.title == "run r-1 failed in 1m 6s: task train failed, exit 3"
    assert "| `train` | failed | 2 | 1m 0s |" in report.summary and "| `report` | skipped | 0 |  |" in report.summary
    assert report.text is not None
    assert report.text.startswith(
        "### Task `train` failed (attempt 2, exit 3)\n\nexit code 3\n\nLast 3 lines of its log:"
    )
    assert "````\nepoch 1\n```\nTraceback\n````" in report.text, "a fence the log cannot close"
