"""GitHub commit statuses: `POST /repos/{owner}/{repo}/statuses/{sha}` (states error, failure, pending, success).

The token needs "Commit statuses: write" (fine-grained) or `repo:status` (classic). Check runs would need a GitHub
App; statuses work with any token and show the same way on commits and pull requests.
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
}


class GitHubStatuses:
    provider = "github"

    def __init__(self, api_url: str, repository: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.repository = repository.strip("/")

    def request(self, status: CommitStatus, token: str) -> StatusRequest:
        body: dict[str, object] = {"state": _STATES[status.state], "context": status.context}
        body["description"] = status.description
        if status.target_url:
            body["target_url"] = status.target_url
        return StatusRequest(
            url=f"{self.api_url}/repos/{quote(self.repository)}/statuses/{status.sha}",
            json=body,
            headers=self.headers(token),
        )

    def headers(self, token: str) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
