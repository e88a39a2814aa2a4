"""Commit statuses: the outcome of each run, and of validation, shown on the commit where the user pushed it.

`CommitStatusNotifier` subscribes to the controller's event bus. The engine publishes from its own thread, so the
subscriber only appends the event to a bounded queue and returns — a slow, failing or unreachable provider can never
delay a task. A worker thread turns events into statuses and posts them:

- One pending status per (commit, context): a newer state replaces an unsent older one, so a run that finishes while
  the provider is down posts its final state once it is back, not a backlog of stale ones.
- Failures that may pass (connection errors, 5xx, 429, GitHub's rate-limit 403) are retried with exponential backoff
  and jitter, honouring `Retry-After`; others (401, 404, 422: a wrong token or repository) are logged and dropped.
- Everything is bounded: the inbox, the pending statuses, the attempts per status. What is dropped is counted in
  `odin_commit_status_posts_total{result="dropped"}` and logged; a status refused or given up is also recorded as a
  `report.failed` event on its run (or commit).

A status may carry a `Report` (`report.py`): the problems at `file:line` for the validation check, a run's tasks and
failed task for a run's check. A `Sender` turns it into its provider's calls: one POST for a plain status, or the
look-up, create and batched updates of a GitHub check run (`github_checks.py`), a merge-request note (`gitlab.py`), a
Bitbucket Code Insights report (`bitbucket.py`). Senders are idempotent, so a report retried or sent again after a
restart updates what is there.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from odin.controller.backoff import Backoff
from odin.controller.bus import EventBus, EventDict
from odin.controller.store.db import DbEngine, StoreUnavailable
from odin.controller.store.reports import ReportedRun, commit_problems, record_report_failure, reported_run
from odin.controller.store.run_queries import run_origin
from odin.webhooks.metrics import STATUS_PENDING, STATUS_POSTS
from odin.webhooks.notifiers.http import ProviderHttp, Refused, RetryLater
from odin.webhooks.notifiers.report import Report, run_report, validation_report

if TYPE_CHECKING:
    import httpx  # imported by the notifier that is made: `odin serve` without commit statuses never loads it

log = logging.getLogger("odin.webhooks.status")

DESCRIPTION_LIMIT = 140  # GitHub cuts descriptions around here; GitLab allows 255


class State(StrEnum):
    """Odin's vocabulary; each provider maps it onto its own states."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    ERROR = "error"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"  # the run's `timeout` ended it
    SKIPPED = "skipped"  # `concurrency.policy: skip`: never started


@dataclass(frozen=True, slots=True)
class CommitStatus:
    sha: str
    context: str
    state: State
    description: str
    target_url: str | None = None
    report: Report | None = None  # what a check shows besides its state (None: a plain status)
    run_id: str | None = None  # the run it is about (None: the commit's validation)


@dataclass(frozen=True, slots=True)
class StatusRequest:
    url: str
    json: dict[str, Any]
    headers: Mapping[str, str]


class StatusApi(Protocol):
    """One provider's "set a commit status" call."""

    provider: str

    def request(self, status: CommitStatus, token: str) -> StatusRequest: ...


class Sender(Protocol):
    """One provider's way of showing a status (and its report, if it can): any number of calls through `http`,
    which raises `RetryLater` or `Refused`. Sending the same status twice must not show it twice.

    A sender with a true `run_reports` attribute shows a run's tasks and failed task; only then does the notifier
    read them for each run event (validation reports are always made: they cost one query per commit)."""

    provider: str

    def send(self, status: CommitStatus, token: str, http: ProviderHttp) -> None: ...


class StatusPoster:
    """A `StatusApi` as a `Sender`: the status is one POST, its report is not shown."""

    def __init__(self, api: StatusApi) -> None:
        self.api = api
        self.provider = api.provider

    def send(self, status: CommitStatus, token: str, http: ProviderHttp) -> None:
        request = self.api.request(status, token)
        http.call("POST", request.url, json=request.json, headers=request.headers)


@dataclass(frozen=True, slots=True)
class StatusTarget:
    """Where one repository's statuses go: its provider's sender (API root and the repository's path in it) and the
    token to send with, read at each send (a rotated `file:` reference needs no restart)."""

    sender: Sender
    token: Callable[[], str]
    repository: str  # the provider's name of the repository (owner/name), for the log

    @property
    def provider(self) -> str:
        return self.sender.provider


class Targets(Protocol):
    """The target of each followed repository by its id; None: its statuses go nowhere (no provider, no token)."""

    def __call__(self, repo_id: int) -> StatusTarget | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Pending:
    status: CommitStatus
    repo_id: int
    provider: str
    attempts: int = 0
    not_before: float = 0.0


