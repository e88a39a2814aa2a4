"""Waiting on conditions with a deadline — never a bare sleep that guesses how long something takes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, *, interval: float = 0.02, message: str = "") -> T:
    """Poll `predicate` until it returns something truthy; fail the test with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # the condition may not be checkable yet (file not written, row not there)
            last_error = e
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"condition not met within {timeout}s: {message or predicate}{detail}")
        time.sleep(interval)
