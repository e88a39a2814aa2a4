"""Fetching one branch and the tags of a remote into the cache, and the references that bookkeeping leaves.

The cheap path first: list the remote's references (one round trip, no object negotiation) and stop there when the
branch tip and the tags are what the cache has. Only otherwise is a fetch run, on the same connection. Tags the
remote dropped are pruned here rather than by libgit2, so that pruning can never touch the branch ref: a branch that
disappears is reported (`BranchNotFound`), not silently forgotten. The tip a force-push discarded is pinned under
`refs/odin/kept/`, so that even a `git gc` run by a person cannot drop the commits runs refer to.

The caller holds the fetch locks (see `Mirror.fetch`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pygit2
from pygit2.enums import FetchPrune

from odin.controller.git._transport import CallbackRefusal, OdinCallbacks, translate_error
from odin.controller.git.credentials import Credentials
from odin.controller.git.errors import BranchNotFound, GitError, RemoteUnreachable
from odin.controller.git.models import FetchResult
from odin.controller.git.urls import RemoteUrl, UrlKind

KEPT_PREFIX = "refs/odin/kept/"

# Network errors surface from pygit2 as GitError subclasses, from our callbacks as CallbackRefusal, and from
# libgit2's OS layer occasionally as OSError (pygit2 maps some ENOTFOUND cases to it).
NETWORK_ERRORS = (pygit2.GitError, CallbackRefusal, OSError)


@dataclass(frozen=True, slots=True)
class Source:
    """Where and what to fetch: the remote, how to reach it, and the branch it follows."""

    url: RemoteUrl
    credentials: Credentials | None
    proxy: Literal[True] | str | None
    branch: str

    @property
    def tracking_ref(self) -> str:
        return f"refs/remotes/origin/{self.branch}"

    @property
    def refspecs(self) -> list[str]:
        return [f"+refs/heads/{self.branch}:{self.tracking_ref}", "+refs/tags/*:refs/tags/*"]


def ref_target(repo: pygit2.Repository, name: str) -> str | None:
    ref = repo.references.get(name)
    if ref is None:
        return None
    return str(ref.resolve().target)


def local_tags(repo: pygit2.Repository) -> dict[str, str]:
    return {
        ref.name: str(ref.target)
        for ref in repo.references.iterator(pygit2.enums.ReferenceFilter.TAGS)
        if isinstance(ref.target, pygit2.Oid)
    }


def fetch(repo: pygit2.Repository, source: Source) -> FetchResult:
    """Bring `repo` up to date with the source's branch and tags (see the module docstring)."""
    previous = ref_target(repo, source.tracking_ref)
    tags_before = local_tags(repo)
    remote, advertised = _connect(repo, source)
    remote_tip = _advertised_tip(advertised, source)
    remote_tags = {name: sha for name, sha in advertised.items() if name.startswith("refs/tags/") and "^{}" not in name}
    tags_changed = remote_tags != tags_before
    if remote_tip == previous and not tags_changed:
        return FetchResult(tip=remote_tip, previous_tip=previous, changed=False, forced=False)
    _download(remote, source)
    for name in tags_before.keys() - remote_tags.keys():
        with contextlib.suppress(KeyError):
            repo.references.delete(name)
    tip = ref_target(repo, source.tracking_ref)
    if tip is None:  # pragma: no cover - libgit2 would have raised
        raise GitError(f"fetching {source.branch!r} from {source.url.redacted} did not update the cache",
                       url=source.url.redacted)  # fmt: skip
    forced = previous is not None and previous != tip and not repo.descendant_of(tip, previous)
    if forced:
        assert previous is not None
        repo.references.create(f"{KEPT_PREFIX}{previous}", previous, force=True)
    return FetchResult(
        tip=tip, previous_tip=previous, changed=tip != previous, forced=forced, tags_changed=tags_changed, fetched=True
    )


