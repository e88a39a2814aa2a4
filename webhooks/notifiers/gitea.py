"""Gitea and Forgejo commit statuses: the same `POST /repos/{owner}/{repo}/statuses/{sha}` as GitHub's (Gitea
copied that API on purpose, states included), authenticated with `Authorization: token <token>` (a token with write
access to the repository)."""

from __future__ import annotations

from odin.webhooks.notifiers.github import GitHubStatuses


class GiteaStatuses(GitHubStatuses):
    provider = "gitea"

    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"token {token}"}
