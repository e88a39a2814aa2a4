"""Commits in the cache: looking one up by its full id, resolving an abbreviated one, what a commit says of itself,
and whether the followed branch or a tag reaches it.

Functions, not `Mirror` methods: they take the calling thread's repository handle explicitly (libgit2 objects must
not be shared between threads), and `Mirror` keeps only what needs its state (the branch, the locks, the caches).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import cast

import pygit2
from pygit2.enums import ObjectType

from odin.controller.git.errors import AmbiguousRef, RefNotFound
from odin.controller.git.models import CommitInfo

HEX40 = re.compile(r"^[0-9a-f]{40}$")
HEX_PREFIX = re.compile(r"^[0-9a-f]{7,40}$")
MIN_PREFIX = 7


def commit_of(repo: pygit2.Repository, sha: str, url: str) -> pygit2.Commit:
    """The commit with the full id `sha`; `RefNotFound` for anything else (a name, a prefix, a missing commit, a
    blob)."""
    sha = sha.strip().lower()
    if not HEX40.match(sha):
        raise RefNotFound(
            f"{sha!r} is not a full commit id (40 hex digits); resolve names and abbreviations first",
            url=url,
        )
    obj = repo.get(sha)
    if obj is None:
        raise RefNotFound(f"commit {sha} is not in the cache of {url}", url=url)
    if obj.type != ObjectType.COMMIT:
        raise RefNotFound(f"{sha} is a {obj.type_str}, not a commit", url=url)
    return cast(pygit2.Commit, obj)


def reached(repo: pygit2.Repository, sha: str, heads: Iterable[str | None]) -> bool:
    """Is `sha` (full) a commit that one of `heads` is, or descends from? `heads` is read only once `sha` is known to
    be a commit, and only as far as needed."""
    sha = sha.strip().lower()
    if not HEX40.match(sha):
        return False
    obj = repo.get(sha)
    if obj is None or obj.type != ObjectType.COMMIT:
        return False
    oid = obj.id
    for head in heads:
        if head is None:
            continue
        head_id = pygit2.Oid(hex=head)
        if head_id == oid or repo.descendant_of(head_id, oid):
            return True
    return False


def tag_tips(repo: pygit2.Repository) -> Iterator[str]:
    """The commits the cache's tags point to (tags of other objects are skipped), read as they are asked for."""
    for ref in repo.references.iterator(pygit2.enums.ReferenceFilter.TAGS):
        with contextlib.suppress(pygit2.GitError, ValueError):
            yield str(ref.peel(pygit2.Commit).id)


def commit_info(commit: pygit2.Commit) -> CommitInfo:
    # Raw bytes, decoded leniently: commits in the wild have messages and names in any encoding.
    message = commit.raw_message.decode("utf-8", errors="replace")
    author = commit.author
    return CommitInfo(
        sha=str(commit.id),
        parents=tuple(str(p) for p in commit.parent_ids),
        author_name=author.raw_name.decode("utf-8", errors="replace"),
        author_email=author.raw_email.decode("utf-8", errors="replace"),
        message=message,
        subject=message.strip().split("\n", 1)[0].strip() if message.strip() else "",
        committed_at=datetime.fromtimestamp(commit.commit_time, tz=UTC),
    )


def resolve_hex(repo: pygit2.Repository, hex_ref: str, url: str) -> str:
    """A commit id from a full id or a prefix. libgit2 compares prefixes against every object, not only
    commits, so a prefix shared with a blob or tree is ambiguous too (git would pick the commit)."""
    try:
        obj = repo.get(hex_ref)
    except pygit2.AmbiguousError as e:
        raise AmbiguousRef(
            f"{hex_ref!r} matches more than one object in {url}; give more digits of the commit id", url=url
        ) from e
    except (pygit2.GitError, ValueError) as e:
        raise RefNotFound(f"{hex_ref!r} is not a commit in {url}", url=url) from e
    if obj is None:
        raise RefNotFound(f"no commit starting with {hex_ref!r} in {url} (fetched?)", url=url)
    try:
        return str(obj.peel(pygit2.Commit).id)
    except (pygit2.GitError, ValueError) as e:
        raise RefNotFound(f"{hex_ref!r} is a {obj.type_str}, not a commit", url=url) from e
