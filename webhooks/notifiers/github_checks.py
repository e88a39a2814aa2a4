"""GitHub check runs: a check per pipeline (`odin/<pipeline>`) and one for validation, with every problem annotated
at its `file:line`, as Tekton's Pipelines-as-Code reports (docs/webhooks.md, "Checks and annotations").

- A run's check is created `queued`, moved to `in_progress` when its first task starts and completed with a
  conclusion (success, failure, cancelled, timed_out; neutral for a run `concurrency` skipped), linking the run's
  console page, its output summing up the tasks and, for a failure, the failed task's last log lines.
- The validation check is created completed, with one annotation per problem. GitHub takes at most 50 annotations per
  request and appends those of each update, so the first 50 go with the create and the rest in PATCHes of 50.
- Idempotent: a check run is found again by its name and `external_id` (the run's id, or `validation`): from memory,
  else from `GET /commits/{sha}/check-runs?check_name=...` after a restart. Its `output.annotations_count` says how
  many annotations are there, so a report sent again, or resumed after a failure between batches, sends only the
  missing ones and never duplicates the check or its annotations.
- Writing checks needs a GitHub App installation token (`Checks: write`); any other token is refused with 403
  ("Resource not accessible by integration", "You must authenticate via a GitHub App"). Then this sender says so
  once in the log and posts plain commit statuses (`github.py`) from then on.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from odin.webhooks.notifiers.base import CommitStatus, State
from odin.webhooks.notifiers.github import GitHubStatuses
from odin.webhooks.notifiers.http import ProviderHttp, Refused
from odin.webhooks.notifiers.report import Annotation, Report

log = logging.getLogger("odin.webhooks.status")

BATCH = 50
"""Annotations per request: GitHub's limit."""
_KNOWN_CHECKS = 10_000

_CONCLUSIONS = {
    State.SUCCESS: "success",
    State.FAILURE: "failure",
    State.ERROR: "failure",
    State.CANCELLED: "cancelled",
    State.TIMED_OUT: "timed_out",
    State.SKIPPED: "neutral",
}


def _time(at: datetime | None) -> str:
    moment = (at or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def annotation_body(a: Annotation) -> dict[str, Any]:
    """One annotation as GitHub takes it: a line, its column, the level from the problem's severity."""
    return {
        "path": a.path,
        "start_line": a.line,
        "end_line": a.line,
        "start_column": a.column,
        "end_column": a.column,
        "annotation_level": "failure" if a.is_error else "warning",
        "message": a.message[:64_000],
        "title": f"{'error' if a.is_error else 'warning'} at {a.location}"[:255],
    }


class GitHubChecks:
    provider = "github"
    run_reports = True

    def __init__(self, api_url: str, repository: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.repository = repository.strip("/")
        self.statuses = GitHubStatuses(api_url, repository)
        self.checks_allowed = True
        # (sha, name, external_id) -> (check run id, annotations it has): what this process made or found.
        self._known: OrderedDict[tuple[str, str, str], tuple[int, int]] = OrderedDict()

    @property
    def base(self) -> str:
        return f"{self.api_url}/repos/{quote(self.repository)}"

    def send(self, status: CommitStatus, token: str, http: ProviderHttp) -> None:
        if self.checks_allowed:
            report = status.report or Report(status.run_id or "validation", status.description, status.description)
            try:
                self._check(status, report, token, http)
                return
            except Refused as e:
                if e.status_code != 403:
                    raise
                self.checks_allowed = False
                log.warning(
                    "GitHub refused check runs for %s (403: %s): the token cannot write checks (that takes a GitHub "
                    "App installation token with Checks: write); posting commit statuses instead",
                    self.repository,
                    e.text,
                )
        request = self.statuses.request(status, token)
        http.call("POST", request.url, json=request.json, headers=request.headers)

    # -- check runs -------------------------------------------------------------------------------------------------
    def _check(self, status: CommitStatus, report: Report, token: str, http: ProviderHttp) -> None:
        headers = self.statuses.headers(token)
        key = (status.sha, status.context, report.external_id)
        known = self._known.get(key) or self._find(key, headers, http)
        annotations = [annotation_body(a) for a in report.annotations]
        body = self._body(status, report)
        if known is None:
            first = annotations[:BATCH]
            created = http.call(
                "POST",
                f"{self.base}/check-runs",
                json={**body, "head_sha": status.sha, "output": {**body["output"], "annotations": first}},
                headers=headers,
            )
            known = (int(created.json()["id"]), len(first))
        else:
            check_id, sent = known
            batch = annotations[sent : sent + BATCH]
            output = {**body["output"], "annotations": batch} if batch else body["output"]
            http.call("PATCH", f"{self.base}/check-runs/{check_id}", json={**body, "output": output}, headers=headers)
            known = (check_id, sent + len(batch))
        self._remember(key, known)
        check_id, sent = known
        while sent < len(annotations):
            batch = annotations[sent : sent + BATCH]
            output = {**body["output"], "annotations": batch}
            http.call("PATCH", f"{self.base}/check-runs/{check_id}", json={"output": output}, headers=headers)
            sent += len(batch)
            self._remember(key, (check_id, sent))

    def _body(self, status: CommitStatus, report: Report) -> dict[str, Any]:
        output: dict[str, Any] = {"title": report.title, "summary": report.summary}
        if report.text:
            output["text"] = report.text
        body: dict[str, Any] = {"name": status.context, "external_id": report.external_id, "output": output}
        if status.target_url:
            body["details_url"] = status.target_url
        if report.started_at is not None:
            body["started_at"] = _time(report.started_at)
        if status.state is State.PENDING:
            body["status"] = "queued"
        elif status.state is State.RUNNING:
            body["status"] = "in_progress"
        else:
            body["status"] = "completed"
            body["conclusion"] = _CONCLUSIONS[status.state]
            body["completed_at"] = _time(report.completed_at)
        return body

    def _find(self, key: tuple[str, str, str], headers: dict[str, str], http: ProviderHttp) -> tuple[int, int] | None:
        """The check run a previous process made for this report, with how many annotations it has."""
        sha, name, external_id = key
        found = http.call(
            "GET",
            f"{self.base}/commits/{sha}/check-runs",
            params={"check_name": name, "filter": "all", "per_page": 100},
            headers=headers,
        ).json()
        for check in found.get("check_runs") or []:
            if check.get("external_id") == external_id and check.get("head_sha", sha) == sha:
                count = int((check.get("output") or {}).get("annotations_count") or 0)
                return int(check["id"]), count
        return None

    def _remember(self, key: tuple[str, str, str], value: tuple[int, int]) -> None:
        self._known[key] = value
        self._known.move_to_end(key)
        while len(self._known) > _KNOWN_CHECKS:
            self._known.popitem(last=False)
