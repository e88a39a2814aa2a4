"""Bitbucket Cloud: a build status per check, and the validation problems as a Code Insights report with one
annotation per problem at its `file:line`.

- Build status: `POST /2.0/repositories/{workspace}/{repo_slug}/commit/{sha}/statuses/build` with a `key` (the
  check's name, hashed when over Bitbucket's 40 characters); a second post with the same key updates it. States
  INPROGRESS, SUCCESSFUL, FAILED, STOPPED; the `url` is required (the run's or the commit's console page;
  without `ODIN_PUBLIC_URL`, the commit's page on bitbucket.org).
- Code Insights (validation only): `PUT .../commit/{sha}/reports/{report_id}` creates or replaces the report, then
  `POST .../reports/{report_id}/annotations` creates or updates up to 100 annotations per request, matched by
  `external_id` (a digest of the problem), 1,000 per report at most. Both are keyed, so sending a report again
  updates it and duplicates nothing.
- Auth: a repository, project or workspace access token (`Authorization: Bearer`, with write access to the
  repository: scope `repository:write`), or `user:app-password` / `email:api-token` (HTTP Basic) when the token
  contains a colon.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import quote

from odin.webhooks.notifiers.base import CommitStatus, State
from odin.webhooks.notifiers.http import ProviderHttp
from odin.webhooks.notifiers.report import Annotation, Report

BATCH = 100
"""Annotations per request: Bitbucket's limit."""
MAX_ANNOTATIONS = 1000
"""Annotations per report: Bitbucket's limit."""
KEY_LIMIT = 40

_STATES = {
    State.PENDING: "INPROGRESS",
    State.RUNNING: "INPROGRESS",
    State.SUCCESS: "SUCCESSFUL",
    State.FAILURE: "FAILED",
    State.ERROR: "FAILED",
    State.CANCELLED: "STOPPED",
    State.TIMED_OUT: "FAILED",
    State.SKIPPED: "STOPPED",
}


def status_key(context: str) -> str:
    """The build status's key: the context, or a recognisable prefix and a digest when it is too long."""
    if len(context) <= KEY_LIMIT:
        return context
    digest = hashlib.sha256(context.encode()).hexdigest()[:12]
    return f"{context[: KEY_LIMIT - 13]}-{digest}"


def report_id(context: str) -> str:
    """The Code Insights report's id: the context, as a URL path segment."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in context)[:100]


def annotation_body(a: Annotation) -> dict[str, Any]:
    return {
        "external_id": a.key,
        "annotation_type": "BUG",
        "path": a.path,
        "line": a.line,
        "summary": f"{a.location}: {' '.join(a.message.split())}"[:450],
        "details": a.message[:2000],
        "severity": "HIGH" if a.is_error else "MEDIUM",
        "result": "FAILED",
    }


class BitbucketReports:
    provider = "bitbucket"

    def __init__(self, api_url: str, repository: str, *, reports: bool = True) -> None:
        self.api_url = api_url.rstrip("/")
        self.repository = repository.strip("/")
        self.reports = reports

    @property
    def base(self) -> str:
        return f"{self.api_url}/repositories/{quote(self.repository)}"

    def headers(self, token: str) -> dict[str, str]:
        if ":" in token:
            return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}
        return {"Authorization": f"Bearer {token}"}

    def send(self, status: CommitStatus, token: str, http: ProviderHttp) -> None:
        headers = self.headers(token)
        body = {
            "key": status_key(status.context),
            "state": _STATES[status.state],
            "name": status.context,
            "description": status.description,
            "url": status.target_url or f"https://bitbucket.org/{self.repository}/commits/{status.sha}",
        }
        http.call("POST", f"{self.base}/commit/{status.sha}/statuses/build", json=body, headers=headers)
        if self.reports and status.report is not None and status.run_id is None:
            self._report(status, status.report, headers, http)

    def _report(self, status: CommitStatus, report: Report, headers: dict[str, str], http: ProviderHttp) -> None:
        url = f"{self.base}/commit/{status.sha}/reports/{report_id(status.context)}"
        result = "FAILED" if status.state is not State.SUCCESS else "PASSED"
        body: dict[str, Any] = {
            "title": "Odin pipeline validation",
            "details": report.title,
            "report_type": "BUG",
            "reporter": "odin",
            "result": result,
            "data": [
                {"title": "Problems", "type": "NUMBER", "value": report.errors},
                {"title": "Warnings", "type": "NUMBER", "value": report.warnings},
            ],
        }
        if status.target_url:
            body["link"] = status.target_url
        http.call("PUT", url, json=body, headers=headers)
        unique = {a.key: a for a in report.annotations}  # one annotation per external_id, in the order found
        annotations = [annotation_body(a) for a in list(unique.values())[:MAX_ANNOTATIONS]]
        for start in range(0, len(annotations), BATCH):
            http.call("POST", f"{url}/annotations", json=annotations[start : start + BATCH], headers=headers)
