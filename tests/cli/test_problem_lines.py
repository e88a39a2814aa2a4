"""How odinctl prints the problems the API lists: a warning reads `warning:` and is not counted as a problem."""

from __future__ import annotations

from datetime import UTC, datetime

from odin.api.schemas import CommitDetail, ProblemOut
from odin.cli.render import no_runs_lines, problem_line

ERROR = ProblemOut(file="p/main.yml", line=6, column=5, message="unknown task `ghost`")
WARNING = ProblemOut(file="p/main.yml", line=5, column=20, message="ElasticJob is deprecated", severity="warning")


def test_a_warning_line_says_warning_and_an_error_line_does_not() -> None:
    assert problem_line(ERROR) == "p/main.yml:6:5: unknown task `ghost`"
    assert problem_line(WARNING) == "p/main.yml:5:20: warning: ElasticJob is deprecated"


def test_why_an_invalid_commit_has_no_runs_counts_only_its_errors() -> None:
    commit = CommitDetail(
        sha="a" * 40,
        branch="main",
        subject="s",
        author_name="a",
        author_email="a@example.invalid",
        committed_at=None,
        seen_at=datetime.now(UTC),
        validation="invalid",
        pipelines_changed=["p"],
        problem_count=1,
        absorbed_by=None,
        message="s",
        parents=[],
        problems=[ERROR, WARNING],
        runs=[],
    )
    lines = no_runs_lines(commit)
    assert lines[0] == f"no runs: commit {'a' * 12} is invalid (1 problem); nothing was started:"
    assert lines[1:] == [f"  {problem_line(ERROR)}", f"  {problem_line(WARNING)}"]
