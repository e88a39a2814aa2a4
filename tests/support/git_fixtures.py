"""pytest fixtures for real git repositories (see tests.support.git for what a GitRemote can do).

Use them from a conftest.py by importing them there: `from tests.support.git_fixtures import git_remote`
(add `# noqa: F401`, since ruff cannot see that pytest uses the name).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.git import GitRemote

__all__ = ["git_remote", "git_remote_factory"]


@pytest.fixture
def git_remote(tmp_path: Path) -> GitRemote:
    """An empty remote (bare repository + working clone) under tmp_path; commit to it with `.commit({...})`."""
    return GitRemote.create(tmp_path / "git-remote")


@pytest.fixture
def git_remote_factory(tmp_path: Path) -> Callable[[str], GitRemote]:
    """Make several independent remotes: `factory("a")`, `factory("b")`."""

    def make(name: str) -> GitRemote:
        return GitRemote.create(tmp_path / f"git-remote-{name}")

    return make
