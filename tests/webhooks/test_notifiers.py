"""Commit statuses reach a local stand-in for GitHub, GitLab and Gitea: pending, then the outcome, with a link to the
run; failures are retried with backoff; and a provider that is down or hangs never holds up a run."""

from __future__ import annotations

import gc
import socket
import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from odin.webhooks import notifiers
from odin.webhooks.notifiers.base import CommitStatusNotifier
from tests.support.wait import wait_until
from tests.webhooks.conftest import OdinFactory
from tests.webhooks.fake_receivers import FakeProvider
from tests.webhooks.support import HELLO, Odin, push_via_webhook

FAILING = "name: train\ntasks:\n  - {name: boom, image: busybox, command: [sh, -c, 'exit 3'], retries: 0}\n"
PUBLIC = "https://odin.acme.example"


@pytest.fixture
def provider() -> Iterator[FakeProvider]:
    fake = FakeProvider().start()
    yield fake
    fake.stop()


def notified_odin(factory: OdinFactory, kind: str, api_url: str, **overrides: Any) -> tuple[Odin, CommitStatusNotifier]:
    overrides.setdefault("status_checks", False)  # plain statuses: test_checks.py has the checks and annotations
    odin = factory(
        status_provider=kind,
        status_api_url=api_url,
        status_token="status-token-123",
        status_repo="acme/ml",
        public_url=PUBLIC,
        **overrides,
    )
    notifier = notifiers.from_settings(odin.settings, odin.controller)
    assert notifier is not None
    notifier.backoff = replace(notifier.backoff, initial=0.05)
    notifier.start(odin.controller.bus)
    return odin, notifier


def is_subsequence(items: list[str], of: list[str]) -> bool:
    remaining = iter(of)
    return all(any(item == candidate for candidate in remaining) for item in items)


EXPECTED = {
    "github": (
        "/repos/acme/ml/statuses/{sha}",
        "authorization",
        "Bearer status-token-123",
        ["pending", "pending", "success"],
    ),
    "gitlab": (
        "/projects/acme%2Fml/statuses/{sha}",
        "private-token",
        "status-token-123",
        ["pending", "running", "success"],
    ),
    "gitea": (
        "/repos/acme/ml/statuses/{sha}",
        "authorization",
        "token status-token-123",
        ["pending", "pending", "success"],
    ),
}


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea"])
def test_a_run_posts_pending_then_its_outcome_with_a_link(
    odin_factory: OdinFactory, provider: FakeProvider, kind: str
) -> None:
    odin, notifier = notified_odin(odin_factory, kind, provider.url + "/api")
    try:
        sha = push_via_webhook(odin, {"train/main.yml": HELLO.format(name="train", marker=kind)})
        [run] = wait_until(lambda: odin.runs(sha), 15)
        path, header, value, states = EXPECTED[kind]
        wait_until(lambda: provider.states("odin/train")[-1:] == ["success"], 30, message="final status posted")
        posted = [r for r in provider.received if r.body.get("context", r.body.get("name")) == "odin/train"]
        assert all(r.answered == 201 for r in posted)
        # Queued, running, succeeded, in that order — a state still unsent when a newer one comes is replaced by it.
        assert is_subsequence([r.body["state"] for r in posted], states) and posted[-1].body["state"] == "success"
        assert all(r.path == "/api" + path.format(sha=sha) and r.headers[header] == value for r in posted)
        assert {r.body["target_url"] for r in posted} == {f"{PUBLIC}/console/runs/{run.id}"}
        assert posted[-1].body["description"].startswith(f"run {run.id} succeeded")
        # Statuses of different contexts are posted independently: no order between them is promised.
        wait_until(lambda: provider.states("odin/validation") == ["success"], 30, message="validation status posted")
    finally:
        notifier.stop()


def test_the_validation_status_counts_warnings_apart_from_problems(
    odin_factory: OdinFactory, provider: FakeProvider
) -> None:
    odin, notifier = notified_odin(odin_factory, "github", provider.url)
    elastic = "tasks:\n  - {name: t, image: busybox, command: [echo], resource_type: ElasticJob, depends: ghost}\n"
    try:
        sha = push_via_webhook(odin, {"elastic/main.yml": elastic})
        wait_until(lambda: any(r.path.endswith(sha) for r in provider.received), 30)
        [posted] = [r for r in provider.received if r.path.endswith(sha)]
        assert posted.body["state"] == "failure"
        assert posted.body["description"] == "1 problem in the pipeline files: nothing runs for this commit (1 warning)"
    finally:
        notifier.stop()


def test_a_failed_run_and_an_invalid_commit_are_failures(odin_factory: OdinFactory, provider: FakeProvider) -> None:
    odin, notifier = notified_odin(odin_factory, "github", provider.url)
    try:
        sha = push_via_webhook(odin, {"train/main.yml": FAILING})
        wait_until(lambda: provider.states("odin/train")[-1:] == ["failure"], 30)
        broken = push_via_webhook(odin, {"hello/main.yml": "tasks: [oops\n"})
        wait_until(lambda: any(r.path.endswith(broken) for r in provider.received), 30)
        [invalid] = [r for r in provider.received if r.path.endswith(broken)]
        assert invalid.body["context"] == "odin/validation" and invalid.body["state"] == "failure"
        assert "problem" in invalid.body["description"]
        assert odin.runs(broken) == []
        assert sha != broken
    finally:
        notifier.stop()