def remote_branches(repo: pygit2.Repository, source: Source) -> list[str]:
    """The names of the branches the remote advertises (one round trip, nothing downloaded)."""
    _remote, advertised = _connect(repo, source)
    return sorted(name.removeprefix("refs/heads/") for name in advertised if name.startswith("refs/heads/"))


def remote_tags(repo: pygit2.Repository, source: Source) -> dict[str, str]:
    """The tags the remote advertises, name -> the commit each names (an annotated tag is peeled to its commit)."""
    _remote, advertised = _connect(repo, source)
    return {
        name.removeprefix("refs/tags/"): advertised.get(f"{name}^{{}}", sha)
        for name, sha in sorted(advertised.items())
        if name.startswith("refs/tags/") and not name.endswith("^{}")
    }


def _connect(repo: pygit2.Repository, source: Source) -> tuple[pygit2.Remote, dict[str, str]]:
    """Connect, and read what the remote advertises (reference name -> sha)."""
    url = source.url
    if url.kind is UrlKind.LOCAL and not Path(url.transport_url).exists():
        # libgit2 only says "unsupported URL protocol" for a path that does not exist.
        raise RemoteUnreachable(
            f"the repository directory {url.redacted} does not exist (moved, deleted or not mounted?); will retry",
            url=url.redacted,
        )
    remote = repo.remotes.create_anonymous(url.transport_url)
    try:
        remote.connect(callbacks=OdinCallbacks(source.credentials, url), proxy=source.proxy)
        heads = remote.list_heads(connect=False)
    except NETWORK_ERRORS as e:
        raise translate_error(e, url, source.credentials) from e
    return remote, {head.name: str(head.oid) for head in heads if head.name}


def _advertised_tip(advertised: dict[str, str], source: Source) -> str:
    remote_tip = advertised.get(f"refs/heads/{source.branch}")
    if remote_tip is None:
        raise BranchNotFound(
            f"branch {source.branch!r} does not exist on {source.url.redacted} (deleted or renamed?); the commits "
            "Odin already fetched stay available. Push the branch again or follow another branch.",
            url=source.url.redacted,
        )
    return remote_tip


def _download(remote: pygit2.Remote, source: Source) -> None:
    try:
        # A fresh callbacks object: the one used to connect may already have offered the credentials once.
        remote.fetch(
            source.refspecs,
            callbacks=OdinCallbacks(source.credentials, source.url),
            prune=FetchPrune.NO_PRUNE,
            proxy=source.proxy,
        )
    except NETWORK_ERRORS as e:
        raise translate_error(e, source.url, source.credentials) from e


def fetch_refs(
    repo: pygit2.Repository, source: Source, pairs: list[tuple[str, str]], url: RemoteUrl | None
) -> dict[str, str]:
    """Fetch each advertised `src` of `pairs` into its local `dst` (forced), from the source's remote or from `url`
    (a pull request's fork, fetched without the repository's credentials). Returns dst -> the commit fetched, for the
    refs the remote advertised; a `dst` whose `src` is not advertised is deleted, so it never names a stale commit."""
    target = url or source.url
    credentials = source.credentials if url is None else None
    fork = Source(target, credentials, source.proxy, source.branch)
    remote, advertised = _connect(repo, fork)
    present = [(src, dst) for src, dst in pairs if src in advertised]
    for src, dst in pairs:
        if src not in advertised:
            with contextlib.suppress(KeyError):
                repo.references.delete(dst)
    if present:
        try:
            remote.fetch(
                [f"+{src}:{dst}" for src, dst in present],
                callbacks=OdinCallbacks(credentials, target),
                prune=FetchPrune.NO_PRUNE,
                proxy=source.proxy,
            )
        except NETWORK_ERRORS as e:
            raise translate_error(e, target, credentials) from e
    fetched = {dst: ref_target(repo, dst) for _src, dst in present}
    return {dst: sha for dst, sha in fetched.items() if sha is not None}
