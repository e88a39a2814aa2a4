"""GitHub commit statuses: `POST /repos/{owner}/{repo}/statuses/{sha}` (states error, failure, pending, success).

The token needs "Commit statuses: write" (fine-grained) or `repo:status` (classic). Check runs, with annotations,
need a GitHub App's installation token (`github_checks.py`), which falls back to these statuses when refused.
"""

from __future__ import annotations

from urllib.parse import quote

from odin.webhooks.notifiers.base import CommitStatus, State, StatusRequest

_STATES = {
    State.PENDING: "pending",
    State.RUNNING: "pending",
    State.SUCCESS: "success",
    State.FAILURE: "failure",
    State.ERROR: "error",
    State.CANCELLED: "error",
    State.TIMED_OUT: "failure",
    State.SKIPPED: "error",
}


class GitHubStatuses:
    provider = "github"

    def __init__(self, api_url: str, repository: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.repository = repository.strip("/")

    def request(self, status: CommitStatus, token: str) -> StatusRequest:
        body: dict[str, object] = {"state": _STATES[status.state], "context": status.context}
        body["description"] = self.description(status)
        if status.target_url:
            body["target_url"] = status.target_url
        return StatusRequest(
            url=f"{self.api_url}/repos/{quote(self.repository)}/statuses/{status.sha}",
            json=body,
            headers=self.headers(token),
        )

    def description(self, status: CommitStatus) -> str:
        return status.description

    def headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