def test_5xx_and_429_are_retried_with_backoff_until_they_succeed(
    odin_factory: OdinFactory, provider: FakeProvider
) -> None:
    odin, notifier = notified_odin(odin_factory, "gitea", provider.url)
    try:
        provider.fail_next(500, 502)
        provider.fail_next(429, headers={"Retry-After": "1"})
        sha = push_via_webhook(odin, {"train/main.yml": HELLO.format(name="train", marker="retry")})
        wait_until(lambda: provider.states("odin/train")[-1:] == ["success"], 60)
        received = list(provider.received)
        assert len(received) >= 5, "three failures, then the validation and the run's statuses"
        limited_at = received[2].at  # the 429
        assert all(r.at - limited_at >= 0.95 for r in received[3:]), "nothing is sent before Retry-After has passed"
        assert all(r.path.endswith(sha) for r in received)
        assert provider.states("odin/validation") == ["success"], "the 500 was retried"
        assert [r.answered for r in received[:3]] == [500, 502, 429]
    finally:
        notifier.stop()


def test_a_refusal_is_not_retried(
    odin_factory: OdinFactory, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    odin, notifier = notified_odin(odin_factory, "github", provider.url)
    try:
        provider.fail_next(*([401] * 20))
        sha = push_via_webhook(odin, {"train/main.yml": HELLO.format(name="train", marker="refused")})
        wait_until(lambda: odin.runs(sha) and odin.runs(sha)[0].status == "succeeded", 30)
        final = {"context": "odin/train", "state": "success"}
        wait_until(lambda: any(final.items() <= r.body.items() for r in provider.received), 15, message="final post")
        notifier.stop()
        posts = [(r.body["context"], r.body["state"], r.body["description"]) for r in provider.received]
        assert len(posts) == len(set(posts)), "a refused status is not sent again"
        assert any("refused by github (401)" in r.getMessage() for r in caplog.records)
        assert "status-token-123" not in caplog.text
    finally:
        notifier.stop()


def hanging_server() -> socket.socket:
    """Accepts connections (the kernel does) and never answers."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


@pytest.mark.parametrize("dead", ["refused", "hanging"])
def test_a_dead_provider_never_holds_up_runs(odin_factory: OdinFactory, dead: str) -> None:
    listener = hanging_server()
    port = listener.getsockname()[1]
    if dead == "refused":
        listener.close()
    odin, notifier = notified_odin(odin_factory, "github", f"http://127.0.0.1:{port}")
    notifier.client.close()
    notifier.client = httpx.Client(timeout=2)
    try:
        started = time.monotonic()
        for i in range(3):  # one after the other: pushed together, the `latest` policy would absorb the middle one
            sha = push_via_webhook(odin, {"train/main.yml": HELLO.format(name="train", marker=f"dead{i}")})
            wait_until(lambda sha=sha: odin.runs(sha) and odin.runs(sha)[0].status == "succeeded", 30)
        assert time.monotonic() - started < 20, "every status post to the dead provider times out, runs do not wait"
    finally:
        notifier.stop(timeout=1)
        listener.close()


def test_stopping_while_a_post_hangs_leaves_no_socket_behind(odin_factory: OdinFactory) -> None:
    """`stop` returns on time; the post in flight ends by its own timeout and its connection is closed, not left to
    the garbage collector (an unclosed socket's ResourceWarning, seen as a flaky failure in CI)."""
    listener = hanging_server()
    odin, notifier = notified_odin(odin_factory, "github", f"http://127.0.0.1:{listener.getsockname()[1]}")
    notifier.client.close()
    notifier.client = httpx.Client(timeout=1)
    try:
        push_via_webhook(odin, {"train/main.yml": HELLO.format(name="train", marker="hang")})
        listener.settimeout(30)
        conn, _ = listener.accept()  # the notifier's pending post has connected
        started = time.monotonic()
        notifier.stop(timeout=0.1)
        assert time.monotonic() - started < 1.5, "stop does not wait for a provider that never answers"
        thread = notifier._thread
        assert thread is not None
        wait_until(lambda: not thread.is_alive(), 10, message="the sending thread ends once its post times out")
        assert notifier.client.is_closed
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            gc.collect()
        assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
        conn.close()
    finally:
        notifier.stop(timeout=0.1)
        listener.close()


def test_settings_errors_are_clear(odin_factory: OdinFactory) -> None:
    odin = odin_factory(status_provider="gitea", status_token="t")
    with pytest.raises(notifiers.NotifierConfigError, match="ODIN_STATUS_API_URL"):
        notifiers.from_settings(odin.settings, odin.controller)
    odin.settings.status_token = None
    odin.settings.status_api_url = "https://git.example.com/api/v1"
    with pytest.raises(notifiers.NotifierConfigError, match="ODIN_STATUS_TOKEN"):
        notifiers.from_settings(odin.settings, odin.controller)
