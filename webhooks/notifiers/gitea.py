"""Gitea and Forgejo commit statuses: `POST /repos/{owner}/{repo}/statuses/{sha}` (states pending, success, error,
failure, warning), authenticated with `Authorization: token <token>` (a token with write access to the repository)."""

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


class GiteaStatuses:
    provider = "gitea"

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
            headers={"Authorization": f"token {token}"},
        )
