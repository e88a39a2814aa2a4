"""Pull / merge request deliveries shaped like each provider's own (tests/webhooks/data), pointed at a real head
commit, and the provider's side of publishing that head: shared by the in-process tests (test_pull_requests.py) and
the ones over a real `odin serve` (test_pull_request_checks.py).
"""

from __future__ import annotations

import secrets
from typing import Any

from tests.support.git import GitRemote
from tests.webhooks.support import Recorded, load

FEATURE = "feature/bigger-model"

# Where each provider keeps a pull request's head (`PR_REFS[provider](number)`); Bitbucket keeps none: its head is the
# source branch itself.
PR_REFS = {
    "github": lambda n: f"refs/pull/{n}/head",
    "gitlab": lambda n: f"refs/merge-requests/{n}/head",
    "gitea": lambda n: f"refs/pull/{n}/head",
    "bitbucket": lambda _n: f"refs/heads/{FEATURE}",
}
# The pull request number of each provider's recorded delivery (`github_pr` & co. keep it).
NUMBERS = {"github": 42, "gitlab": 7, "gitea": 12, "bitbucket": 5}
FORK_NUMBERS = {"github": 43, "gitlab": 8, "gitea": 13}


def head(remote: GitRemote, ref: str, files: dict[str, str], message: str = "PR change", *, fork: bool = False) -> str:
    """Commit `files` on the feature branch (from main the first time) and publish it at `ref`, as the provider does
    for a pull request's head; the branch is pushed to the repository too unless the pull request is a fork's."""
    first = remote.local_tip(FEATURE) is None
    remote.commit(files, message, branch=FEATURE, parents=[remote.head] if first else None, push=False)
    if not fork:
        remote.push(FEATURE, force=True)
    return remote.publish(FEATURE, ref)


def fresh(delivery: Recorded, provider: str) -> Recorded:
    """The delivery under a new delivery id (another event, not the provider's retry of this one)."""
    names = {
        "github": ["X-GitHub-Delivery"],
        "gitlab": ["X-Gitlab-Event-UUID", "Idempotency-Key"],
        "gitea": ["X-Gitea-Delivery", "X-GitHub-Delivery", "X-Gogs-Delivery"],
        "bitbucket": ["X-Request-UUID"],
    }[provider]
    new = secrets.token_hex(16)
    for name in names:
        if name in delivery.headers:
            delivery.headers[name] = new
    return delivery


def github_pr(sha: str, *, action: str = "opened", fork: bool = False) -> Recorded:
    delivery = fresh(load("github", "pull_request_fork" if fork else "pull_request"), "github")
    delivery.body["action"] = action
    delivery.body["pull_request"]["head"]["sha"] = sha
    return delivery


def gitlab_mr(sha: str, *, fork: bool = False) -> Recorded:
    """A Merge Request Hook with new commits (`update` with `oldrev`), or a fork's merge request opened."""
    delivery = fresh(load("gitlab", "merge_request_fork" if fork else "merge_request"), "gitlab")
    delivery.body["object_attributes"]["last_commit"]["id"] = sha
    return delivery


def gitea_pr(sha: str, *, fork: bool = False) -> Recorded:
    """A `pull_request` event with new commits (`synchronized`), or a fork's pull request opened."""
    delivery = fresh(load("gitea", "pull_request_fork" if fork else "pull_request"), "gitea")
    delivery.body["pull_request"]["head"]["sha"] = sha
    return delivery


def bitbucket_pr(sha: str) -> Recorded:
    """A Bitbucket Cloud `pullrequest:created` from a branch of the repository itself (the recorded one is a fork's):
    its head is the source branch, `FEATURE`, named by its first 12 hex digits as Bitbucket does."""
    delivery = fresh(load("bitbucket", "pullrequest_created"), "bitbucket")
    pull = delivery.body["pullrequest"]
    pull["source"]["commit"]["hash"] = sha[:12]
    pull["source"]["repository"] = pull["destination"]["repository"]
    return delivery


def server_pr(event: str, sha: str, *, number: int = 7) -> Recorded:
    """A Bitbucket Server / Data Center pull request delivery (`X-Request-Id`, `X-Hub-Signature` added by `send`):
    the recorded one is a fork's `pr:opened`."""
    delivery = load("bitbucket", "server_pr_opened")
    delivery.headers["X-Request-Id"] = secrets.token_hex(16)
    delivery.headers["X-Event-Key"] = delivery.body["eventKey"] = event
    pull = delivery.body["pullRequest"]
    pull["id"] = number
    pull["fromRef"]["latestCommit"] = sha
    return delivery


def server_own_pr(event: str, sha: str, *, number: int = 7) -> Recorded:
    """A Bitbucket Server pull request delivery from a branch of the repository itself (`FEATURE`)."""
    delivery = server_pr(event, sha, number=number)
    pull: dict[str, Any] = delivery.body["pullRequest"]
    pull["fromRef"]["repository"] = pull["toRef"]["repository"]
    return delivery


def server_comment(sha: str, text: str = "/retest", *, by: str = "jsmith", number: int = 7) -> Recorded:
    """A Bitbucket Server `pr:comment:added` by `by` on the pull request from the repository's own branch at `sha`."""
    delivery = load("bitbucket", "server_pr_comment_added")
    delivery.headers["X-Request-Id"] = secrets.token_hex(16)
    body = delivery.body
    body["actor"]["name"] = body["actor"]["slug"] = by
    body["comment"]["author"]["name"] = body["comment"]["author"]["slug"] = by
    body["comment"]["text"] = text
    body["pullRequest"]["id"] = number
    body["pullRequest"]["fromRef"]["latestCommit"] = sha
    return delivery


def pr_delivery(provider: str, sha: str) -> Recorded:
    """The delivery that announces a pull request from the repository's own branch at `sha`, for `provider`."""
    if provider == "github":
        return github_pr(sha)
    if provider == "gitlab":
        return gitlab_mr(sha)
    if provider == "gitea":
        return gitea_pr(sha)
    return bitbucket_pr(sha)
