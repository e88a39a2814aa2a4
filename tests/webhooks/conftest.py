"""An in-process Odin following a real bare repository, for webhook tests over real HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.git import GitRemote
from tests.webhooks.support import HELLO, Odin, settings_for

OdinFactory = Callable[..., Odin]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'odin.db'}"


@pytest.fixture
def seeded_remote(git_remote: GitRemote) -> GitRemote:
    """A remote with two pipelines, `hello` and `train`, and a README outside both."""
    git_remote.commit(
        {
            "hello/main.yml": HELLO.format(name="hello", marker="v1"),
            "train/main.yml": HELLO.format(name="train", marker="v1"),
            "README.md": "pipelines\n",
        },
        "Seed",
    )
    return git_remote


@pytest.fixture
def odin_factory(seeded_remote: GitRemote, tmp_path: Path, sqlite_url: str) -> Iterator[OdinFactory]:
    started: list[Odin] = []

    def make(db_url: str | None = None, **overrides: Any) -> Odin:
        name = f"odin{len(started)}"
        settings = settings_for(tmp_path / name, seeded_remote, db_url or sqlite_url, **overrides)
        odin = Odin(settings, seeded_remote).start()
        started.append(odin)
        return odin

    yield make
    for odin in reversed(started):
        odin.stop()


@pytest.fixture
def odin(odin_factory: OdinFactory) -> Odin:
    return odin_factory()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The API's existing /v1 and health handlers use forms Litestar 2.25 deprecates (an inferred `ctx` dependency,
    # `data` without a body marker); it warns when an app is built in-process, which the other suites never do (they
    # run `odin serve`). The API's owner is reshaping those handlers; warnings about /webhooks routes stay errors.
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.filterwarnings(r"ignore:\[paths='/(v1/|healthz|readyz)"))