_RUN_STATES = {
    "queued": (State.PENDING, "queued"),  # waiting for a slot (concurrency, ODIN_MAX_ACTIVE_RUNS); the message says why
    "running": (State.RUNNING, "running"),
    "succeeded": (State.SUCCESS, "succeeded"),
    "failed": (State.FAILURE, "failed"),
    "cancelled": (State.CANCELLED, "cancelled"),
    "error": (State.ERROR, "could not run"),
    "skipped": (State.SKIPPED, "skipped"),  # `concurrency.policy: skip`: never started
}
_TIMED_OUT = "TimedOut"  # the reason of a run its `timeout` ended (engine/decide.py)


class CommitStatusNotifier:
    """Statuses of every followed repository, each sent to its own target (`targets`: its provider, repository path
    and token; docs/webhooks.md, "Commit statuses")."""

    def __init__(
        self,
        targets: Targets,
        db: DbEngine,
        *,
        context_prefix: str = "odin",
        run_url: Callable[[str, str, str], str | None] = lambda _run, _pipeline, _sha: None,
        commit_url: Callable[[str], str | None] = lambda _sha: None,
        read_log: Callable[[str, str], list[str]] = lambda _run, _task: [],
        client: httpx.Client | None = None,
        inbox_size: int = 10_000,
        max_pending: int = 10_000,
        max_attempts: int = 8,
        base_delay: float = 1.0,
        max_delay: float = 120.0,
        timeout: float = 10.0,
    ) -> None:
        self.targets = targets
        self.db = db
        self.prefix = context_prefix
        self.run_url = run_url
        self.commit_url = commit_url
        self.read_log = read_log
        if client is None:
            import httpx

            client = httpx.Client(timeout=timeout, headers={"User-Agent": "odin-commit-status"})
        self.client = client
        self.max_pending = max_pending
        self.max_attempts = max_attempts
        # Equal jitter (half fixed, half random); a rate limit's Retry-After counts up to five minutes.
        self.backoff = Backoff(initial=base_delay, maximum=max_delay, max_retry_after=300.0)
        self._inbox: queue.Queue[EventDict] = queue.Queue(maxsize=inbox_size)
        self._pending: OrderedDict[tuple[int, str, str], _Pending] = OrderedDict()
        self._providers: set[str] = set()  # those with a pending gauge, so that an emptied one shows 0
        self._runs: OrderedDict[str, tuple[str, str | None, int | None]] = OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop_timeout = 5.0  # how long statuses already due are still sent once stopping (see `stop`)
        self._unsubscribe: Callable[[], None] | None = None
        self._bus: EventBus | None = None
        self._dropped_logged = 0.0
        self._paused_until = 0.0  # the provider said "too many requests": nothing is sent before then

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(self, bus: EventBus) -> CommitStatusNotifier:
        self._bus = bus
        self._unsubscribe = bus.subscribe(self.on_event)
        self._thread = threading.Thread(target=self._main, name="odin-status", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop following events; statuses already due are sent for up to `timeout` seconds, the rest dropped."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._stop_timeout = timeout
        self._stop.set()
        if self._thread is None:
            self.client.close()
            self.targets.close()
            return
        self._thread.join(timeout + 1)
        # A post still in flight (a provider that never answers) ends by the client's own timeout; the sending thread
        # closes the client then. Closing it from here would leave that connection's socket to the garbage collector.

    # -- the bus side: never blocks ---------------------------------------------------------------------------------
    def on_event(self, event: EventDict) -> None:
        if event.get("kind") not in ("run.created", "run.status", "commit.seen"):
            return
        try:
            self._inbox.put_nowait(event)
        except queue.Full:
            STATUS_POSTS.labels("unknown", "dropped").inc()  # its repository (so its provider) is not read here
            now = time.monotonic()
            if now - self._dropped_logged > 10:
                self._dropped_logged = now
                log.error("commit status inbox full (%d events): dropping events", self._inbox.maxsize)

    # -- the worker -----------------------------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            self._send_until_stopped()
        finally:
            self.client.close()
            self.targets.close()

    def _send_until_stopped(self) -> None:
        deadline: float | None = None
        while True:
            if self._stop.is_set() and deadline is None:
                deadline = time.monotonic() + self._stop_timeout
            timeout = self._wait_time()
            try:
                event = self._inbox.get(timeout=timeout if deadline is None else min(timeout, 0.05))
                self._absorb(event)
                while True:
                    self._absorb(self._inbox.get_nowait())
            except queue.Empty:
                pass
            self._send_due(stopping=deadline is not None)
            self._gauge_pending()
            if deadline is not None and (not self._due() or time.monotonic() > deadline):
                if self._pending:
                    log.warning("stopping with %d commit statuses unsent", len(self._pending))
                return

    def _wait_time(self) -> float:
        if not self._pending:
            return 0.5
        earliest = max(self._paused_until, min(p.not_before for p in self._pending.values()))
        return max(0.0, min(0.5, earliest - time.monotonic()))

    def _due(self) -> bool:
        now = time.monotonic()
        return now >= self._paused_until and any(p.not_before <= now for p in self._pending.values())

    def _gauge_pending(self) -> None:
        counts: dict[str, int] = dict.fromkeys(self._providers, 0)
        for item in self._pending.values():
            counts[item.provider] = counts.get(item.provider, 0) + 1
        for provider, count in counts.items():
            STATUS_PENDING.labels(provider).set(count)
        self._providers.update(counts)

    def _absorb(self, event: EventDict) -> None:
        try:
            found = self._status_for(event)
        except StoreUnavailable as e:
            log.warning("commit status for event %s skipped: cannot read the run (%s)", event.get("id"), e)
            return
        if found is None:
            return
        repo_id, target, status = found
        key = (repo_id, status.sha, status.context)  # a fork's commit may be another repository's too
        previous = self._pending.pop(key, None)
        # A newer state replaces an unsent older one, but keeps its place in any backoff the provider asked for.
        not_before = previous.not_before if previous else 0.0
        self._pending[key] = _Pending(status, repo_id, target.provider, not_before=not_before)
        while len(self._pending) > self.max_pending:
            (_, sha, context), dropped = self._pending.popitem(last=False)
            STATUS_POSTS.labels(dropped.provider, "dropped").inc()
            log.error("too many unsent commit statuses: dropped %s %s for %s", context, dropped.status.state, sha[:12])

    def _status_for(self, event: EventDict) -> tuple[int, StatusTarget, CommitStatus] | None:
        """The status an event sets, with its repository and where it goes; None: it sets none (or nowhere)."""
        kind = event.get("kind")
        data: Mapping[str, Any] = event.get("data") or {}
        if kind == "commit.seen":
            sha = event.get("commit_sha")
            repo_id = event.get("repo_id")
            if not isinstance(repo_id, int) or not sha:
                return None
            target = self.targets(repo_id)
            if target is None:
                return None
            validation = data.get("validation")
            problems = int(data.get("problems") or 0)
            warnings = int(data.get("warnings") or 0)  # never fail the status; counted so they are not missed
            also = f" ({warnings} warning{'s' if warnings != 1 else ''})" if warnings else ""
            pipelines = list(data.get("pipelines") or [])
            if validation == "invalid":
                noun = "problem" if problems == 1 else "problems"
                text = f"{problems} {noun} in the pipeline files: nothing runs for this commit{also}"
                state = State.FAILURE
            elif validation == "valid" and pipelines:
                count = len(pipelines)
                text = f"{count} pipeline{'s' if count != 1 else ''} valid{also}"
                state = State.SUCCESS
            else:
                return None
            found = commit_problems(self.db, repo_id, str(sha)) if problems or warnings else []
            try:
                checked: Report | None = validation_report(found, pipelines)
            except Exception as e:  # a problem stored in a shape not understood: the status still goes
                log.error("commit %s: validation report not made (%s: %s)", str(sha)[:12], type(e).__name__, e)
                checked = None
            url = self.commit_url(str(sha))
            return repo_id, target, CommitStatus(str(sha), f"{self.prefix}/validation", state, text, url, checked)
        run_id = event.get("run_id")
        if not run_id:
            return None
        pipeline, sha, run_repo = self._run(str(run_id))
        if run_repo is None or not sha:
            return None
        run_target = self.targets(run_repo)
        if run_target is None:
            return None
        run_reports = bool(getattr(run_target.sender, "run_reports", False))
        url = self.run_url(str(run_id), pipeline, sha)
        context = f"{self.prefix}/{pipeline}"
        if kind == "run.created":
            state, word, message = State.PENDING, "queued", None
        else:
            mapped = _RUN_STATES.get(str(data.get("status")))
            if mapped is None:
                return None
            state, word = mapped
            message = data.get("message")
        # The run's row: for a report, or to tell a timed-out run (its reason) from another failure.
        run = reported_run(self.db, str(run_id)) if run_reports or state is State.FAILURE else None
        if state is State.FAILURE and run is not None and run.reason == _TIMED_OUT:
            state, word = State.TIMED_OUT, "timed out"
        text = f"run {run_id} {word}" + (f": {message}" if message and state is not State.SUCCESS else "")
        report = None
        if run is not None and run_reports:
            try:
                report = self._run_report(run, state, word)
            except Exception as e:  # never lose the status for its summary
                log.error("run %s: check summary not made (%s: %s)", run_id, type(e).__name__, e)
        status = CommitStatus(sha, context, state, text[:DESCRIPTION_LIMIT], url, report, str(run_id))
        return run_repo, run_target, status

    def _run_report(self, run: ReportedRun, state: State, word: str) -> Report:
        run_id = run.id
        lines: list[str] = []
        if state in (State.FAILURE, State.TIMED_OUT, State.ERROR):
            failed = [t for t in run.tasks if t.status in ("failed", "error")]
            if failed:
                try:
                    lines = self.read_log(run_id, failed[0].name)
                except Exception as e:  # an executor that cannot read the log: the report goes without it
                    log.info("run %s: last log lines of %s unavailable (%s)", run_id, failed[0].name, e)
        return run_report(run, word, lines)

    def _run(self, run_id: str) -> tuple[str, str | None, int | None]:
        cached = self._runs.get(run_id)
        if cached is not None:
            return cached
        found = run_origin(self.db, run_id) or ("", None, None)
        self._runs[run_id] = found
        while len(self._runs) > 4096:
            self._runs.popitem(last=False)
        return found

    def _send_due(self, *, stopping: bool) -> None:
        now = time.monotonic()
        for key in [k for k, p in self._pending.items() if p.not_before <= now]:
            if (self._stop.is_set() and not stopping) or time.monotonic() < self._paused_until:
                return
            item = self._pending.get(key)
            if item is None:
                continue
            retry_after = self._send(item)
            if retry_after is None:
                self._pending.pop(key, None)
                continue
            attempts = item.attempts + 1
            if attempts >= self.max_attempts:
                self._pending.pop(key, None)
                STATUS_POSTS.labels(item.provider, "dropped").inc()
                log.error(
                    "commit status %s=%s for %s dropped after %d attempts",
                    item.status.context,
                    item.status.state,
                    item.status.sha[:12],
                    attempts,
                )
                self._record_failure(item, f"given up after {attempts} attempts", attempts)
                continue
            delay = self.backoff.next_delay(attempts - 1, retry_after)
            if retry_after > 0:  # a rate limit is the provider's, not this status's: hold every status
                self._paused_until = max(self._paused_until, time.monotonic() + retry_after)
            current = self._pending.get(key)
            if current is item:
                self._pending[key] = replace(item, attempts=attempts, not_before=now + delay)
            elif current is not None:  # replaced meanwhile by a newer state: it waits out the same backoff
                self._pending[key] = replace(current, not_before=now + delay)

    def _send(self, item: _Pending) -> float | None:
        """Send one status (with its report) to its repository's target. None: done (sent, or given up as
        hopeless, or its repository no longer followed); a number: retry, no sooner than that."""
        status, provider = item.status, item.provider
        target = self.targets(item.repo_id)
        if target is None:
            log.debug("commit status %s for %s dropped: its repository has no target now", status.context, status.sha)
            return None
        try:
            target.sender.send(status, target.token(), ProviderHttp(self.client, provider))
        except RetryLater as e:
            STATUS_POSTS.labels(provider, "retried").inc()
            log.warning("commit status %s for %s: %s; will retry", status.context, status.sha[:12], e)
            return self.backoff.retry_after(e.after)
        except Refused as e:
            STATUS_POSTS.labels(provider, "failed").inc()
            log.error(
                "commit status %s for %s refused by %s (%d): %s",
                status.context,
                status.sha[:12],
                provider,
                e.status_code,
                e.text,
            )
            self._record_failure(item, f"refused by {provider} ({e.status_code}): {e.text}", 1)
            return None
        except Exception as e:  # a secret reference that stopped resolving, a bug: never kill the worker
            STATUS_POSTS.labels(provider, "failed").inc()
            log.error("commit status %s for %s not sent: %s", status.context, status.sha[:12], e)
            self._record_failure(item, f"not sent: {e}"[:500], 1)
            return None
        STATUS_POSTS.labels(provider, "ok").inc()
        log.debug("commit status %s=%s posted for %s", status.context, status.state, status.sha[:12])
        return None

    def _record_failure(self, item: _Pending, reason: str, attempts: int) -> None:
        """A `report.failed` event: a refused or abandoned status is visible beside the run, not only in the log."""
        status = item.status
        try:
            event = record_report_failure(
                self.db,
                repo_id=item.repo_id,
                sha=status.sha,
                run_id=status.run_id,
                provider=item.provider,
                context=status.context,
                state=status.state.value,
                attempts=attempts,
                reason=reason,
            )
        except StoreUnavailable as e:
            log.warning("failed commit status %s for %s not recorded (%s)", status.context, status.sha[:12], e)
            return
        if self._bus is not None:
            self._bus.publish(event)
