"""Where the commit statuses of a repository registered through the API go (issue 13 item 3): its provider, API root
and path in it, told from its URL, and its token, by reference.

The repository `ODIN_REPO` names is configured by `ODIN_STATUS_*` (`from_settings` in this package). A registered
one is on:

- github.com, gitlab.com or bitbucket.org: that provider's public API;
- the host of `ODIN_STATUS_API_URL`: `ODIN_STATUS_PROVIDER` there (GitHub Enterprise, a self-hosted GitLab, Gitea,
  Bitbucket Server / Data Center as `bitbucket-server`);
- anything else (a plain git server, a local path): no provider can be told, so no statuses, said once at debug
  level.

Its token, in this order: on the status provider's own API with a GitHub App configured, the App's installation
tokens (the only tokens GitHub lets write check runs); else its own `credentials_ref` (the reference its git token
is read through; an SSH URL's is a key, not a token); else, on the status provider's own API, `ODIN_STATUS_TOKEN`.
A reference is resolved at each send, never stored resolved. A target is made on first use and again when the
repository's URL or reference changes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from odin.controller.facade import Controller, FollowedRepo, resolve_secret_ref
from odin.webhooks.matching import repo_key
from odin.webhooks.notifiers.base import Sender, StatusTarget

log = logging.getLogger("odin.webhooks.status")

PUBLIC_HOSTS = {
    "github.com": ("github", "https://api.github.com"),
    "gitlab.com": ("gitlab", "https://gitlab.com/api/v4"),
    "bitbucket.org": ("bitbucket", "https://api.bitbucket.org/2.0"),
}
"""Hosts whose provider and API root are known without being configured."""


@dataclass(frozen=True, slots=True)
class Place:
    """A repository at its provider: the provider, its API root, the repository's path there."""

    provider: str
    api_url: str
    repository: str


def place_of(url: str, *, provider: str | None, api_url: str | None) -> Place | None:
    """Where the repository at `url` lives, given the status settings (`provider` at `api_url`); None when that
    cannot be told."""
    key = repo_key(url)
    if key is None or key.startswith("file:") or "/" not in key:
        return None
    host, path = key.split("/", 1)
    if "/" not in path:
        return None  # every provider names a repository by at least owner/name
    configured = urlsplit(api_url).hostname if api_url else None
    if provider is not None and api_url is not None and configured is not None and configured.lower() == host:
        return Place(provider, api_url.rstrip("/"), path)
    known = PUBLIC_HOSTS.get(host)
    if known is not None:
        return Place(known[0], known[1], path)
    return None


def is_ssh(url: str) -> bool:
    """An ssh:// or scp-like (`git@host:org/repo`) URL: its credentials reference is a key, not a token."""
    url = url.strip()
    if "://" in url:
        return url.lower().startswith(("ssh://", "git+ssh://", "ssh+git://"))
    if url.startswith(("/", "./", "../", "~")):
        return False
    head = url.split("/", 1)[0]
    return ":" in head


class RegisteredTargets:
    """The targets of the repositories registered through the API, looked up by id among those the controller
    follows now, beside the `ODIN_REPO` one's (`primary`). Called from the notifier's thread only, but made
    thread-safe anyway: a lookup is cheap and a lock costs nothing here."""

    def __init__(
        self,
        controller: Controller,
        *,
        primary: tuple[int, StatusTarget] | None,
        place: Callable[[str], Place | None],
        make_sender: Callable[[Place], Sender],
        app_token: Callable[[Place], Callable[[], str] | None],
        shared_token: Callable[[Place], Callable[[], str] | None],
    ) -> None:
        """`place`: where a URL's repository lives; `make_sender`: the sender for a place; `app_token`: the GitHub
        App's installation tokens for a place, `shared_token`: `ODIN_STATUS_TOKEN` for a place (each None when the
        settings give that place none)."""
        self.controller = controller
        self.primary = primary
        self.place = place
        self.make_sender = make_sender
        self.app_token = app_token
        self.shared_token = shared_token
        self._made: dict[int, tuple[tuple[str, str | None], StatusTarget | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, repo_id: int) -> StatusTarget | None:
        if self.primary is not None and repo_id == self.primary[0]:
            return self.primary[1]
        followed = next((r for r in self.controller.repos.values() if r.id == repo_id), None)
        if followed is None or followed.origin != "api":
            return None
        key = (followed.url, followed.credentials_ref)
        with self._lock:
            made = self._made.get(repo_id)
            if made is not None and made[0] == key:
                return made[1]
            if made is not None and made[1] is not None:
                _close(made[1])
            target = self._target(followed)
            self._made[repo_id] = (key, target)
            return target

    def _target(self, followed: FollowedRepo) -> StatusTarget | None:
        place = self.place(followed.url)
        if place is None:
            log.debug("repository %s (%s): no provider can be told from its URL; no commit statuses", followed.name,
                      followed.url)  # fmt: skip
            return None
        token = self.app_token(place)
        ref = followed.credentials_ref
        if token is None and ref is not None and not is_ssh(followed.url):
            token = _reference(ref)
        if token is None:
            token = self.shared_token(place)
        if token is None:
            log.info(
                "repository %s: no commit statuses on %s (%s): it has no token; give it a credentials_ref allowed "
                "to set commit statuses",
                followed.name,
                place.provider,
                place.repository,
            )
            return None
        log.info("commit statuses for %s go to %s (%s)", followed.name, place.provider, place.repository)
        return StatusTarget(self.make_sender(place), token, place.repository)

    def close(self) -> None:
        with self._lock:
            made, self._made = self._made, {}
        for _, target in made.values():
            if target is not None:
                _close(target)
        if self.primary is not None:
            _close(self.primary[1])


def _reference(ref: str) -> Callable[[], str]:
    """The token a reference names, read at each call (a rotated `file:` needs no restart)."""

    def read() -> str:
        return resolve_secret_ref(ref)

    return read


def _close(target: StatusTarget) -> None:
    close = getattr(target.token, "close", None)  # a token source with a client of its own (GitHub App)
    if callable(close):
        close()
