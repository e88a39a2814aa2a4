"""After the sync a delivery asked for: was the commit its payload named really on the remote?

A payload is a claim. Odin never runs what a payload says — the sync fetches the branch and runs what it finds — but
a delivery naming a commit the remote does not have (forged with a leaked secret, replayed after a force push, or from
a misconfigured mirror) deserves to be seen: its row becomes `rejected: ... not found on the remote`, a
`webhook.rejected` event is appended, the metrics count it and the log says so.

The check runs on a small worker thread fed by the poller's `on_done` callbacks, so neither the poller nor the HTTP
handlers wait on it; the thread starts with the first check and ends after a few idle seconds.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from odin.controller import facade
from odin.controller.bus import EventDict
from odin.controller.facade import FollowedRepo, GitError, SyncOutcome
from odin.controller.store import deliveries
from odin.controller.store.db import DbEngine, StoreUnavailable
from odin.webhooks.audit import printable
from odin.webhooks.metrics import REJECTIONS

log = logging.getLogger("odin.webhooks")

RETENTION = timedelta(days=90)
"""Deliveries older than this are deleted (at most once an hour, by the worker)."""


@dataclass(frozen=True, slots=True)
class _Check:
    row_id: int
    provider: str
    delivery_id: str
    repo_id: int
    repo: FollowedRepo
    branch: str
    sha: str
    outcome: SyncOutcome | None


class ShaVerifier:
    def __init__(self, db: DbEngine, publish: Callable[[EventDict], None], *, idle_exit: float = 5.0) -> None:
        self.db = db
        self.publish = publish
        self.idle_exit = idle_exit
        self._queue: queue.SimpleQueue[_Check] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._last_prune = 0.0

    def after_sync(
        self, *, row_id: int, provider: str, delivery_id: str, repo_id: int, repo: FollowedRepo, branch: str, sha: str
    ) -> Callable[[SyncOutcome | None], None]:
        """The `on_done` callback for the sync request of one delivery."""

        def on_done(outcome: SyncOutcome | None) -> None:
            self._queue.put(_Check(row_id, provider, delivery_id, repo_id, repo, branch, sha, outcome))
            self._ensure_worker()

        return on_done

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._main, name="odin-webhook-verify", daemon=True)
                self._worker.start()

    def _main(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.idle_exit)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._worker = None
                        return
                continue
            batch = [first]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._check(batch)
                self._maybe_prune()
            except Exception:
                log.exception("webhook commit checks failed for %d deliveries", len(batch))

    def _check(self, batch: list[_Check]) -> None:
        found: list[int] = []
        missing: list[tuple[int, str]] = []
        memo: dict[tuple[int, str], bool] = {}
        for check in batch:
            if check.outcome is None or check.outcome.error is not None:
                why = check.outcome.error.message if check.outcome and check.outcome.error else "the sync failed"
                log.info(
                    "webhook %s delivery %s: commit %s not checked (%s); the next sync will pick it up",
                    check.provider,
                    printable(check.delivery_id),
                    check.sha[:12],
                    why,
                )
                continue
            key = (check.repo_id, check.sha)
            if key not in memo:
                try:
                    memo[key] = facade.has_commit(check.repo, check.sha)
                except GitError as e:
                    log.warning("cannot check commit %s in repository %s: %s", check.sha[:12], check.repo_id, e.message)
                    continue
            if memo[key]:
                found.append(check.row_id)
            else:
                reason = f"commit {check.sha} not found on the remote (not on {check.branch} or a tag)"
                missing.append((check.row_id, reason))
                REJECTIONS.labels(check.provider, "sha_not_found").inc()
                log.warning(
                    "webhook %s delivery %s rejected after the sync of repository %s: %s",
                    check.provider,
                    printable(check.delivery_id),
                    check.repo_id,
                    reason,
                )
        if not found and not missing:
            return
        try:
            events = deliveries.mark_verified(self.db, found, missing)
        except StoreUnavailable as e:
            log.error("cannot record the commit checks of %d deliveries: %s", len(found) + len(missing), e)
            return
        for event in events:
            self.publish(event)

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < 3600:
            return
        self._last_prune = now
        try:
            removed = deliveries.prune(self.db, older_than=RETENTION)
        except StoreUnavailable:
            return
        if removed:
            log.info("removed %d webhook deliveries older than %d days", removed, RETENTION.days)
