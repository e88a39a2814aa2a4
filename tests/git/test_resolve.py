"""Turning user input into commits, and what Odin records about a commit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from odin.controller.git import AmbiguousRef, CommitInfo, Mirror, RefNotFound
from odin.controller.git.errors import InvalidRef
from tests.support.git import GitRemote


@pytest.fixture
def history(git_remote: GitRemote, mirror: Mirror) -> dict[str, str]:
    first = git_remote.commit({"a/main.yml": "1"}, message="first")
    second = git_remote.commit({"a/main.yml": "2"}, message="second")
    git_remote.tag("v1.0", first)
    git_remote.tag("v2.0", second, message="release 2")
    mirror.fetch()
    return {"first": first, "second": second}


def test_resolve_names_and_ids(mirror: Mirror, history: dict[str, str]) -> None:
    first, second = history["first"], history["second"]
    assert mirror.resolve("main") == second
    assert mirror.resolve("origin/main") == second
    assert mirror.resolve("refs/heads/main") == second
    assert mirror.resolve("v1.0") == first
    assert mirror.resolve("refs/tags/v1.0") == first
    assert mirror.resolve("v2.0") == second  # annotated tag peeled to its commit
    assert mirror.resolve(first) == first
    assert mirror.resolve(first.upper()) == first
    assert mirror.resolve(f"  {first[:7]}  ") == first
    assert mirror.resolve(second[:12]) == second


@pytest.mark.parametrize("ref", ["nope", "feature/x", "v9", "0000000", "0" * 40, "abc"])
def test_resolve_unknown(mirror: Mirror, history: dict[str, str], ref: str) -> None:
    with pytest.raises(RefNotFound):
        mirror.resolve(ref)


@pytest.mark.parametrize("ref", ["HEAD~1", "../../x", "main..v1.0", "-main"])
def test_resolve_refuses_invalid_names_before_any_lookup(mirror: Mirror, history: dict[str, str], ref: str) -> None:
    with pytest.raises(InvalidRef):
        mirror.resolve(ref)


def test_resolve_refuses_prefixes_shorter_than_7(mirror: Mirror, history: dict[str, str]) -> None:
    with pytest.raises(RefNotFound, match="at least 7"):
        mirror.resolve(history["first"][:6])


def test_resolve_ambiguous_prefix(git_remote: GitRemote, mirror: Mirror) -> None:
    git_remote.commit({"a": "1"})
    one, two = git_remote.commits_sharing_prefix(7)
    assert one[:7] == two[:7] and one != two
    mirror.fetch()

    with pytest.raises(AmbiguousRef, match="more than one"):
        mirror.resolve(one[:7])
    assert not AmbiguousRef.transient
    # One more digit (or the tags) tells them apart.
    common = next(i for i, (a, b) in enumerate(zip(one, two, strict=True)) if a != b)
    assert mirror.resolve(one[: common + 1]) == one
    assert mirror.resolve(two[: common + 1]) == two
    assert mirror.resolve("prefix-a") == one


def test_resolve_a_non_commit(git_remote: GitRemote, mirror: Mirror) -> None:
    git_remote.commit({"a": "only a blob"})
    mirror.fetch()
    blob = mirror._repo().revparse_single("refs/remotes/origin/main:a")  # white-box: a blob id in the cache
    with pytest.raises(RefNotFound, match="blob"):
        mirror.resolve(str(blob.id))


def test_has_commit(git_remote: GitRemote, mirror: Mirror, history: dict[str, str]) -> None:
    assert mirror.has_commit(history["first"])
    assert mirror.has_commit(history["second"])
    assert not mirror.has_commit("0" * 40)
    assert not mirror.has_commit(history["first"][:10])  # webhooks send full ids
    assert not mirror.has_commit("not hex at all")

    # Only on another branch (pushed, but not followed and so not fetched): not there.
    side = git_remote.commit({"b": "1"}, branch="side", parents=[history["first"]])
    mirror.fetch()
    assert not mirror.has_commit(side)
    # Tagged: fetched with the tags, and reachable from one.
    git_remote.tag("side-tag", side)
    mirror.fetch()
    assert mirror.has_commit(side)


def test_is_ancestor(mirror: Mirror, history: dict[str, str]) -> None:
    first, second = history["first"], history["second"]
    assert mirror.is_ancestor(first, second)
    assert mirror.is_ancestor(second, second)
    assert not mirror.is_ancestor(second, first)
    with pytest.raises(RefNotFound):
        mirror.is_ancestor("f" * 40, second)
    with pytest.raises(RefNotFound, match="full commit id"):
        mirror.is_ancestor(first[:8], second)


def test_commit_info(git_remote: GitRemote, mirror: Mirror) -> None:
    sha = git_remote.commit(
        {"a": "1"}, message="Add the model\n\nLonger body.\n[skip ci]\n", author=("Ada Lovelace", "ada@odin.invalid")
    )
    mirror.fetch()

    info = mirror.commit_info(sha)

    assert info.sha == sha
    assert info.author_name == "Ada Lovelace" and info.author_email == "ada@odin.invalid"
    assert info.subject == "Add the model"
    assert info.message == "Add the model\n\nLonger body.\n[skip ci]\n"
    assert info.parents == ()
    assert info.committed_at.tzinfo is not None
    assert info.committed_at == datetime.fromtimestamp(1_700_000_001, tz=UTC)
    assert info.skip_requested


def _info(message: str) -> CommitInfo:
    return CommitInfo("0" * 40, (), "a", "a@b", message, message.split("\n", maxsplit=1)[0], datetime.now(tz=UTC))


@pytest.mark.parametrize(
    ("message", "skip"),
    [
        ("fix [skip ci]", True),
        ("[CI SKIP] bump", True),
        ("chore: regenerate lockfile\n\n[Skip Odin]", True),
        ("[odin skip]", True),
        ("skip ci", False),
        ("[skip-ci]", False),
        ("[skip odinx]", False),
        ("normal commit", False),
    ],
)
def test_skip_markers(message: str, skip: bool) -> None:
    assert _info(message).skip_requested is skip
