"""Every test here shuts down the local executors it starts (tests/support/threads.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.threads import executor_threads_stopped


@pytest.fixture(autouse=True)
def _executors_stopped() -> Iterator[None]:
    yield from executor_threads_stopped()
