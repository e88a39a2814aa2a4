"""A guard against tests that leave a local executor running: its launch pool (`odin-launch_N`) and its reaper
(`odin-reaper`) are threads of the test process, and an executor nobody shuts down keeps them, their descriptors and
the `Popen` objects of its tasks for the rest of the worker's run (pytest workers ended with over a hundred such
threads and hundreds of open descriptors, and a task's `Popen` collected during another test's setup warned there).

`executor_threads_stopped` is an autouse fixture's body in the packages that start executors in process
(`tests/engine`, `tests/controller`, `tests/gpus`, `tests/e2e`): a test whose executor threads are still alive after
its own fixtures' teardown fails, naming them. Shutting an executor down joins its threads, so the wait is normally
no wait at all; the deadline is for a loaded machine, where a joined thread may take a moment to be reported gone.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from tests.support.wait import wait_until

EXECUTOR_THREADS = ("odin-launch", "odin-reaper")
DEADLINE = 10.0


def executor_threads() -> set[threading.Thread]:
    """The live threads of local executors in this process."""
    return {t for t in threading.enumerate() if t.name.startswith(EXECUTOR_THREADS)}


def executor_threads_stopped(deadline: float = DEADLINE) -> Iterator[None]:
    """Yield to the test; then fail if executor threads it started are alive `deadline` seconds after its teardown
    (its own fixtures are torn down first: an autouse fixture is set up before, so torn down after, them)."""
    before = executor_threads()
    yield
    try:
        wait_until(lambda: not executor_threads() - before, deadline, interval=0.01)
    except AssertionError:
        names = ", ".join(sorted(t.name for t in executor_threads() - before))
        raise AssertionError(
            f"this test left local executor threads running ({names}): shut down every executor it makes "
            "(`executor.shutdown()` after `engine.stop()`, or `Controller.stop()`), in a fixture's teardown or "
            "a `finally`"
        ) from None
