"""GitLab commit statuses: `POST /projects/:id/statuses/:sha` (states pending, running, success, failed, canceled),
and the validation problems as a merge-request note.

`:id` is the numeric project id or the URL-encoded path (`acme%2Fml`). The token (`PRIVATE-TOKEN`) needs the `api`
scope and at least the Developer role (Reporter suffices for notes). GitLab shows the statuses as an external stage of
the commit's pipeline; the validation status's description names the first problem at `file:line` and the count.

GitLab has no API through which a service outside GitLab CI adds code-quality findings or line annotations: its
code-quality widget reads only a CI job's `artifacts:reports:codequality`. So the problems go where a reviewer reads
them, as one note on each open merge request whose head is the commit (`GET .../repository/commits/:sha/
merge_requests`), listing every problem at `file:line:column`. The note carries a hidden marker naming the commit, so
a report sent again edits that note (`PUT .../notes/:note_id`) instead of adding another.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from odin.webhooks.notifiers.base import CommitStatus, State, StatusRequest
from odin.webhooks.notifiers.http import ProviderHttp
from odin.webhooks.notifiers.report import Report, first_problem, problem_lines

_STATES = {
    State.PENDING: "pending",
    State.RUNNING: "running",
    State.SUCCESS: "success",
    State.FAILURE: "failed",
    State.ERROR: "failed",
    State.CANCELLED: "canceled",
    State.TIMED_OUT: "failed",
    State.SKIPPED: "canceled",
}
DESCRIPTION_LIMIT = 255
NOTE_PROBLEMS = 200
"""Problems written out in a note (validation reports at most 100 per file)."""


def note_marker(sha: str, context: str) -> str:
    return f"<!-- odin-report {context} {sha} -->"


class GitLabStatuses:
    provider = "gitlab"

    def __init__(self, api_url: str, project: str, *, notes: bool = False) -> None:
        self.api_url = api_url.rstrip("/")
        self.project = project.strip("/")
        self.notes = notes

    @property
    def base(self) -> str:
        return f"{self.api_url}/projects/{quote(self.project, safe='')}"

    def request(self, status: CommitStatus, token: str) -> StatusRequest:
        body: dict[str, object] = {"state": _STATES[status.state], "name": status.context}
        body["description"] = (first_problem(status.report) or status.description)[:DESCRIPTION_LIMIT]
        if status.target_url:
            body["target_url"] = status.target_url
        return StatusRequest(url=f"{self.base}/statuses/{status.sha}", json=body, headers={"PRIVATE-TOKEN": token})

    def send(self, status: CommitStatus, token: str, http: ProviderHttp) -> None:
        request = self.request(status, token)
        http.call("POST", request.url, json=request.json, headers=request.headers)
        if self.notes and status.report is not None and status.report.annotations:
            self._note(status, status.report, request.headers, http)

    # -- merge-request notes ----------------------------------------------------------------------------------------
    def _note(self, status: CommitStatus, report: Report, headers: Any, http: ProviderHttp) -> None:
        merge_requests = http.call(
            "GET", f"{self.base}/repository/commits/{status.sha}/merge_requests", headers=headers
        ).json()
        marker = note_marker(status.sha, status.context)
        body = self._note_body(status, report, marker)
        for mr in merge_requests if isinstance(merge_requests, list) else []:
            if mr.get("state") != "opened" or mr.get("sha") != status.sha:
                continue  # the note is about the head of the merge request, not an older commit of it
            notes_url = f"{self.base}/merge_requests/{int(mr['iid'])}/notes"
            existing = self._find_note(notes_url, marker, headers, http)
            if existing is None:
                http.call("POST", notes_url, json={"body": body}, headers=headers)
            elif existing.get("body") != body:
                http.call("PUT", f"{notes_url}/{int(existing['id'])}", json={"body": body}, headers=headers)

    @staticmethod
    def _find_note(url: str, marker: str, headers: Any, http: ProviderHttp) -> dict[str, Any] | None:
        for page in range(1, 21):  # 2,000 notes at most: a merge request's own notes come first (sort=asc)
            found = http.call("GET", url, params={"per_page": 100, "page": page, "sort": "asc"}, headers=headers).json()
            if not isinstance(found, list):
                return None
            for note in found:
                if isinstance(note, dict) and marker in str(note.get("body", "")):
                    return note
            if len(found) < 100:
                return None
        return None

    @staticmethod
    def _note_body(status: CommitStatus, report: Report, marker: str) -> str:
        head = f"**Odin: {report.title}** at {status.sha[:12]}"
        if status.target_url:
            head += f" ([details]({status.target_url}))"
        return "\n".join([marker, head, "", *problem_lines(report.annotations, NOTE_PROBLEMS)])
