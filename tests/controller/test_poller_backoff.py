"""An unreachable repository's poller backs off (issue 13, Bad input): the wait between attempts doubles from the
interval (from a minute for a failure a person must fix) up to a cap, the first success brings the interval back,
and no number of failures in a row ends the poller.

The failures are real: a remote whose directory is gone (`RemoteUnreachable`, transient), a branch the remote does
not have (`BranchNotFound`, permanent). The waits are read from what the poller chose (no jitter where exact numbers
are asserted) and, on a running poller, checked against when its attempts really happened: lower bounds only, so a
slow machine cannot fail them.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from odin.controller.git.errors import BranchNotFound, RemoteUnreachable
from odin.controller.git.mirror import Mirror
from odin.controller.poller import MAX_BACKOFF, RepoPoller
from odin.controller.store.db import create_db_engine, migrate
from odin.controller.store.repositories import follow_repository
from odin.controller.sync import RepoSync, SyncOutcome
from tests.support.git import GitRemote
from tests.support.wait import wait_until

HELLO = "name: hello\ntasks:\n  - {name: greet, image: busybox, command: [echo, hi]}\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Engine]:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'odin.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


def sync_of(store: Engine, remote: GitRemote, tmp: Path, branch: str = "main") -> RepoSync:
    repo_id = follow_repository(store, f"r-{branch}", url=remote.url, branch=branch).repo_id
    mirror = Mirror(remote.url, tmp / f"cache-{branch}", branch=branch)
    return RepoSync(store, repo_id, mirror, branch=branch, trees_dir=tmp / "trees")


@dataclass
class Outcomes:
    """A real sync's outcome of each kind, and that sync (what a poller is made for)."""

    sync: RepoSync
    ok: SyncOutcome
    away: SyncOutcome  # the remote cannot be reached
    gone: SyncOutcome  # the followed branch is not on the remote


@pytest.fixture
def outcomes(store: Engine, git_remote: GitRemote, tmp_path: Path) -> Outcomes:
    git_remote.commit({"hello/main.yml": HELLO}, "Seed")
    sync = sync_of(store, git_remote, tmp_path)
    ok = sync.sync()
    with git_remote.unavailable():
        away = sync.sync()
    gone = sync_of(store, git_remote, tmp_path, branch="deleted").sync()
    assert ok.error is None
    assert isinstance(away.error, RemoteUnreachable) and away.error.transient
    assert isinstance(gone.error, BranchNotFound) and not gone.error.transient
    return Outcomes(sync, ok, away, gone)


def delays(poller: RepoPoller, *outcomes: SyncOutcome) -> list[float]:
    return [round(poller.next_delay(o), 6) for o in outcomes]


def test_the_wait_doubles_up_to_the_cap_and_a_success_brings_the_interval_back(outcomes: Outcomes) -> None:
    ok, away, gone = outcomes.ok, outcomes.away, outcomes.gone
    poller = RepoPoller(outcomes.sync, interval=10, jitter=0)
    assert delays(poller, ok) == [10]
    assert delays(poller, *[away] * 9) == [10, 20, 40, 80, 160, 320, MAX_BACKOFF, MAX_BACKOFF, MAX_BACKOFF]
    assert delays(poller, ok, away) == [10, 10], "the first success resets the count"
    poller.next_delay(ok)
    assert delays(poller, *[gone] * 5) == [60, 120, 240, 480, MAX_BACKOFF], "a person must fix it: from a minute"
    poller.next_delay(ok)

    poller.max_backoff = 30
    assert delays(poller, *[away] * 4) == [10, 20, 30, 30]


def test_a_failing_remote_is_never_polled_more_often_than_a_healthy_one(outcomes: Outcomes) -> None:
    """An interval longer than the cap (a repository driven by its webhooks, polled hourly): a failure waits the
    interval, never less (the cap used to cut the second and later waits to 600 s, polling six times as often)."""
    poller = RepoPoller(outcomes.sync, interval=3600, jitter=0)
    assert delays(poller, *[outcomes.away] * 4) == [3600] * 4
    assert delays(poller, *[outcomes.gone] * 3) == [3600] * 3


def test_jitter_spreads_the_waits_but_never_past_the_cap(outcomes: Outcomes) -> None:
    poller = RepoPoller(outcomes.sync, interval=10, jitter=0.1)
    waits = [poller.next_delay(outcomes.away) for _ in range(300)]
    assert min(waits[:3]) >= 9 and max(waits) <= MAX_BACKOFF
    capped = waits[10:]
    assert len(set(capped)) > 1 and min(capped) >= MAX_BACKOFF * 0.9, "spread below the cap, not above it"


def test_no_number_of_failures_in_a_row_ends_the_backoff(outcomes: Outcomes) -> None:
    """A remote away for days at the cap: ~1,100 failures in a row. The doubling used to overflow the float there
    (`OverflowError`), which ended the poller's thread: the repository was never synced again."""
    poller = RepoPoller(outcomes.sync, interval=60.0, jitter=0)  # a float, as the settings and registrations give it
    for _ in range(1100):
        wait = poller.next_delay(outcomes.away)
    assert wait == MAX_BACKOFF
    assert poller.next_delay(outcomes.ok) == 60.0


def test_a_running_poller_waits_longer_after_each_failure_and_recovers(
    store: Engine, git_remote: GitRemote, tmp_path: Path
) -> None:
    """A real poller thread: the remote goes away, its attempts come further and further apart (up to the cap), and
    once the remote is back the next attempt succeeds and the interval is back."""
    git_remote.commit({"hello/main.yml": HELLO}, "Seed")
    attempts: list[tuple[float, bool]] = []  # (when it ended, whether it failed)

    def record(outcome: SyncOutcome | None) -> None:
        attempts.append((time.monotonic(), outcome is None or outcome.error is not None))

    poller = RepoPoller(
        sync_of(store, git_remote, tmp_path), interval=0.02, jitter=0, max_backoff=0.16, after_sync=record
    )
    poller.start()
    try:
        assert poller.wait_for_syncs(1, 30), "the baseline"
        with git_remote.unavailable():
            failed = lambda: sum(1 for _, f in attempts if f)  # noqa: E731
            wait_until(lambda: failed() >= 6, 30, message="six attempts at the unreachable remote")
            chosen = poller.delay
        assert chosen == pytest.approx(0.16), "at the cap"
        wait_until(
            lambda: not attempts[-1][1] and poller.delay == pytest.approx(0.02),
            30,
            message="an attempt after the remote came back succeeds, and the interval is back",
        )
    finally:
        poller.stop()
    first = next(i for i, (_, f) in enumerate(attempts) if f)
    run = attempts[first : first + 6]
    gaps = [later - earlier for (earlier, _), (later, _) in itertools.pairwise(run)]
    # After the 1st..5th failure the poller waits 0.02, 0.04, 0.08, 0.16, 0.16 s (each measured from one attempt's
    # end to the next's: the attempt itself only adds to it).
    for gap, wait in zip(gaps, [0.02, 0.04, 0.08, 0.16, 0.16], strict=True):
        assert gap >= wait * 0.95, (gaps, "each failure waited out")
