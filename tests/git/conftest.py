from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from odin.controller.git import Mirror
from tests.support.git import GitRemote
from tests.support.git_fixtures import git_remote, git_remote_factory  # noqa: F401 -- fixtures

MirrorFactory = Callable[..., Mirror]


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def make_mirror(cache_dir: Path) -> MirrorFactory:
    """`make_mirror(remote_or_url, **kwargs)`: a Mirror on the test's cache dir."""

    def make(remote: GitRemote | str, **kwargs: object) -> Mirror:
        url = remote.url if isinstance(remote, GitRemote) else remote
        return Mirror(url, cache_dir, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture
def mirror(git_remote: GitRemote, make_mirror: MirrorFactory) -> Mirror:  # noqa: F811 -- the fixture above
    """A Mirror of `git_remote` (not fetched yet)."""
    return make_mirror(git_remote)
