"""Gitea and Forgejo commit statuses: the same `POST /repos/{owner}/{repo}/statuses/{sha}` as GitHub's (Gitea
copied that API on purpose, states included), authenticated with `Authorization: token <token>` (a token with write
access to the repository).

Gitea has no annotation API, so the validation status's description names the first problem at `file:line` and how
many there are, and its link is the commit's page in Odin's console, where every problem is shown with its lines.
"""

from __future__ import annotations

from odin.webhooks.notifiers.base import DESCRIPTION_LIMIT, CommitStatus
from odin.webhooks.notifiers.github import GitHubStatuses
from odin.webhooks.notifiers.report import first_problem


class GiteaStatuses(GitHubStatuses):
    provider = "gitea"

    def description(self, status: CommitStatus) -> str:
        return (first_problem(status.report) or status.description)[:DESCRIPTION_LIMIT]

    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"token {token}"}
