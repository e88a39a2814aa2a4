"""Pull / merge request events and their comments, read from each provider's payload into one vocabulary
(`PullRequestEvent`, `PullRequestComment`; the shapes each reads are in the provider modules' docstrings and the
recorded deliveries under tests/webhooks/data/).

Which actions run a head: GitHub `opened`, `synchronize`, `reopened`; GitLab `open`, `reopen`, and `update` with new
commits (`oldrev` present); Gitea/Forgejo `opened`, `synchronized`, `reopened`; Bitbucket Cloud
`pullrequest:created`, `pullrequest:updated`; Bitbucket Server / Data Center `pr:opened`, `pr:from_ref_updated`, and
`pr:modified` when the target branch changed. Every other action (closed, edited, labeled, approved...) is answered
`ignored`, naming the actions that do run. A comment (GitHub and Gitea `issue_comment`, GitLab Note Hook, Bitbucket
`pullrequest:comment_created` and `pr:comment:added`) runs the head again only with a `/retest` line.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from odin.controller.facade import PullRequest
from odin.webhooks.events import (
    Ignored,
    MalformedPayload,
    ParsedEvent,
    PullRequestComment,
    PullRequestEvent,
    retest_command,
)
from odin.webhooks.providers.base import obj, text

MAX_NUMBER = 2**31 - 1


def number(data: Mapping[str, Any], key: str, what: str) -> int:
    """A pull request's number (GitHub `number`, GitLab `iid`, Bitbucket `id`): a positive integer."""
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_NUMBER:
        raise MalformedPayload(f"{what}: `{key}` must be the pull request's number (a positive integer)")
    return value


def head_sha(value: object, what: str, *, short: bool = False) -> str:
    """The head commit's id: 40 hex digits (Bitbucket Cloud: at least 7, it sends 12)."""
    sha = value.strip().lower() if isinstance(value, str) else ""
    shortest = 7 if short else 40
    if not shortest <= len(sha) <= 40 or any(c not in "0123456789abcdef" for c in sha):
        raise MalformedPayload(f"{what}: the head commit must be a commit id, not {str(value)[:60]!r}")
    return sha


def acted(
    event: str, provider: str, action: str, runs: tuple[str, ...], repo_urls: tuple[str, ...], pull: PullRequest
) -> ParsedEvent:
    """The event when its action runs the head, else `Ignored` saying which actions do."""
    if action in runs:
        return PullRequestEvent(event, repo_urls, action, pull)
    reason = (
        f"{provider} pull request action `{action or '(none)'}` starts nothing (only {', '.join(runs)} run the head)"
    )
    return Ignored(event, reason, repo_urls)


def comment(
    event: str,
    provider: str,
    body: object,
    repo_urls: tuple[str, ...],
    pull: PullRequest,
    commenter: str | None,
    association: str | None = None,
) -> ParsedEvent:
    """A `/retest` comment, or `Ignored` for any other comment."""
    wanted, pipeline = retest_command(body)
    if not wanted:
        return Ignored(event, f"{provider} comment on pull request #{pull.number} without `/retest` starts nothing",
                       repo_urls)  # fmt: skip
    return PullRequestComment(event, repo_urls, pull, commenter, pipeline, association)


def login(data: Mapping[str, Any], *keys: str) -> str | None:
    """The first of `keys` in `data` that holds a name (GitHub/Gitea `login`, GitLab `username`, Bitbucket
    `nickname`)."""
    return next((value for value in (text(data, k) for k in keys) if value is not None), None)


def github_like_pull(provider: str, pr: Mapping[str, Any], what: str) -> PullRequest:
    """A GitHub or Gitea `pull_request` object: `head`/`base` with `ref`, `sha` and `repo` (`full_name`,
    `clone_url`; a deleted fork's `repo` is null, so it counts as a fork)."""
    head, base = obj(pr, "head"), obj(pr, "base")
    head_repo, base_repo = obj(head, "repo"), obj(base, "repo")
    base_name = text(base_repo, "full_name")
    head_name = text(head_repo, "full_name")
    return PullRequest(
        provider=provider,
        number=number(pr, "number", what),
        head_sha=head_sha(head.get("sha"), what),
        head_ref=text(head, "ref"),
        head_repo=head_name,
        head_url=text(head_repo, "clone_url"),
        base_branch=text(base, "ref"),
        fork=head_name is None or base_name is None or head_name.lower() != base_name.lower(),
        author=login(obj(pr, "user"), "login", "username"),
    )
