"""Refs a user names: refused before any git call when git would refuse them, and a missing one costs the remote at
most one fetch per interval. Fetches are counted by a real smart-HTTP git server in front of the test's remote."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from odin.controller.git import Mirror
from odin.controller.git.errors import InvalidRef, RefNotFound
from odin.controller.git.refs import MissedRefs, check_ref
from tests.support.git import GitRemote
from tests.support.git_http import GitHttpServer

BAD_REFS = [
    "main..v1",
    "-main",
    "@{-1}",
    "ma\x01in",
    "ma\x00in",
    "--upload-pack=x",
    "main.lock",
    "a b",
    "x~1",
    "x^",
    "a:b",
    ".hidden",
    "x/",
    "x//y",
    "@",
    "HEAD",
    "refs/heads/a..b",
    "",
    "a" * 256,
]


@pytest.mark.parametrize("ref", BAD_REFS)
def test_check_ref_refuses_what_git_refuses(ref: str) -> None:
    with pytest.raises(InvalidRef):
        check_ref(ref)


@pytest.mark.parametrize("ref", ["main", "v1.0", "feature/x", "refs/heads/main", "refs/tags/v1", "abc1234", "é"])
def test_check_ref_accepts_branch_tag_and_commit_names(ref: str) -> None:
    assert check_ref(f" {ref} ") == ref


@pytest.fixture
def served_remote(git_remote: GitRemote) -> Iterator[tuple[GitRemote, GitHttpServer]]:
    git_remote.commit({"p/main.yml": "name: p\n"}, message="first")
    with GitHttpServer.serving(git_remote.root) as server:
        yield git_remote, server


def http_mirror(server: GitHttpServer, cache: Path, **kwargs: float) -> Mirror:
    return Mirror(server.url("remote.git"), cache, allow_insecure_http=True, **kwargs)


def test_invalid_refs_never_reach_the_remote(served_remote: tuple[GitRemote, GitHttpServer], tmp_path: Path) -> None:
    _remote, server = served_remote
    mirror = http_mirror(server, tmp_path / "cache")
    mirror.fetch()
    assert server.ref_listings == 1
    for ref in BAD_REFS:
        with pytest.raises(InvalidRef):
            mirror.resolve_fetching(ref)
    assert server.ref_listings == 1, "no invalid ref may cause a fetch"


def test_a_missing_ref_is_fetched_for_once_per_interval(
    served_remote: tuple[GitRemote, GitHttpServer], tmp_path: Path
) -> None:
    remote, server = served_remote
    mirror = http_mirror(server, tmp_path / "cache", miss_fetch_gap=0)
    mirror.fetch()
    for _ in range(20):
        with pytest.raises(RefNotFound, match=r"still missing after a fetch|not the followed branch"):
            mirror.resolve_fetching("no-such-tag")
    assert server.ref_listings == 2, "one fetch for the first miss, none for the 19 repeats"

    # A tag pushed a moment ago is another name: one fetch finds it.
    sha = remote.tag("v-new")
    assert mirror.resolve_fetching("v-new") == sha
    assert server.ref_listings == 3
    assert mirror.resolve_fetching("refs/tags/v-new") == sha, "now in the cache: no fetch"
    assert server.ref_listings == 3


def test_fetches_for_missing_refs_keep_their_gap(
    served_remote: tuple[GitRemote, GitHttpServer], tmp_path: Path
) -> None:
    _remote, server = served_remote
    mirror = http_mirror(server, tmp_path / "cache", miss_fetch_gap=0.3)
    started = time.monotonic()
    for i in range(3):
        with pytest.raises(RefNotFound):
            mirror.resolve_fetching(f"rotating-{i}")
    assert server.ref_listings == 3
    assert time.monotonic() - started >= 0.6, "three fetches for three names, at least 0.3 s apart"


def test_missed_refs_expire_and_stay_bounded() -> None:
    now = [100.0]
    missed = MissedRefs(ttl=10, size=3, clock=lambda: now[0])
    missed.remember("a")
    now[0] += 4
    assert missed.missed_since("a") == 4
    now[0] += 6
    assert missed.missed_since("a") is None, "forgotten after the interval: the next miss fetches again"
    for name in "bcde":
        missed.remember(name)
    assert missed.missed_since("b") is None and missed.missed_since("e") == 0
