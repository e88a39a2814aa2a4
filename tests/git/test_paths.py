"""The path rules on their own: normalisation, pipeline ancestry, and symbolic-link containment."""

from __future__ import annotations

import pytest

from odin.controller.git import PathEscapes
from odin.controller.git.paths import ancestors, is_hidden, normalize_repo_path, symlink_problem, valid_entry_name


@pytest.mark.parametrize(
    ("path", "expected"),
    [("a/b", "a/b"), ("./a//b/", "a/b"), ("", ""), (".", ""), ("a/./b", "a/b"), ("a b/c", "a b/c")],
)
def test_normalize(path: str, expected: str) -> None:
    assert normalize_repo_path(path) == expected


@pytest.mark.parametrize("path", ["/etc/passwd", "a/../b", "..", "a/\0"])
def test_normalize_refuses(path: str) -> None:
    with pytest.raises(PathEscapes):
        normalize_repo_path(path)


def test_ancestors_and_hidden() -> None:
    assert list(ancestors("a/b/c.txt")) == ["a/b", "a"]
    assert list(ancestors("top.txt")) == []
    assert is_hidden(".github/x") and is_hidden("a/.cache") and not is_hidden("a/b.c")
    assert valid_entry_name("ok") and not valid_entry_name("..") and not valid_entry_name("a/b")


@pytest.mark.parametrize(
    ("link", "target", "links", "escapes"),
    [
        ("l", "file", {}, False),
        ("sub/l", "../file", {}, False),
        ("sub/l", "../../file", {}, True),
        ("l", "/etc/passwd", {}, True),
        ("l", "", {}, True),
        ("l", "a/b/../../c", {}, False),
        ("l", "a/../../c", {}, True),
        ("l", "./.", {}, False),
        # chains: the kernel follows `d` first, so `d/..` is the parent of d's *target*
        ("e", "d/../x", {"d": "."}, True),
        ("e", "d/../x", {"d": "sub/deep"}, False),
        ("e", "d/x", {"d": "../outside"}, True),
        ("e", "d/x", {"d": "/abs"}, True),
        ("a", "b", {"b": "c", "c": "../x"}, True),
        ("a", "b", {"b": "a"}, True),  # loop
        ("sub/a", "b/c", {"sub/b": "../other"}, False),
    ],
)
def test_symlink_problem(link: str, target: str, links: dict[str, str], escapes: bool) -> None:
    all_links = {**links, link: target}
    assert (symlink_problem(link, target, all_links) is not None) is escapes
