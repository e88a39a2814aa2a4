"""`RunNotifier`: sends a pipeline's `notify:` entries when its runs end, beside the engine, never in its way.

Like the commit-status notifier, it subscribes to the event bus and only appends to a bounded inbox there (the
engine publishes from its own thread); one worker thread reads the finished run from the store, decides what to send,
renders and sends it. Failures that may pass (no answer, 429 with Retry-After, 5xx, an SMTP 4xx) are retried with
`odin.controller.backoff`; every final outcome is a run event, `notify.sent` or `notify.failed`, with the channel
and the reason, visible in `odinctl show` and the API's run events. Nothing here can fail or delay a run.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from odin.controller.backoff import Backoff
from odin.controller.bus import EventBus, EventDict
from odin.controller.store.db import DbEngine, StoreUnavailable
from odin.controller.store.notifications import NotifiedRunRow, notified_run, record_run_event
from odin.webhooks.notify.channels import Result, SmtpSettings, send_email, send_slack, send_webhook, slack_body
from odin.webhooks.notify.message import Message, render
from odin.webhooks.notify.rules import Rule, outcomes, rules_of

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("odin.webhooks.notify")

SENT_EVENT = "notify.sent"
FAILED_EVENT = "notify.failed"
LOG_LINES = 20
_TERMINAL = frozenset({"succeeded", "failed", "error", "cancelled"})


@dataclass(slots=True)
class _Delivery:
    run: NotifiedRunRow
    rule: Rule
    event: str
    message: Message
    context: dict[str, Any]
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    attempts: int = 0
    not_before: float = 0.0


class RunNotifier:
    def __init__(
        self,
        db: DbEngine,
        *,
        secret: Callable[[str], str],
        run_url: Callable[[str, str, str], str | None] = lambda _run, _pipeline, _sha: None,
        smtp: SmtpSettings | None = None,
        repo_notify: Callable[[int, str], Sequence[Mapping[str, Any]]] = lambda _repo, _sha: (),
        timeout: float = 10.0,
        max_attempts: int = 6,
        backoff: Backoff | None = None,
        inbox_size: int = 10_000,
        max_pending: int = 10_000,
    ) -> None:
        self.db = db
        self.secret = secret
        self.run_url = run_url
        self.repo_notify = repo_notify
        self.smtp = smtp if smtp is None else replace(smtp, timeout=timeout)
        self.max_attempts = max_attempts
        self.max_pending = max_pending
        self.backoff = backoff or Backoff(initial=1.0, maximum=120.0, max_retry_after=300.0)
        self._timeout = timeout
        self._client: httpx.Client | None = None  # made on the first send: most servers never send one
        self._inbox: queue.Queue[str] = queue.Queue(maxsize=inbox_size)
        self._pending: list[_Delivery] = []
        self._bus: EventBus | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drain_until: float | None = None  # once stopping: when what is still unsent is recorded as failed

    @property
    def client(self) -> httpx.Client:
        """The HTTP client of the Slack and webhook channels, made on first use: `odin serve` always makes a notifier
        and httpx (with what it imports) is a noticeable share of its start-up (issue 15)."""
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=self._timeout, headers={"User-Agent": "odin-notify"})
        return self._client

    @client.setter
    def client(self, client: httpx.Client) -> None:
        self._client = client

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()

    # -- lifecycle --------------------------------------------------------------------------------------------------
    def start(self, bus: EventBus) -> RunNotifier:
        self._bus = bus
        self._unsubscribe = bus.subscribe(self.on_event)
        self._thread = threading.Thread(target=self._main, name="odin-notify", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop following events, and drain: for up to `timeout` seconds the runs already queued are planned and
        their notifications sent (retries included, when their backoff ends in time); whatever is still unsent then
        is recorded as `notify.failed` with the reason, so nothing is lost silently. A send in flight at the deadline
        ends by the client's own timeout; the worker closes the client then."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._drain_until = time.monotonic() + timeout
        self._stop.set()
        if self._thread is None:
            self._close_client()
            return
        self._thread.join(timeout + 1)

    # -- the bus side: never blocks -------------------------------------------------------------------------------
    def on_event(self, event: EventDict) -> None:
        data = event.get("data") or {}
        if event.get("kind") != "run.status" or data.get("status") not in _TERMINAL or not event.get("run_id"):
            return
        try:
            self._inbox.put_nowait(str(event["run_id"]))
        except queue.Full:
            log.error("notification inbox full (%d runs): run %s not notified", self._inbox.maxsize, event["run_id"])

    # -- the worker -----------------------------------------------------------------------------------------------
    def _main(self) -> None:
        try:
            while not self._stop.is_set():
                with contextlib.suppress(queue.Empty):
                    self._plan(self._inbox.get(timeout=self._wait_time()))
                self._send_due()
            self._drain()
        finally:
            self._close_client()

    def _drain(self) -> None:
        """Once stopping: plan every run still queued (a store read each, so each is recorded one way or the other),
        send what can be sent before the deadline, then record the rest as failed."""
        deadline = self._drain_until if self._drain_until is not None else time.monotonic()
        while True:
            try:
                self._plan(self._inbox.get_nowait())
            except queue.Empty:
                break
        while self._pending and time.monotonic() < deadline:
            self._send_due(deadline)
            if self._pending:
                wait = min(d.not_before for d in self._pending) - time.monotonic()
                time.sleep(max(0.0, min(wait, deadline - time.monotonic(), 0.5)))
        if self._pending:
            log.warning("stopping with %d notifications unsent: recorded as failed", len(self._pending))
        for delivery in self._pending:
            reason = "not sent: the server stopped before it could be sent"
            if delivery.attempts:
                reason += f" (after {delivery.attempts} failed attempt{'s' if delivery.attempts != 1 else ''})"
            self._record(
                delivery.run, FAILED_EVENT, delivery.rule.channel, delivery.event, delivery.attempts, reason=reason
            )
        self._pending.clear()

    def _wait_time(self) -> float:
        if not self._pending:
            return 0.5
        return max(0.0, min(0.5, min(d.not_before for d in self._pending) - time.monotonic()))

    def _plan(self, run_id: str) -> None:
        try:
            run = notified_run(self.db, run_id)
        except StoreUnavailable as e:
            log.warning("run %s not notified: cannot read it (%s)", run_id, e)
            return
        if run is None:
            return
        if run.secrets_withheld:  # a fork's pull request: its entries name the server's secrets (webhook URLs...)
            log.info("run %s not notified: it comes from a fork's pull request, whose runs get no secrets", run_id)
            return
        rules = rules_of(run.spec.get("notify")) + self._repo_rules(run)
        if not rules:
            return
        happened = outcomes(run.status, run.previous_status)
        for rule in rules:
            event = rule.matches(happened)
            if event is None:
                continue
            context = self._context(run, event)
            try:
                message = render(rule.template, context)
            except Exception as e:  # the sandbox's refusals and any error of a user's template: recorded, not fatal
                self._record(run, FAILED_EVENT, rule.channel, event, attempts=0, reason=str(e)[:500])
                continue
            if len(self._pending) >= self.max_pending:
                self._record(run, FAILED_EVENT, rule.channel, event, attempts=0, reason="too many notifications unsent")
                continue
            self._pending.append(_Delivery(run, rule, event, message, context))

    def _repo_rules(self, run: NotifiedRunRow) -> list[Rule]:
        """The `notify:` of `.odin.yml` at the run's commit (none for runs without a repository or commit)."""
        if run.repo_id is None or not run.commit_sha:
            return []
        try:
            return rules_of(self.repo_notify(run.repo_id, run.commit_sha))
        except Exception as e:  # git trouble: the pipeline's own entries are still sent
            log.warning("run %s: cannot read .odin.yml's notifications (%s)", run.id, e)
            return []

    def _context(self, run: NotifiedRunRow, event: str) -> dict[str, Any]:
        failed = run.failed_task
        title = (run.commit_message.strip().splitlines() or [""])[0]
        return {
            "event": event,
            "pipeline": run.pipeline,
            "repository": run.repository,
            "run": {
                "id": run.id,
                "status": run.status,
                "reason": run.reason,
                "message": run.message,
                "branch": run.branch,
                "trigger": run.trigger,
                "triggered_by": run.triggered_by,
                "created_at": run.created_at.isoformat(),
                "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            },
            "commit": {
                "sha": run.commit_sha or "",
                "short": (run.commit_sha or "")[:12],
                "message": run.commit_message,
                "title": title,
                "author": run.author_name,
                "author_email": run.author_email,
            },
            "failed_task": None
            if failed is None
            else {"name": failed.name, "reason": failed.reason, "message": failed.message},
            "log_lines": _tail(failed.log_path) if failed is not None and failed.log_path else [],
            "run_url": self.run_url(run.id, run.pipeline, run.commit_sha or ""),
        }

    def _send_due(self, deadline: float | None = None) -> None:
        """Send the deliveries that are due; until `deadline` when draining, else until asked to stop."""
        now = time.monotonic()
        for delivery in [d for d in self._pending if d.not_before <= now]:
            if (self._stop.is_set() and deadline is None) or (deadline is not None and time.monotonic() >= deadline):
                return
            result = self._send(delivery)
            delivery.attempts += 1
            if result.sent:
                self._pending.remove(delivery)
                self._record(delivery.run, SENT_EVENT, delivery.rule.channel, delivery.event, delivery.attempts)
            elif result.retry_after is None or delivery.attempts >= self.max_attempts:
                self._pending.remove(delivery)
                reason = result.reason if result.retry_after is None else f"{result.reason}; gave up"
                self._record(
                    delivery.run, FAILED_EVENT, delivery.rule.channel, delivery.event, delivery.attempts, reason=reason
                )
            else:
                delay = self.backoff.next_delay(delivery.attempts - 1, result.retry_after or None)
                delivery.not_before = time.monotonic() + delay
                log.info("run %s: %s notification will be retried in %.1f s (%s)", delivery.run.id,
                         delivery.rule.channel, delay, result.reason)  # fmt: skip

    def _send(self, d: _Delivery) -> Result:
        try:
            if d.rule.channel == "slack":
                url = self.secret(str(d.rule.target["webhook"]))
                return send_slack(self.client, url, slack_body(d.message, d.context["run_url"]))
            if d.rule.channel == "webhook":
                payload = {**d.context, "text": d.message.text, "delivery": d.id}
                return send_webhook(
                    self.client,
                    str(d.rule.target["url"]),
                    self.secret(str(d.rule.target["secret"])),
                    payload,
                    delivery=d.id,
                    event=d.event,
                )
            if self.smtp is None:
                return Result(False, "e-mail is not configured on the server (set ODIN_SMTP_HOST and ODIN_SMTP_FROM)")
            return send_email(self.smtp, [str(t) for t in d.rule.target["to"]], d.message)
        except Exception as e:  # a secret reference that does not resolve, a bug: recorded, never kills the worker
            return Result(False, str(e)[:500])

    def _record(
        self, run: NotifiedRunRow, kind: str, channel: str, event: str, attempts: int, *, reason: str | None = None
    ) -> None:
        data: dict[str, Any] = {"channel": channel, "on": event, "attempts": attempts}
        if reason is not None:
            data["reason"] = reason
        log_at = logging.INFO if kind == SENT_EVENT else logging.WARNING
        log.log(log_at, "run %s: %s %s notification%s", run.id, "sent" if kind == SENT_EVENT else "failed to send",
                channel, f": {reason}" if reason else "")  # fmt: skip
        try:
            row = record_run_event(self.db, run.id, kind, commit_sha=run.commit_sha, **data)
        except StoreUnavailable as e:
            log.warning("run %s: notification outcome not recorded (%s)", run.id, e)
            return
        if self._bus is not None:
            self._bus.publish(row)


def _tail(path: str, lines: int = LOG_LINES, limit: int = 16_384) -> list[str]:
    """The last lines of a task's log on this machine (local runs); none when it is elsewhere or unreadable."""
    try:
        with Path(path).open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read(limit)
    except OSError:
        return []
    return [line[:500] for line in data.decode("utf-8", "replace").splitlines()[-lines:]]
