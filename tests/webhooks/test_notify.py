"""Run notifications (`notify:` in main.yml) reach local stand-ins for Slack, a generic signed webhook receiver and an
SMTP server when runs end: on the outcomes asked for, compared with the previous run of the pipeline on its branch;
retried when the other side may recover, recorded as run events either way, and never in the way of a run."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from odin.webhooks import notify
from odin.webhooks.notify.rules import outcomes
from tests.support.wait import wait_until
from tests.webhooks.conftest import OdinFactory
from tests.webhooks.fake_receivers import FakeReceiver, FakeSlack, MailSink
from tests.webhooks.support import Odin, load, point_at, signed
from tests.webhooks.test_notifiers import hanging_server, push_via_webhook

PUBLIC = "https://odin.acme.example"
HOOK_SECRET = "hmac-secret-of-the-receiver"

FAIL = "echo loading the data; echo CUDA out of memory >&2; exit 3"
PASS = "echo all good"


def pipeline(command: str, notify_yaml: str) -> str:
    return (
        "name: train\n"
        f"tasks:\n  - {{name: fit, image: busybox, command: [sh, -c, '{command}'], retries: 0}}\n"
        f"notify:\n{notify_yaml}"
    )


SLACK_ON_FAILURE_AND_RECOVERY = "  - on: [failure, recovery]\n    slack: {webhook: env:ODIN_NOTIFY_SLACK}\n"


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSlack]:
    fake = FakeSlack().start()
    monkeypatch.setenv("ODIN_NOTIFY_SLACK", fake.url)
    yield fake
    fake.stop()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeReceiver]:
    fake = FakeReceiver(secret=HOOK_SECRET).start()
    monkeypatch.setenv("ODIN_NOTIFY_HOOK", HOOK_SECRET)
    yield fake
    fake.stop()


AUTHOR = ("Ada Lovelace", "ada@acme.example")


def push_by(odin: Odin, files: dict[str, str], author: tuple[str, str], message: str) -> str:
    """Commit `files` as `author` and tell `odin` with a signed GitHub push delivery; the sha."""
    before = odin.remote.head
    sha = odin.remote.commit(files, message, author=author)
    delivery = point_at("github", load("github", "push"), after=sha, before=before)
    delivery.headers["X-GitHub-Delivery"] = f"delivery-{sha}"
    raw, headers = signed("github", delivery)
    assert odin.post("github", raw, headers).status_code == 202
    return sha


def notifying_odin(factory: OdinFactory, **overrides: Any) -> tuple[Odin, notify.RunNotifier]:
    odin = factory(public_url=PUBLIC, **overrides)
    notifier = notify.from_settings(odin.settings, odin.controller)
    notifier.backoff = replace(notifier.backoff, initial=0.05, maximum=0.2)
    notifier.start(odin.controller.bus)
    return odin, notifier


def finished(odin: Odin, sha: str, status: str) -> Any:
    def ended() -> Any:
        runs = odin.runs(sha)
        return runs[0] if runs and runs[0].status == status else None

    return wait_until(ended, 30, message=f"run of {sha[:8]} {status}")


def notify_events(odin: Odin, run_id: str) -> list[tuple[str, dict[str, Any]]]:
    rows = [e for e in odin.events("notify.sent") + odin.events("notify.failed") if e.run_id == run_id]
    return [(e.kind, dict(e.data)) for e in sorted(rows, key=lambda e: e.id)]


def test_outcomes_compare_with_the_previous_run() -> None:
    assert outcomes("failed", None) == {"failure", "first_failure"}
    assert outcomes("failed", "succeeded") == {"failure", "first_failure"}
    assert outcomes("error", "failed") == {"failure"}
    assert outcomes("succeeded", "failed") == {"success", "recovery"}
    assert outcomes("succeeded", "succeeded") == {"success"}
    assert outcomes("cancelled", "failed") == frozenset()


def test_failure_then_recovery_reach_slack_and_a_signed_webhook(
    odin_factory: OdinFactory, slack: FakeSlack, receiver: FakeReceiver
) -> None:
    rules = SLACK_ON_FAILURE_AND_RECOVERY + (
        f"  - on: [first_failure, recovery]\n    webhook: {{url: '{receiver.url}', secret: env:ODIN_NOTIFY_HOOK}}\n"
    )
    odin, notifier = notifying_odin(odin_factory)
    try:
        broken = push_via_webhook(odin, {"train/main.yml": pipeline(FAIL, rules)})
        run = finished(odin, broken, "failed")
        wait_until(lambda: len(notify_events(odin, run.id)) == 2, 30, message="both notifications recorded")
        [hit] = slack.hits
        text = hit.body["text"]
        assert text.startswith(f"train: run {run.id} failed on main\n"), "Slack's entry asks for `failure`"
        assert f"commit {broken[:12]}" in text and "failed task: fit" in text
        assert "CUDA out of memory" in text, "the failed task's last log lines"
        assert f"{PUBLIC}/console/runs/{run.id}" in text
        assert hit.body["blocks"][0]["type"] == "section"

        [delivery] = receiver.verified()
        expected = "sha256=" + hmac.new(HOOK_SECRET.encode(), delivery.raw, hashlib.sha256).hexdigest()
        assert delivery.headers["x-odin-signature"] == expected
        assert delivery.headers["x-odin-event"] == "first_failure" and delivery.headers["x-odin-delivery"]
        body = delivery.body
        assert body["run"]["id"] == run.id and body["run"]["status"] == "failed"
        assert body["commit"]["sha"] == broken and body["failed_task"]["name"] == "fit"
        assert body["run_url"] == f"{PUBLIC}/console/runs/{run.id}"
        events = notify_events(odin, run.id)
        assert sorted(e["channel"] for _, e in events) == ["slack", "webhook"]
        assert {kind for kind, _ in events} == {"notify.sent"}

        # Failing again: a failure, not a first failure -- Slack hears of it, the webhook does not.
        again = push_via_webhook(odin, {"train/main.yml": pipeline(FAIL + " ", rules)})
        run2 = finished(odin, again, "failed")
        wait_until(lambda: notify_events(odin, run2.id), 30)
        assert [e["channel"] for _, e in notify_events(odin, run2.id)] == ["slack"]
        assert f"run {run2.id} failed on main" in slack.hits[-1].body["text"]

        fixed = push_via_webhook(odin, {"train/main.yml": pipeline(PASS, rules)})
        run3 = finished(odin, fixed, "succeeded")
        wait_until(lambda: len(notify_events(odin, run3.id)) == 2, 30)
        assert "succeeded again (it failed last time)" in slack.hits[-1].body["text"]
        assert receiver.verified()[-1].headers["x-odin-event"] == "recovery"
        assert len(slack.hits) == 3 and len(receiver.hits) == 2
    finally:
        notifier.stop()


def test_slack_rate_limits_are_waited_out_and_refusals_recorded(odin_factory: OdinFactory, slack: FakeSlack) -> None:
    odin, notifier = notifying_odin(odin_factory)
    try:
        slack.answer_next(500, "rollup_error")
        slack.answer_next(429, "rate_limited", {"Retry-After": "1"})
        sha = push_via_webhook(odin, {"train/main.yml": pipeline(FAIL, SLACK_ON_FAILURE_AND_RECOVERY)})
        run = finished(odin, sha, "failed")
        wait_until(lambda: notify_events(odin, run.id), 30)
        assert [h.answered for h in slack.hits] == [500, 429, 200]
        assert slack.hits[2].at - slack.hits[1].at >= 0.95, "nothing is sent before Retry-After has passed"
        [(kind, data)] = notify_events(odin, run.id)
        assert kind == "notify.sent" and data["attempts"] == 3 and data["on"] == "failure"

        slack.answer_next(404, "no_service")
        sha = push_via_webhook(odin, {"train/main.yml": pipeline(FAIL + " ", SLACK_ON_FAILURE_AND_RECOVERY)})
        run = finished(odin, sha, "failed")
        wait_until(lambda: notify_events(odin, run.id), 30)
        [(kind, data)] = notify_events(odin, run.id)
        assert kind == "notify.failed" and data["attempts"] == 1, "a revoked webhook is not retried"
        assert "404" in data["reason"] and "no_service" in data["reason"]
        assert slack.url not in data["reason"], "a Slack webhook URL is a secret"
    finally:
        notifier.stop()


def test_stopping_sends_what_is_queued_and_records_what_it_could_not(
    odin_factory: OdinFactory, slack: FakeSlack
) -> None:
    odin = odin_factory(public_url=PUBLIC)
    sha = push_via_webhook(odin, {"train/main.yml": pipeline(FAIL, SLACK_ON_FAILURE_AND_RECOVERY)})
    run = finished(odin, sha, "failed")  # no notifier yet: its end is handed over below, then stopped at once
    ended = {"kind": "run.status", "run_id": run.id, "data": {"status": "failed"}}

    # Slack asks to wait longer than stopping allows: recorded as not sent, with why, when stop returns.
    slack.answer_next(429, "rate_limited", {"Retry-After": "60"})
    notifier = notify.from_settings(odin.settings, odin.controller).start(odin.controller.bus)
    notifier.on_event(ended)
    started = time.monotonic()
    notifier.stop(timeout=1)
    assert time.monotonic() - started < 5
    [(kind, data)] = notify_events(odin, run.id)
    assert kind == "notify.failed" and data["attempts"] == 1
    assert data["reason"] == "not sent: the server stopped before it could be sent (after 1 failed attempt)"

    # A run queued when stopping is still notified before stop returns.
    notifier = notify.from_settings(odin.settings, odin.controller).start(odin.controller.bus)
    notifier.on_event(ended)
    notifier.stop(timeout=10)
    assert [kind for kind, _ in notify_events(odin, run.id)] == ["notify.failed", "notify.sent"]
    assert [h.answered for h in slack.hits] == [429, 200]


def test_a_hanging_slack_never_delays_a_run(odin_factory: OdinFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    listener = hanging_server()
    monkeypatch.setenv("ODIN_NOTIFY_SLACK", f"http://127.0.0.1:{listener.getsockname()[1]}/hook")
    odin, notifier = notifying_odin(odin_factory, notify_timeout=2.0)
    notifier.max_attempts = 1
    try:
        started = time.monotonic()
        sha = push_via_webhook(odin, {"train/main.yml": pipeline(FAIL, SLACK_ON_FAILURE_AND_RECOVERY)})
        run = finished(odin, sha, "failed")
        # Seen failed while the notification still waits on Slack: the run's end did not wait for it.
        assert notify_events(odin, run.id) == [] and time.monotonic() - started < 30
        wait_until(lambda: notify_events(odin, run.id), 30, message="the timeout recorded")
        [(kind, data)] = notify_events(odin, run.id)
        assert kind == "notify.failed" and "did not answer (ReadTimeout)" in data["reason"]
    finally:
        notifier.stop(timeout=1)
        listener.close()


def test_email_goes_through_smtp(odin_factory: OdinFactory) -> None:
    sink = MailSink().start()
    odin, notifier = notifying_odin(
        odin_factory, smtp_host="127.0.0.1", smtp_port=sink.port, smtp_from="odin@acme.example", smtp_starttls=False
    )
    try:
        rules = "  - on: [success]\n    email: {to: [ml-team@acme.example, oncall@acme.example]}\n"
        sha = push_via_webhook(odin, {"train/main.yml": pipeline(PASS, rules)})
        run = finished(odin, sha, "succeeded")
        wait_until(lambda: sink.mails, 30, message="the e-mail delivered")
        [mail] = sink.mails
        assert mail.sender == "odin@acme.example"
        assert mail.recipients == ["ml-team@acme.example", "oncall@acme.example"]
        assert mail.message["Subject"] == f"train: run {run.id} succeeded on main"
        assert f"{PUBLIC}/console/runs/{run.id}" in mail.message.get_payload()
        wait_until(lambda: notify_events(odin, run.id), 30)
        assert notify_events(odin, run.id)[0][0] == "notify.sent"
    finally:
        notifier.stop()
        sink.stop()


def test_a_user_template_is_sandboxed_and_its_errors_recorded(odin_factory: OdinFactory, slack: FakeSlack) -> None:
    odin, notifier = notifying_odin(odin_factory)
    try:
        rules = (
            "  - on: [failure]\n    template: '{{ pipeline }} broke at {{ commit.short }}: {{ failed_task.name }}'\n"
            "    slack: {webhook: env:ODIN_NOTIFY_SLACK}\n"
            "  - on: [failure]\n    template: '{{ run.__class__.__mro__ }}'\n"
            "    slack: {webhook: env:ODIN_NOTIFY_SLACK}\n"
        )
        sha = push_via_webhook(odin, {"train/main.yml": pipeline(FAIL, rules)})
        run = finished(odin, sha, "failed")
        wait_until(lambda: len(notify_events(odin, run.id)) == 2, 30)
        assert [h.body["text"] for h in slack.hits] == [f"train broke at {sha[:12]}: fit"]
        failed = [data for kind, data in notify_events(odin, run.id) if kind == "notify.failed"]
        assert len(failed) == 1 and failed[0]["reason"].startswith("template:")
    finally:
        notifier.stop()


def test_an_unset_secret_reference_is_recorded_not_fatal(odin_factory: OdinFactory) -> None:
    odin, notifier = notifying_odin(odin_factory)
    try:
        rules = "  - on: [failure]\n    slack: {webhook: env:ODIN_NOTIFY_NOWHERE}\n"
        sha = push_via_webhook(odin, {"train/main.yml": pipeline(FAIL, rules)})
        run = finished(odin, sha, "failed")
        wait_until(lambda: notify_events(odin, run.id), 30)
        [(kind, data)] = notify_events(odin, run.id)
        assert kind == "notify.failed" and "ODIN_NOTIFY_NOWHERE" in data["reason"]
    finally:
        notifier.stop()


def test_the_repositorys_odin_yml_notifies_for_every_pipeline(odin_factory: OdinFactory, slack: FakeSlack) -> None:
    odin, notifier = notifying_odin(odin_factory)
    try:
        plain = "name: train\ntasks:\n  - {name: fit, image: busybox, command: [sh, -c, 'exit 1'], retries: 0}\n"
        config = "notify:\n  - on: [failure]\n    slack: {webhook: env:ODIN_NOTIFY_SLACK}\n"
        sha = push_via_webhook(odin, {"train/main.yml": plain, ".odin.yml": config})
        run = finished(odin, sha, "failed")
        wait_until(lambda: notify_events(odin, run.id), 30)
        [(kind, data)] = notify_events(odin, run.id)
        assert kind == "notify.sent" and data["channel"] == "slack"
        assert slack.hits[0].body["text"].startswith(f"train: run {run.id} failed")
    finally:
        notifier.stop()


def test_a_signed_webhook_that_fails_twice_is_retried_with_backoff_until_it_takes_it(
    odin_factory: OdinFactory, receiver: FakeReceiver
) -> None:
    """The receiver answers 503, then 502, then takes the delivery: the same body and delivery id each time, later
    each time (the backoff doubles, no jitter here so its floor is exact), and the signature verifies on the
    delivery it took."""
    odin, notifier = notifying_odin(odin_factory)
    notifier.backoff = replace(notifier.backoff, initial=0.2, maximum=5.0, jitter=0.0)
    receiver.answer_next(503, "busy")
    receiver.answer_next(502, "bad gateway")
    rules = f"  - on: [failure]\n    webhook: {{url: '{receiver.url}', secret: env:ODIN_NOTIFY_HOOK}}\n"
    try:
        sha = push_via_webhook(odin, {"train/main.yml": pipeline(FAIL, rules)})
        run = finished(odin, sha, "failed")
        wait_until(lambda: notify_events(odin, run.id), 30, message="the notification's outcome recorded")
    finally:
        notifier.stop()
    assert [h.answered for h in receiver.hits] == [503, 502, 200]
    assert len({h.raw for h in receiver.hits}) == 1, "the same body each time"
    assert len({h.headers["x-odin-delivery"] for h in receiver.hits}) == 1, "one delivery id: the receiver dedupes"
    [taken] = receiver.verified()
    expected = "sha256=" + hmac.new(HOOK_SECRET.encode(), taken.raw, hashlib.sha256).hexdigest()
    assert taken.headers["x-odin-signature"] == expected
    assert taken.body["run"]["id"] == run.id and taken.headers["x-odin-event"] == "failure"
    first, second, third = (h.at for h in receiver.hits)
    assert second - first >= 0.2 * 0.95 and third - second >= 0.4 * 0.95, "each retry waits longer than the last"
    [(kind, data)] = notify_events(odin, run.id)
    assert (kind, data["channel"], data["attempts"]) == ("notify.sent", "webhook", 3)


def test_the_commit_author_is_in_every_channels_message(
    odin_factory: OdinFactory, slack: FakeSlack, receiver: FakeReceiver
) -> None:
    sink = MailSink().start()
    odin, notifier = notifying_odin(
        odin_factory, smtp_host="127.0.0.1", smtp_port=sink.port, smtp_from="odin@acme.example", smtp_starttls=False
    )
    rules = (
        "  - on: [failure]\n    slack: {webhook: env:ODIN_NOTIFY_SLACK}\n"
        f"  - on: [failure]\n    webhook: {{url: '{receiver.url}', secret: env:ODIN_NOTIFY_HOOK}}\n"
        "  - on: [failure]\n    email: {to: [ml-team@acme.example]}\n"
    )
    try:
        sha = push_by(odin, {"train/main.yml": pipeline(FAIL, rules)}, AUTHOR, "Bigger batches\n\nAnd more.")
        run = finished(odin, sha, "failed")
        wait_until(lambda: len(notify_events(odin, run.id)) == 3, 30, message="the three notifications recorded")
    finally:
        notifier.stop()
        sink.stop()
    line = f"commit {sha[:12]} by Ada Lovelace: Bigger batches"
    [hit] = slack.hits
    assert line in hit.body["text"].splitlines()
    [delivery] = receiver.verified()
    assert line in delivery.body["text"].splitlines()
    assert (delivery.body["commit"]["author"], delivery.body["commit"]["author_email"]) == AUTHOR
    [mail] = sink.mails
    assert line in str(mail.message.get_payload()).splitlines()
    assert {kind for kind, _ in notify_events(odin, run.id)} == {"notify.sent"}
