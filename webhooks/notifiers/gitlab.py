"""GitLab commit statuses: `POST /projects/:id/statuses/:sha` (states pending, running, success, failed, canceled).

`:id` is the numeric project id or the URL-encoded path (`acme%2Fml`). The token (`PRIVATE-TOKEN`) needs the `api`
scope and at least the Developer role. GitLab shows the statuses as an external stage of the commit's pipeline.
"""

from __future__ import annotations

from urllib.parse import quote

from odin.webhooks.notifiers.base import CommitStatus, State, StatusRequest

_STATES = {
    State.PENDING: "pending",
    State.RUNNING: "running",
    State.SUCCESS: "success",
    State.FAILURE: "failed",
    State.ERROR: "failed",
    State.CANCELLED: "canceled",
}


class GitLabStatuses:
    provider = "gitlab"

    def __init__(self, api_url: str, project: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.project = project.strip("/")

    def request(self, status: CommitStatus, token: str) -> StatusRequest:
        body: dict[str, object] = {"state": _STATES[status.state], "name": status.context}
        body["description"] = status.description[:255]
        if status.target_url:
            body["target_url"] = status.target_url
        return StatusRequest(
            url=f"{self.api_url}/projects/{quote(self.project, safe='')}/statuses/{status.sha}",
            json=body,
            headers={"PRIVATE-TOKEN": token},
        )
