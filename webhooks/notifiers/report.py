"""What a check says beyond its state: a title, a Markdown summary, details, and the problems at `file:line`.

The notifier builds one `Report` per (commit, check) from the store: the validation check from the commit's recorded
problems (each an `Annotation`), a run's check from its tasks (status, attempts, duration) and, when it failed, the
failed task's last log lines. Senders turn a report into their provider's shape (GitHub check-run output, a GitLab
merge-request note, a Bitbucket Code Insights report) and never need the store themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from odin.controller.store.reports import ReportedRun, ReportedTask
from odin.schema.problems import Problem

SUMMARY_LIMIT = 60_000
"""Longest summary or text kept (GitHub accepts 65,535 characters per field)."""
LISTED_PROBLEMS = 50
"""Problems written out in a summary or note; the rest are counted (annotations still carry every one)."""
LISTED_TASKS = 50


@dataclass(frozen=True, slots=True)
class Annotation:
    """One problem of a pipeline file, where the provider shows it: next to its line."""

    path: str
    line: int
    column: int
    message: str
    severity: str = "error"  # error | warning (odin.schema.problems.Severity)

    @property
    def location(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"

    @property
    def key(self) -> str:
        """A stable id of the problem (Bitbucket's `external_id`): the same problem reported twice is one annotation."""
        raw = f"{self.path}\0{self.line}\0{self.column}\0{self.severity}\0{self.message}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    @property
    def is_error(self) -> bool:
        return self.severity != "warning"

    @classmethod
    def of(cls, problem: Mapping[str, Any]) -> Annotation:
        p = Problem.from_dict(dict(problem))
        return cls(p.file, max(1, p.line), max(1, p.column), p.message, p.severity)


@dataclass(frozen=True, slots=True)
class Report:
    """A check's content. `external_id` names what it reports on (a run id, or `validation`), so a check found again
    after a restart is known as ours and updated rather than duplicated."""

    external_id: str
    title: str
    summary: str
    text: str | None = None
    annotations: tuple[Annotation, ...] = ()
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def errors(self) -> int:
        return sum(1 for a in self.annotations if a.is_error)

    @property
    def warnings(self) -> int:
        return len(self.annotations) - self.errors


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _cell(text: str) -> str:
    """Text inside a Markdown table cell: one line, no column breaks."""
    return " ".join(text.split()).replace("|", "\\|")[:300]


def problem_lines(annotations: Sequence[Annotation], limit: int = LISTED_PROBLEMS) -> list[str]:
    """A Markdown list of the problems, errors first, then how many were left out."""
    ordered = sorted(annotations, key=lambda a: not a.is_error)
    lines = [
        f"- {'**error**' if a.is_error else 'warning'} `{a.location}`: {_cell(a.message)}" for a in ordered[:limit]
    ]
    if len(ordered) > limit:
        lines.append(f"- ... and {len(ordered) - limit} more")
    return lines


def validation_report(problems: Iterable[Mapping[str, Any]], pipelines: Sequence[str]) -> Report:
    annotations = tuple(Annotation.of(p) for p in problems)
    errors = sum(1 for a in annotations if a.is_error)
    warnings = len(annotations) - errors
    also = f", {_plural(warnings, 'warning')}" if warnings else ""
    if errors:
        title = f"{_plural(errors, 'problem')} in the pipeline files{also}"
        head = f"**{_plural(errors, 'problem')}** in the pipeline files of this commit: nothing runs for it."
    else:
        title = f"{_plural(len(pipelines), 'pipeline')} valid{also}"
        names = ", ".join(f"`{p}`" for p in pipelines[:20]) + (" ..." if len(pipelines) > 20 else "")
        head = f"Valid: {names}." if names else "Valid."
    summary = "\n".join([head, "", *problem_lines(annotations)]).strip()
    return Report("validation", title, summary[:SUMMARY_LIMIT], annotations=annotations)


def first_problem(report: Report | None) -> str | None:
    """`N problems; first: file:line: message` for a one-line status description (Gitea, GitLab); None if none."""
    if report is None or not report.annotations:
        return None
    ordered = sorted(report.annotations, key=lambda a: not a.is_error)
    first = ordered[0]
    counted = _plural(report.errors, "problem") if report.errors else _plural(report.warnings, "warning")
    return f"{counted}; first at {first.path}:{first.line}: {' '.join(first.message.split())}"


def duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    seconds = max(0, round((end - start).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {seconds}s"
    return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def _failed(tasks: Iterable[ReportedTask]) -> ReportedTask | None:
    failed = [t for t in tasks if t.status in ("failed", "error")]
    if not failed:
        return None
    return min(failed, key=lambda t: (t.finished_at is None, t.finished_at or datetime.max))


def run_report(run: ReportedRun, state_word: str, log_lines: Sequence[str] = ()) -> Report:
    """A run's check: its tasks in a table, and the failed task with its last log lines."""
    took = duration(run.started_at, run.finished_at)
    failed = _failed(run.tasks)
    title = f"run {run.id} {state_word}" + (f" in {took}" if took and run.finished_at else "")
    if failed is not None:
        exit_code = f", exit {failed.exit_code}" if failed.exit_code is not None else ""
        title += f": task {failed.name} failed{exit_code}"
    elif run.message and run.status not in ("succeeded", "running", "pending"):
        title += f": {' '.join(run.message.split())}"
    rows = ["| task | status | attempts | duration |", "|---|---|---|---|"]
    rows += [
        f"| `{_cell(t.name)}` | {t.status} | {t.attempt} | {duration(t.started_at, t.finished_at)} |"
        for t in run.tasks[:LISTED_TASKS]
    ]
    more = run.task_count - min(len(run.tasks), LISTED_TASKS)
    if more > 0:
        rows.append(f"| ... | {_plural(more, 'more task')} | | |")
    head = f"Pipeline `{run.pipeline}`, run `{run.id}`: **{state_word}**" + (f" in {took}" if took else "") + "."
    if run.message and run.status != "succeeded":
        head += f"\n\n{' '.join(run.message.split())}"
    summary = "\n".join([head, "", *rows]) if run.tasks else head
    text = None
    if failed is not None:
        detail = f"exit {failed.exit_code}" if failed.exit_code is not None else (failed.reason or "failed")
        parts = [f"### Task `{failed.name}` failed (attempt {failed.attempt}, {detail})"]
        if failed.message:
            parts.append(" ".join(failed.message.split())[:1000])
        if log_lines:
            fence = "````" if any("```" in line for line in log_lines) else "```"
            parts += [f"Last {_plural(len(log_lines), 'line')} of its log:", fence, *log_lines, fence]
        text = "\n\n".join(parts[:2]) + ("\n\n" + "\n".join(parts[2:]) if len(parts) > 2 else "")
    return Report(
        run.id,
        title[:250],
        summary[:SUMMARY_LIMIT],
        text[:SUMMARY_LIMIT] if text else None,
        started_at=run.started_at,
        completed_at=run.finished_at,
    )
