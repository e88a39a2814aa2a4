"""Bitbucket Server / Data Center build statuses: `POST {server}/rest/build-status/1.0/commits/{sha}` with
`{"state", "key", "name", "url", "description"}`, answered `204 No Content`.

- `ODIN_STATUS_API_URL` is the server's root (`https://bitbucket.example.com`, with its context path if it has one);
  a root given as the REST API's (`.../rest/api/1.0`) is cut back to the server's.
- States INPROGRESS, SUCCESSFUL and FAILED: this endpoint has no STOPPED (Bitbucket Cloud's), so a cancelled or
  skipped run is FAILED, its description saying why. A second post with the same `key` (the context, at most 255
  characters as the server allows) replaces the status, so each new state of a run updates one build.
- The `url` is required: the run's or the commit's console page, or without `ODIN_PUBLIC_URL` the commit's page on
  the server. The validation status's description names the first problem at `file:line` and the count, as Gitea's
  does (the server's Code Insights reports are not sent).
- Auth: an HTTP access token (personal, project or repository; `Authorization: Bearer`), or `user:password` (HTTP
  Basic) when the token contains a colon. The user needs read access to the repository.
"""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import quote

from odin.webhooks.notifiers.base import CommitStatus, State, StatusRequest
from odin.webhooks.notifiers.report import first_problem

KEY_LIMIT = 255
DESCRIPTION_LIMIT = 255

_STATES = {
    State.PENDING: "INPROGRESS",
    State.RUNNING: "INPROGRESS",
    State.SUCCESS: "SUCCESSFUL",
    State.FAILURE: "FAILED",
    State.ERROR: "FAILED",
    State.CANCELLED: "FAILED",
    State.TIMED_OUT: "FAILED",
    State.SKIPPED: "FAILED",
}


def server_root(api_url: str) -> str:
    """The server's root URL from `ODIN_STATUS_API_URL`, which may name its REST API instead."""
    root = api_url.rstrip("/")
    cut = root.find("/rest/")
    return root[:cut] if cut >= 0 else root.removesuffix("/rest")


def status_key(context: str) -> str:
    """The build's key: the context, or a recognisable prefix and a digest when it is over the server's limit."""
    if len(context) <= KEY_LIMIT:
        return context
    return f"{context[: KEY_LIMIT - 13]}-{hashlib.sha256(context.encode()).hexdigest()[:12]}"


def commit_page(root: str, repository: str, sha: str) -> str:
    """The commit's page on the server, for a repository path as its clone URLs give it (`scm/acme/ml`,
    `acme/ml`, `scm/~alice/ml`); the server's root when the path names no project and repository."""
    parts = [p for p in repository.strip("/").split("/") if p]
    if parts and parts[0] == "scm":
        parts = parts[1:]
    if len(parts) != 2:
        return root
    project, slug = parts[0], parts[1].removesuffix(".git")
    owner = f"users/{quote(project[1:])}" if project.startswith("~") else f"projects/{quote(project.upper())}"
    return f"{root}/{owner}/repos/{quote(slug)}/commits/{sha}"


class BitbucketServerStatuses:
    provider = "bitbucket-server"

    def __init__(self, api_url: str, repository: str) -> None:
        self.root = server_root(api_url)
        self.repository = repository.strip("/")

    def request(self, status: CommitStatus, token: str) -> StatusRequest:
        description = first_problem(status.report) or status.description
        body = {
            "state": _STATES[status.state],
            "key": status_key(status.context),
            "name": status.context,
            "url": status.target_url or commit_page(self.root, self.repository, status.sha),
            "description": description[:DESCRIPTION_LIMIT],
        }
        return StatusRequest(
            url=f"{self.root}/rest/build-status/1.0/commits/{status.sha}", json=body, headers=self.headers(token)
        )

    def headers(self, token: str) -> dict[str, str]:
        if ":" in token:
            return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}
        return {"Authorization": f"Bearer {token}"}
