"""The one backoff every retry loop uses: exponential, capped, jittered, and honouring a server's Retry-After."""

from __future__ import annotations

import math

import pytest

from odin.controller.backoff import Backoff


def test_without_jitter_the_delay_doubles_up_to_the_maximum() -> None:
    b = Backoff(initial=0.5, maximum=30.0, jitter=0.0)
    assert [b.delay(n) for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_huge_attempt_counts_stay_at_the_maximum_instead_of_overflowing() -> None:
    b = Backoff(initial=0.25, maximum=15.0, jitter=0.0)
    assert b.delay(10_000) == 15.0
    assert b.delay(-3) == 0.25


@pytest.mark.parametrize("attempt", [0, 1, 3, 9])
def test_equal_jitter_waits_between_half_and_all_of_the_ceiling(attempt: int) -> None:
    b = Backoff(initial=1.0, maximum=120.0)
    ceiling = min(120.0, 2.0**attempt)
    delays = [b.delay(attempt) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert len(set(delays)) > 1, "jitter spreads the retries of a fan-out"


def test_retry_after_is_capped_and_never_negative() -> None:
    b = Backoff(initial=1.0, maximum=10.0, max_retry_after=60.0)
    assert b.retry_after(3600.0) == 60.0
    assert b.retry_after(-5.0) == 0.0
    assert b.retry_after(math.inf) == 60.0


def test_next_delay_is_never_shorter_than_the_servers_retry_after() -> None:
    b = Backoff(initial=1.0, maximum=10.0, jitter=0.0, max_retry_after=300.0)
    assert b.next_delay(0, 7.0) == 7.0, "the server asked for more than the backoff"
    assert b.next_delay(5, 2.0) == 10.0, "the backoff asks for more than the server"
    assert b.next_delay(2) == 4.0
    assert b.next_delay(0, 10_000.0) == 300.0
