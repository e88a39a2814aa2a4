"""The shared poll pool: every followed branch polled by a few threads, never one job twice at once, a hung remote
never delaying the others, a wake during a poll answered by one more poll, a stop that waits for the poll under way.

Jobs here are small objects whose `poll` records what happened and, where a test needs it, blocks on an event the
test releases, so every ordering is forced rather than hoped for.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator

import pytest

from odin.controller.poll_pool import PollPool
from tests.support.wait import wait_until


class Job:
    """A poll that counts itself, notices overlapping polls, and can be held until the test lets it go."""

    def __init__(self, delay: float = 3600.0, *, hold: bool = False) -> None:
        self.delay = delay
        self.polls = 0
        self.overlaps = 0
        self.threads: set[int] = set()
        self.release = threading.Event()
        self.entered = threading.Event()
        if not hold:
            self.release.set()
        self._inside = 0
        self._lock = threading.Lock()

    def poll(self) -> float:
        with self._lock:
            self._inside += 1
            self.overlaps += self._inside > 1
            self.threads.add(threading.get_ident())
        self.entered.set()
        self.release.wait(30)
        with self._lock:
            self._inside -= 1
            self.polls += 1
        return self.delay


@pytest.fixture
def pool() -> Iterator[PollPool]:
    pool = PollPool(max_workers=4, idle_exit=0.2, name="test-poll")
    yield pool
    wait_until(lambda: pool.workers == 0, 10, message="the pool's workers end once idle")


def test_a_started_job_is_polled_at_once_and_again_after_its_delay(pool: PollPool) -> None:
    job = Job(delay=0.05)
    pool.start(job)
    wait_until(lambda: job.polls >= 3, 10, message="polled now and after each delay")
    assert pool.stop(job, timeout=10)
    after = job.polls
    assert not pool.wake(job), "a stopped job is not woken"
    # Nothing polls it any more: the next poll would be due within 0.05 s; a poll of another job later proves time
    # passed with the workers alive.
    other = Job(delay=0.05)
    pool.start(other)
    wait_until(lambda: other.polls >= 3, 10)
    pool.stop(other)
    assert job.polls == after


def test_a_wake_during_a_poll_is_answered_by_one_more_poll_never_by_a_second_at_once(pool: PollPool) -> None:
    job = Job(hold=True)
    pool.start(job)
    assert job.entered.wait(10)
    for _ in range(5):  # a webhook storm while the poll is under way
        assert pool.wake(job)
    job.release.set()
    wait_until(lambda: job.polls == 2, 10, message="one more poll for all the wakes")
    assert job.overlaps == 0
    assert pool.stop(job)
    assert job.polls == 2  # the interval is an hour: no third


def test_a_hung_poll_delays_no_other_job(pool: PollPool) -> None:
    hung = Job(hold=True)
    pool.start(hung)
    assert hung.entered.wait(10)
    others = [Job(delay=0.02) for _ in range(3)]
    for job in others:
        pool.start(job)
    wait_until(lambda: all(job.polls >= 5 for job in others), 10, message="the others poll on")
    assert hung.polls == 0 and pool.workers >= 2
    hung.release.set()
    for job in [hung, *others]:
        assert pool.stop(job)


def test_many_jobs_share_a_few_threads(pool: PollPool) -> None:
    jobs = [Job(delay=0.01) for _ in range(200)]
    for job in jobs:
        pool.start(job)
    wait_until(lambda: all(job.polls >= 2 for job in jobs), 30, message="every job polled twice")
    threads = set().union(*(job.threads for job in jobs))
    assert len(threads) <= 4 and pool.workers <= 4
    assert not any(job.overlaps for job in jobs)
    for job in jobs:
        pool.stop(job)


def test_stop_waits_for_the_poll_under_way(pool: PollPool) -> None:
    job = Job(hold=True)
    pool.start(job)
    assert job.entered.wait(10)
    assert not pool.stop(job, timeout=0.05), "the poll is still under way"
    stopped = threading.Thread(target=pool.stop, args=(job, 10))
    stopped.start()
    job.release.set()
    stopped.join(10)
    assert not stopped.is_alive() and job.polls == 1


def test_a_job_restarted_while_its_stopped_poll_runs_polls_again(pool: PollPool) -> None:
    job = Job(hold=True)
    pool.start(job)
    assert job.entered.wait(10)
    assert not pool.stop(job, timeout=0.01)
    pool.start(job)  # leadership regained before the old poll ended
    job.release.set()
    wait_until(lambda: job.polls == 2, 10, message="the restart's own poll")
    assert pool.stop(job) and job.overlaps == 0


def test_a_job_may_stop_itself_from_its_poll(pool: PollPool) -> None:
    class SelfStopping(Job):
        def poll(self) -> float:
            delay = super().poll()
            assert pool.stop(self, timeout=30)  # would wait for itself for 30 s
            return delay

    job = SelfStopping(delay=0.01)
    pool.start(job)
    wait_until(lambda: job.polls == 1, 5, message="its one poll, which ends without waiting for itself")
    assert not pool.wake(job)


def test_a_poll_that_raises_is_retried(pool: PollPool, caplog: pytest.LogCaptureFixture) -> None:
    class Failing(Job):
        def poll(self) -> float:
            super().poll()
            raise RuntimeError("a bug in a job")

    job = Failing()
    pool.start(job)
    wait_until(lambda: job.polls >= 2, 10, message="polled again after the failure's short wait")
    assert pool.stop(job)
    assert "a poll failed unexpectedly" in caplog.text


def test_a_short_wait_is_waited_out_whatever_the_timer_slack(pool: PollPool) -> None:
    # The timer hands over jobs a little early to batch its wake-ups, by at most 5 % of a job's wait: a poller
    # backing off by 20 ms waits 19 ms at least, not zero.
    stamps: list[float] = []

    class Stamped(Job):
        def poll(self) -> float:
            stamps.append(time.monotonic())
            return super().poll()

    job = Stamped(delay=0.02)
    pool.start(job)
    wait_until(lambda: len(stamps) >= 6, 10, message="six polls")
    pool.stop(job)
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.02 * 0.95, gaps
