"""Commit statuses sent back to the provider: `from_settings` builds the notifier `odin serve` starts."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable

from pydantic import SecretStr

from odin.controller.facade import Controller, resolve_secret_ref
from odin.controller.settings import Settings
from odin.webhooks.matching import repo_key
from odin.webhooks.notifiers.base import (
    CommitStatus,
    CommitStatusNotifier,
    Sender,
    State,
    StatusApi,
    StatusPoster,
    StatusRequest,
    StatusTarget,
)
from odin.webhooks.notifiers.bitbucket import BitbucketReports
from odin.webhooks.notifiers.bitbucket_server import BitbucketServerStatuses
from odin.webhooks.notifiers.gitea import GiteaStatuses
from odin.webhooks.notifiers.github import GitHubStatuses
from odin.webhooks.notifiers.github_app import GitHubAppTokens
from odin.webhooks.notifiers.github_checks import GitHubChecks
from odin.webhooks.notifiers.gitlab import GitLabStatuses
from odin.webhooks.notifiers.targets import Place, RegisteredTargets, place_of
from odin.webhooks.secrets import is_reference

log = logging.getLogger("odin.webhooks.status")

DEFAULT_API_URLS = {
    "github": "https://api.github.com",
    "gitlab": "https://gitlab.com/api/v4",
    "bitbucket": "https://api.bitbucket.org/2.0",
}
API_URL_EXAMPLES = {"bitbucket-server": "https://bitbucket.example.com, the server's root"}
"""What `ODIN_STATUS_API_URL` looks like for a provider without a default, where it is not Gitea's."""
LOG_LINES = 20
"""Last lines of a failed task's log shown in its run's check."""

__all__ = [
    "CommitStatus",
    "CommitStatusNotifier",
    "NotifierConfigError",
    "Sender",
    "State",
    "StatusApi",
    "StatusRequest",
    "StatusTarget",
    "from_settings",
    "sender",
    "status_api",
]


class NotifierConfigError(ValueError):
    """The commit status settings are incomplete; the message says which setting to add."""


def status_api(provider: str, api_url: str, repository: str) -> StatusApi:
    if provider == "github":
        return GitHubStatuses(api_url, repository)
    if provider == "gitlab":
        return GitLabStatuses(api_url, repository)
    if provider == "gitea":
        return GiteaStatuses(api_url, repository)
    if provider == "bitbucket-server":
        return BitbucketServerStatuses(api_url, repository)
    raise NotifierConfigError(
        f"unknown commit status provider {provider!r} (github, gitlab, gitea or bitbucket-server)"
    )


def sender(provider: str, api_url: str, repository: str, *, checks: bool) -> Sender:
    """What shows a commit's statuses at `provider`: with `checks`, also its problems at file:line and run summaries
    where the provider can (docs/webhooks.md, "Checks and annotations")."""
    if provider == "github":
        return GitHubChecks(api_url, repository) if checks else StatusPoster(GitHubStatuses(api_url, repository))
    if provider == "gitlab":
        return GitLabStatuses(api_url, repository, notes=checks)
    if provider == "bitbucket":
        return BitbucketReports(api_url, repository, reports=checks)
    if provider == "gitea":
        return StatusPoster(GiteaStatuses(api_url, repository))
    if provider == "bitbucket-server":
        return StatusPoster(BitbucketServerStatuses(api_url, repository))
    raise NotifierConfigError(
        f"unknown commit status provider {provider!r} (github, gitlab, gitea, bitbucket or bitbucket-server)"
    )


