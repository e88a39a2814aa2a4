"""The timer that keeps a repository in sync, and the door webhooks knock on.

Every poller of the process is run by one shared `PollPool` (`controller/poll_pool.py`: a timer and a few workers,
not a thread per followed branch), in which a slow or unreachable remote never delays another. The interval is jittered
(+-10%) so many Odin replicas or repositories do not fetch in lockstep. Failures back off exponentially — doubling from
the interval for transient ones (network), from at least a minute for ones a person must fix (credentials, a deleted
branch) — up to `MAX_BACKOFF` (or the interval, when longer: a failing remote is never polled more often than a
healthy one), and never end the polling, however long the remote stays away: a remote that comes back is picked up by
the next attempt, and the first success brings the interval back.

`request()` polls at once (a webhook said something changed); the reason travels with the request so
runs record their real trigger. Requests that pile up while a sync runs are answered by the next sync together, and
each request's `on_done` hears the outcome of the sync that served it. A poller that is not running (this replica is
not the leader) drops requests: nobody would serve them, and the leader polls anyway.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from odin.controller.backoff import Backoff
from odin.controller.poll_pool import PollPool, shared_pool
from odin.controller.store.db import StoreUnavailable
from odin.controller.store.leadership import LeadershipLost
from odin.controller.sync import RepoSync, SyncOutcome, SyncRequest
from odin.controller.vocabulary import Trigger

log = logging.getLogger(__name__)

MAX_BACKOFF = 600.0
"""The longest wait between two attempts at a failing remote (unless the poll interval is longer)."""
PERMANENT_FLOOR = 60.0
"""The first wait after a failure a person must fix (bad credentials, a deleted branch), if the interval is shorter."""
STORE_RETRY = 2.0
"""The first wait after a sync that could not be recorded (the store is away), doubling up to `MAX_BACKOFF`."""


class RepoPoller:
    def __init__(
        self,
        sync: RepoSync,
        *,
        interval: float,
        jitter: float = 0.1,
        max_backoff: float = MAX_BACKOFF,
        after_sync: Callable[[SyncOutcome | None], None] | None = None,
        pool: PollPool | None = None,
    ) -> None:
        """`after_sync`: called on the poll's thread after each sync (a repository with branch patterns looks
        for the branches they match then, `odin.controller.branches`); its failures are logged, never fatal.
        `pool`: the threads that poll (default: the process's, `shared_pool()`)."""
        self.sync = sync
        self.after_sync = after_sync
        self.interval = interval
        self.jitter = jitter
        self.max_backoff = max_backoff
        self.delay = 0.0  # seconds from the end of the last sync to the next one (metrics, tests)
        self._pool = pool if pool is not None else shared_pool()
        self._lock = threading.Lock()
        self._requests: list[SyncRequest] = []
        self._running = False  # started and not stopped: requests are taken
        self._failures = 0
        self.last_outcome: SyncOutcome | None = None
        self.last_success: float | None = None  # time.time() of the last sync that reached the remote (sync lag)
        self.syncs = 0  # completed sync attempts, for tests and metrics
        self._done = threading.Condition()

    def start(self) -> None:
        """Sync now, then every interval (a replica that lost and regained leadership starts its pollers again)."""
        with self._lock:
            self._running = True
        self._pool.start(self)

    def stop(self, timeout: float = 30.0) -> None:
        """No further syncs; waits up to `timeout` for one under way to end. Requests not served yet are dropped."""
        with self._lock:
            self._running = False
        self._pool.stop(self, timeout)

    def request(self, request: SyncRequest | None = None) -> bool:
        """Sync as soon as possible (a webhook arrived, a user asked). False when the poller is not running."""
        with self._lock:
            if not self._running:
                return False
            self._requests.append(request or SyncRequest())
        return self._pool.wake(self)

    def wait_for_syncs(self, count: int, timeout: float) -> bool:
        """Block until `count` syncs have completed in total (tests, `odin demo`)."""
        deadline = time.monotonic() + timeout
        with self._done:
            while self.syncs < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._done.wait(remaining)
            return True

    def next_delay(self, outcome: SyncOutcome | None) -> float:
        """Seconds until the next sync: the jittered interval after a success; after the n-th failure in a row, the
        interval (a minute at least, for a failure a person must fix) doubled n-1 times, jittered, never above the
        cap: `max_backoff`, or the interval when that is longer."""
        cap = max(self.max_backoff, self.interval)
        base = self.interval
        if outcome is not None and outcome.error is not None:
            self._failures += 1
            floor = base if outcome.error.transient else max(base, PERMANENT_FLOOR)
            # `Backoff.ceiling` stays finite however many failures: a remote away for days never overflows the float
            # (which ended this thread for good after ~1,000 failures in a row).
            base = Backoff(initial=floor, maximum=cap).ceiling(self._failures - 1)
        else:
            self._failures = 0
        jittered = base * (1 + random.uniform(-self.jitter, self.jitter))  # noqa: S311 (jitter, not crypto)
        return min(cap, jittered)

    def _store_retry_delay(self) -> float:
        """After a sync that failed before reaching the remote (store away, leadership lost, a bug): quick retries,
        doubling, up to `max_backoff` (the store coming back should not wait out a long interval)."""
        return Backoff(initial=STORE_RETRY, maximum=self.max_backoff).ceiling(self._failures)

    def poll(self) -> float:
        """One sync, serving every request made since the last (`PollPool` calls it); the seconds until the next."""
        with self._lock:
            requests, self._requests = self._requests, []
        default = SyncRequest(trigger=Trigger.POLL, by="poller")
        request = next((r for r in requests if r.trigger != Trigger.POLL), requests[0] if requests else default)
        outcome: SyncOutcome | None
        try:
            outcome = self.sync.sync(request)
        except StoreUnavailable as e:
            log.error("repo %s: sync could not be recorded (%s); retrying", self.sync.repo_id, e)
            outcome = None
            self._failures += 1
        except LeadershipLost as e:  # another replica leads: nothing was recorded; the elector stops this poller
            log.error("repo %s: sync not recorded: %s", self.sync.repo_id, e)
            outcome = None
            self._failures += 1
        except Exception:
            log.exception("repo %s: sync failed unexpectedly; retrying", self.sync.repo_id)
            outcome = None
            self._failures += 1
        self.last_outcome = outcome
        if outcome is not None and outcome.error is None:
            self.last_success = time.time()
        for served in requests:
            if served.on_done is not None:
                try:
                    served.on_done(outcome)
                except Exception:
                    log.exception("repo %s: a sync request's callback failed", self.sync.repo_id)
        if self.after_sync is not None:
            try:
                self.after_sync(outcome)
            except Exception:
                log.exception("repo %s: looking for the branches its patterns match failed", self.sync.repo_id)
        with self._done:
            self.syncs += 1
            self._done.notify_all()
        delay = self.next_delay(outcome) if outcome is not None else self._store_retry_delay()
        self.delay = delay
        return delay
