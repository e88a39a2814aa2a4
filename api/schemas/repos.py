"""Followed repositories (issue 13 items 1-2): what an admin registers and changes, and what the API shows.

Secrets are named by reference only (`env:NAME`, `file:/path`); the values are read where they are used and never
pass through the API or reach the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

RepoName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Pattern = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Reference = Annotated[str, msgspec.Meta(max_length=500)]
RunPolicy = Literal["latest", "each"]
PullRequests = Literal["off", "same-repo", "all"]
Login = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class RepoCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: RepoName
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    branches: Annotated[list[Pattern], msgspec.Meta(max_length=50)] = msgspec.field(default_factory=list)
    default_branch: Pattern | None = None
    # Tag patterns (`v*`): a new or moved tag they match runs the pipelines at its commit, once (docs/repositories.md).
    tags: Annotated[list[Pattern], msgspec.Meta(max_length=50)] = msgspec.field(default_factory=list)
    # Pull / merge requests whose base branch the patterns match run their pipelines: `off` (default), `same-repo`
    # (head in this repository), `all` (forks too, never with secrets). docs/webhooks.md#pull-requests
    pull_requests: PullRequests = "off"
    # Provider logins whose `/retest` comments are obeyed besides the provider's own roles (GitHub: owners, members,
    # collaborators); on GitLab, Gitea and Bitbucket, only these.
    pr_approvers: Annotated[list[Login], msgspec.Meta(max_length=200)] = msgspec.field(default_factory=list)
    poll_interval: float | None = None
    run_policy: RunPolicy | None = None
    namespace: Annotated[str, msgspec.Meta(max_length=63)] | None = None
    credentials_ref: Reference | None = None
    webhook_secret_ref: Reference | None = None
    enabled: bool = True
    # Artifact retention: the newest N finished runs, or D days, keep their artifacts (null: all of them).
    keep_runs: Annotated[int, msgspec.Meta(ge=1)] | None = None
    keep_days: Annotated[float, msgspec.Meta(gt=0)] | None = None


class RepoUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields given change; `null` clears a reference or the namespace."""

    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)] | msgspec.UnsetType = msgspec.UNSET
    branches: Annotated[list[Pattern], msgspec.Meta(max_length=50)] | msgspec.UnsetType = msgspec.UNSET
    default_branch: Pattern | msgspec.UnsetType = msgspec.UNSET
    tags: Annotated[list[Pattern], msgspec.Meta(max_length=50)] | msgspec.UnsetType = msgspec.UNSET
    pull_requests: PullRequests | msgspec.UnsetType = msgspec.UNSET
    pr_approvers: Annotated[list[Login], msgspec.Meta(max_length=200)] | msgspec.UnsetType = msgspec.UNSET
    poll_interval: float | msgspec.UnsetType = msgspec.UNSET
    run_policy: RunPolicy | msgspec.UnsetType = msgspec.UNSET
    namespace: Annotated[str, msgspec.Meta(max_length=63)] | msgspec.UnsetType | None = msgspec.UNSET
    credentials_ref: Reference | msgspec.UnsetType | None = msgspec.UNSET
    webhook_secret_ref: Reference | msgspec.UnsetType | None = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET
    keep_runs: Annotated[int, msgspec.Meta(ge=1)] | msgspec.UnsetType | None = msgspec.UNSET
    keep_days: Annotated[float, msgspec.Meta(gt=0)] | msgspec.UnsetType | None = msgspec.UNSET


class RepoOut(msgspec.Struct, kw_only=True):
    name: str
    url: str
    default_branch: str
    branches: list[str]
    followed_branches: list[str]  # the branches followed now (the patterns' matches seen on the remote)
    tags: list[str]  # the tag patterns followed ([]: none)
    pull_requests: str = "off"  # off | same-repo | all
    pr_approvers: list[str] = msgspec.field(default_factory=list)
    poll_interval: float
    run_policy: str
    namespace: str | None
    credentials_ref: str | None
    webhook_secret_ref: str | None
    enabled: bool
    keep_runs: int | None  # artifact retention (null: every run keeps its artifacts)
    keep_days: float | None
    removed_at: datetime | None
    origin: str  # "settings": ODIN_REPO (change it there); "api": registered through /v1/repos
    ready: bool | None  # None: not synced yet
    conditions: list[dict[str, Any]]
    branch_conditions: dict[str, list[dict[str, Any]]]
    last_seen_sha: str | None
    last_fetch_at: datetime | None
    created_at: datetime


class RepoList(msgspec.Struct, kw_only=True):
    items: list[RepoOut]
