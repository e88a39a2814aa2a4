"""What a provider's payload means to Odin, in one vocabulary for every provider.

Each provider module turns its own headers and JSON into one of these. They are claims, not facts: the receiver uses
them to pick the repository and decide whether to ask for a sync, and the sync itself reads the truth from the remote.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from odin.controller.facade import PullRequest

ZERO_SHA = "0" * 40
"""What providers put in `before`/`after` for a ref that did not exist before, or does not exist any more."""


class MalformedPayload(ValueError):
    """The body is not JSON, or lacks what this event must have. The message says what, for the sender."""


@dataclass(frozen=True, slots=True)
class RefUpdate:
    """One ref moved by a push. `after` is None when the ref was deleted; `forced` None when the provider does not
    say (the sync detects force pushes itself)."""

    ref: str
    before: str | None
    after: str | None
    forced: bool | None = None

    @property
    def deleted(self) -> bool:
        return self.after is None

    @property
    def created(self) -> bool:
        return self.before is None and self.after is not None

    @property
    def branch(self) -> str | None:
        return self.ref.removeprefix("refs/heads/") if self.ref.startswith("refs/heads/") else None

    @property
    def tag(self) -> str | None:
        return self.ref.removeprefix("refs/tags/") if self.ref.startswith("refs/tags/") else None


@dataclass(frozen=True, slots=True)
class PushEvent:
    """Refs were pushed. Most providers send one ref per delivery; Bitbucket may send several."""

    event: str
    repo_urls: tuple[str, ...]
    updates: tuple[RefUpdate, ...]


@dataclass(frozen=True, slots=True)
class RunRequest:
    """The generic endpoint's "run this pipeline at this commit": a manual start, made by a CI system."""

    event: str
    repo_urls: tuple[str, ...]
    pipeline: str
    ref: str | None
    sha: str | None
    params: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ping:
    """The provider checks that the hook works (GitHub `ping`, Bitbucket `diagnostics:ping`)."""

    event: str
    repo_urls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Ignored:
    """An authenticated event Odin does not act on (a pull request, an issue comment, ...)."""

    event: str
    reason: str
    repo_urls: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PullRequestEvent:
    """A pull / merge request was opened, got new commits or was reopened: its head should run. `repo_urls` are the
    base repository's (the one Odin follows)."""

    event: str
    repo_urls: tuple[str, ...]
    action: str
    pull: PullRequest


@dataclass(frozen=True, slots=True)
class PullRequestComment:
    """A `/retest` comment on a pull request. `pull` carries what the payload says of the pull request (a GitHub or
    Gitea comment names only its number); `association` is GitHub's author_association of the commenter."""

    event: str
    repo_urls: tuple[str, ...]
    pull: PullRequest
    commenter: str | None
    pipeline: str | None = None  # `/retest PIPELINE`: only that one
    association: str | None = None


ParsedEvent = PushEvent | RunRequest | Ping | Ignored | PullRequestEvent | PullRequestComment

_RETEST = re.compile(r"^/retest(?:[ \t]+(?P<pipeline>[^\s]+))?[ \t]*$", re.MULTILINE)


def retest_command(body: object) -> tuple[bool, str | None]:
    """Does a comment ask for a retest (a line `/retest` or `/retest PIPELINE`, as Prow and Tekton's
    Pipelines-as-Code read it), and of which pipeline (None: the pull request's)?"""
    if not isinstance(body, str):
        return False, None
    found = _RETEST.search(body.replace("\r\n", "\n"))
    if found is None:
        return False, None
    return True, found.group("pipeline")


def sha_or_none(value: object) -> str | None:
    """A 40-hex SHA from a payload field; the all-zero SHA and anything else that is not a SHA are None."""
    if not isinstance(value, str):
        return None
    sha = value.strip().lower()
    if len(sha) != 40 or sha == ZERO_SHA or any(c not in "0123456789abcdef" for c in sha):
        return None
    return sha


def nul_field(event: ParsedEvent, delivery_id: str) -> str | None:
    """The name of the first field Odin uses that holds a NUL character, or None.

    A NUL is valid JSON but nothing Odin stores or hands to git may contain one (Postgres cannot store it): the
    delivery is malformed, and is answered 400 before anything is recorded.
    """
    fields: list[tuple[str, str | None]] = [("delivery id", delivery_id), ("event", event.event)]
    fields += [("repository URL", url) for url in event.repo_urls]
    if isinstance(event, PushEvent):
        fields += [("ref", u.ref) for u in event.updates]
    elif isinstance(event, PullRequestEvent | PullRequestComment):
        pull = event.pull
        fields += [("head ref", pull.head_ref), ("base branch", pull.base_branch), ("head URL", pull.head_url)]
        fields += [("author", pull.author), ("head repository", pull.head_repo)]
        if isinstance(event, PullRequestComment):
            fields += [("commenter", event.commenter), ("pipeline", event.pipeline)]
    elif isinstance(event, RunRequest):
        fields += [("pipeline", event.pipeline), ("ref", event.ref)]
        fields += [(f"params.{name}", f"{name}{value}") for name, value in event.params.items()]
    return next((name for name, value in fields if value is not None and "\0" in value), None)