def from_settings(settings: Settings, controller: Controller) -> CommitStatusNotifier | None:
    """The notifier configured by `ODIN_STATUS_*`, not yet started; None when commit statuses are off. It sets the
    statuses of the `ODIN_REPO` repository as those settings say, and of every repository registered through the API
    whose provider its URL tells, with the repository's own token (`targets.py`)."""
    provider = settings.status_provider
    if provider is None:
        return None
    app = settings.status_github_app_id is not None or settings.status_github_app_key is not None
    api_url = settings.status_api_url or DEFAULT_API_URLS.get(provider)
    if api_url is None:
        example = API_URL_EXAMPLES.get(provider, "https://git.example.com/api/v1")
        raise NotifierConfigError(f"ODIN_STATUS_API_URL is required for {provider} (e.g. {example})")
    primary: tuple[int, StatusTarget] | None = None
    if settings.repo is not None and settings.repo_name in controller.repos:
        if settings.status_token is None and not app:
            raise NotifierConfigError("ODIN_STATUS_PROVIDER is set but ODIN_STATUS_TOKEN is not")
        repo = controller.repo(settings.repo_name)
        candidates = (_repository_path(url) for url in (repo.url, *settings.repo_aliases))
        repository = settings.status_repo or next((path for path in candidates if path), None)
        if not repository:
            raise NotifierConfigError(
                f"cannot tell the repository's path from {repo.url} or ODIN_REPO_ALIASES; set ODIN_STATUS_REPO "
                "(owner/name)"
            )
        token = _token_source(settings, provider, api_url, repository)
        target = StatusTarget(sender(provider, api_url, repository, checks=settings.status_checks), token, repository)
        primary = (repo.id, target)
        log.info("commit statuses for %s go to %s (%s)", repo.name, provider, repository)
    elif app:
        _app_settings(settings, provider)  # the same errors as with ODIN_REPO: they are about the settings

    def place(url: str) -> Place | None:
        return place_of(url, provider=provider, api_url=api_url)

    def make_sender(where: Place) -> Sender:
        return sender(where.provider, where.api_url, where.repository, checks=settings.status_checks)

    def on_own_api(where: Place) -> bool:
        return (where.provider, where.api_url) == (provider, api_url.rstrip("/"))

    def app_token(where: Place) -> Callable[[], str] | None:
        if not app or not on_own_api(where):
            return None
        app_id, app_key = _app_settings(settings, provider)
        return GitHubAppTokens(where.api_url, where.repository, app_id, _resolved(app_key))

    def shared_token(where: Place) -> Callable[[], str] | None:
        if settings.status_token is None or not on_own_api(where):
            return None
        return _resolved(settings.status_token)

    targets = RegisteredTargets(
        controller,
        primary=primary,
        place=place,
        make_sender=make_sender,
        app_token=app_token,
        shared_token=shared_token,
    )

    def run_url(run_id: str, pipeline: str, sha: str) -> str | None:
        if settings.public_url is None:
            return None
        return settings.run_url_template.format(
            public_url=settings.public_url.rstrip("/"), run_id=run_id, pipeline=pipeline, commit=sha
        )

    def commit_url(sha: str) -> str | None:
        return None if settings.public_url is None else f"{settings.public_url.rstrip('/')}/console/commits/{sha}"

    def read_log(run_id: str, task: str) -> list[str]:
        lines = controller.executor.logs(run_id, task, tail=LOG_LINES)
        return [line.rstrip("\r\n")[:500] for line in itertools.islice(lines, LOG_LINES)]

    return CommitStatusNotifier(
        targets,
        controller.db,
        context_prefix=settings.status_context,
        run_url=run_url,
        commit_url=commit_url,
        read_log=read_log,
    )


def _resolved(secret: SecretStr) -> Callable[[], str]:
    """The secret's value, read again at each call when it is a reference (a rotated file needs no restart)."""
    value = secret.get_secret_value()

    def read() -> str:
        return resolve_secret_ref(value) if is_reference(value) else value

    return read


def _token_source(settings: Settings, provider: str, api_url: str, repository: str) -> Callable[[], str]:
    """`ODIN_STATUS_TOKEN`, or installation tokens minted for the GitHub App (`ODIN_STATUS_GITHUB_APP_*`)."""
    if settings.status_github_app_id is None and settings.status_github_app_key is None:
        assert settings.status_token is not None  # checked by the caller
        return _resolved(settings.status_token)
    app_id, app_key = _app_settings(settings, provider)
    return GitHubAppTokens(api_url, repository, app_id, _resolved(app_key))


def _app_settings(settings: Settings, provider: str) -> tuple[int, SecretStr]:
    """The GitHub App's id and key, both given, for github. Raises `NotifierConfigError`."""
    app_id, app_key = settings.status_github_app_id, settings.status_github_app_key
    if provider != "github":
        raise NotifierConfigError("ODIN_STATUS_GITHUB_APP_ID and ODIN_STATUS_GITHUB_APP_KEY are for github only")
    if app_id is None or app_key is None:
        raise NotifierConfigError("a GitHub App needs both ODIN_STATUS_GITHUB_APP_ID and ODIN_STATUS_GITHUB_APP_KEY")
    return app_id, app_key


def _repository_path(url: str) -> str | None:
    key = repo_key(url)
    if key is None or key.startswith("file:"):
        return None
    return key.split("/", 1)[1] if "/" in key else None
