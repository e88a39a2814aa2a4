"""`PeriodicWorker`, the thread under the scheduler, the GPU usage sampler and the retention sweep: it ticks, survives
failing ticks with backoff and rate-limited logs, wakes on request, stops in bounded time and starts again."""

from __future__ import annotations

import itertools
import logging
import threading
import time

import pytest

from odin.controller.backoff import Backoff
from odin.controller.periodic import PeriodicWorker
from tests.support.wait import wait_until


def test_it_ticks_every_interval_until_stopped_and_starts_again() -> None:
    ticks: list[float] = []
    worker = PeriodicWorker("test-periodic", lambda: ticks.append(time.monotonic()), interval=0.02)
    worker.start()
    wait_until(lambda: len(ticks) >= 3, 10)
    assert worker.stop(5) and not worker.running
    stopped = len(ticks)
    worker.start()
    wait_until(lambda: len(ticks) >= stopped + 2, 10, message="ticking again after a restart")
    assert worker.stop(5)


def test_first_wait_or_at_once() -> None:
    ticked = threading.Event()
    at_once = PeriodicWorker("test-at-once", ticked.set, interval=3600, first_wait=False)
    at_once.start()
    assert ticked.wait(10), "first_wait=False ticks when started"
    at_once.stop(5)
    waiting = PeriodicWorker("test-waits", lambda: pytest.fail("ticked before its first interval"), interval=3600)
    waiting.start()
    assert waiting.stop(5)


def test_wake_ticks_now() -> None:
    ticks: list[int] = []
    worker = PeriodicWorker("test-wake", lambda: ticks.append(1), interval=3600)
    worker.start()
    try:
        worker.wake()
        wait_until(lambda: ticks, 10, message="a tick right after wake()")
    finally:
        worker.stop(5)


def test_failures_never_end_the_thread_back_off_and_are_logged_with_context(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[float] = []

    def tick() -> None:
        calls.append(time.monotonic())
        if len(calls) <= 12:
            raise OSError("the store is down")

    worker = PeriodicWorker(
        "test-failing",
        tick,
        interval=0.001,
        backoff=Backoff(initial=0.001, maximum=0.05, jitter=0),
        logger=logging.getLogger("test.periodic"),
        what="the test loop",
    )
    with caplog.at_level(logging.DEBUG, logger="test.periodic"):
        worker.start()
        try:
            wait_until(lambda: len(calls) >= 14 and worker.failures == 0, 10, message="recovered after the failures")
        finally:
            worker.stop(5)
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert min(gaps[8:12]) >= 0.04, "repeated failures wait up to the backoff's maximum"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(" (")[0] for r in warnings] == ["the test loop failed"] * 2, "failures 1 and 10 only"
    assert (
        "10 in a row on thread test-failing" in warnings[1].getMessage() and "store is down" in warnings[1].getMessage()
    )
    assert all(r.exc_info for r in warnings)
    assert any("works again after 12 failures" in r.getMessage() for r in caplog.records)


def test_stop_is_bounded_when_a_tick_hangs() -> None:
    release = threading.Event()
    entered = threading.Event()

    def stuck() -> None:
        entered.set()
        release.wait(30)

    worker = PeriodicWorker("test-stuck", stuck, interval=0.01, first_wait=False)
    worker.start()
    assert entered.wait(10)
    started = time.monotonic()
    assert worker.stop(0.2) is False
    assert time.monotonic() - started < 5
    release.set()
