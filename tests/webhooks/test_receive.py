"""Deliveries over real HTTP to a real Odin following a real repository: every provider's push becomes one run, and
every bad or unwanted delivery gets the answer it should, visible in the log and the metrics."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from odin.controller.store.models import EVENTS, WEBHOOK_DELIVERIES
from tests.support.wait import wait_until
from tests.webhooks.conftest import OdinFactory
from tests.webhooks.support import HELLO, OLD_SECRET, Odin, load, point_at, signature_headers, signed

PUSHES = [
    ("github", "push"),
    ("gitlab", "push"),
    ("gitea", "push"),
    ("gitea", "forgejo_push"),
    ("bitbucket", "cloud_push"),
    ("bitbucket", "server_refs_changed"),
    ("generic", "push"),
]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def push_change(odin: Odin, marker: str) -> str:
    return odin.remote.commit({"train/main.yml": HELLO.format(name="train", marker=marker)}, f"Change {marker}")


def send(
    odin: Odin, provider: str, name: str, *, after: str | None, before: str | None = None, secret: str | None = None
) -> httpx.Response:
    delivery = point_at(provider, load(provider, name), after=after, before=before)
    raw, headers = signed(provider, delivery, *([secret] if secret else []))
    if name.startswith("forgejo"):
        headers = {k: v for k, v in headers.items() if k not in ("X-Gitea-Signature", "X-Hub-Signature-256")}
        headers["X-Forgejo-Signature"] = signature_headers("gitea", raw, secret or "whsec-test-0123456789abcdef")[
            "X-Gitea-Signature"
        ]
    return odin.post(provider, raw, headers)


@pytest.mark.parametrize(("provider", "name"), PUSHES)
def test_a_push_becomes_one_run_of_the_changed_pipeline(odin: Odin, provider: str, name: str) -> None:
    before = odin.remote.head
    sha = push_change(odin, provider)
    accepted = metric("odin_webhook_deliveries_total", provider=provider, outcome="accepted")
    res = send(odin, provider, name, after=sha, before=before)
    assert res.status_code == 202, res.text
    assert res.json()["status"] == "accepted" and res.json()["commit"] == sha
    [run] = wait_until(lambda: odin.runs(sha), 15, message="the run of the pushed commit")
    assert (run.pipeline, run.trigger) == ("train", "webhook")
    assert run.triggered_by.startswith(f"{provider}:")
    [row] = wait_until(lambda: odin.deliveries(WEBHOOK_DELIVERIES.c.sha_verified.is_(True)), 15)
    assert (row.provider, row.outcome, row.ref, row.sha) == (provider, "accepted", "refs/heads/main", sha)
    assert metric("odin_webhook_deliveries_total", provider=provider, outcome="accepted") == accepted + 1
    wait_until(lambda: odin.runs(sha)[0].status == "succeeded", 30)


def test_the_previous_secret_works_during_a_rotation(odin_factory: OdinFactory) -> None:
    odin = odin_factory(webhook_secret_previous=OLD_SECRET)
    sha = push_change(odin, "rotated")
    assert send(odin, "github", "push", after=sha, secret=OLD_SECRET).status_code == 202
    assert send(odin, "gitlab", "push", after=sha, secret="some-other-secret").status_code == 401


def test_secret_references_are_re_read_so_rotation_needs_no_restart(odin_factory: OdinFactory, tmp_path: Any) -> None:
    secret_file = tmp_path / "webhook-secret"
    secret_file.write_text("first-secret\n")
    odin = odin_factory(webhook_secret=f"file:{secret_file}")
    sha = push_change(odin, "file-secret")
    assert send(odin, "github", "push", after=sha, secret="first-secret").status_code == 202
    secret_file.write_text("second-secret\n")  # rotated in place, as a mounted Kubernetes secret is; no restart
    wait_until(lambda: send(odin, "gitea", "push", after=sha, secret="second-secret").status_code in (202, 200), 10)
    assert send(odin, "gitlab", "push", after=sha, secret="first-secret").status_code == 401


def test_wrong_and_missing_signatures_are_refused_alike(odin: Odin, caplog: pytest.LogCaptureFixture) -> None:
    sha = push_change(odin, "unsigned")
    before = metric("odin_webhook_rejections_total", provider="github", reason="bad_signature")
    wrong = send(odin, "github", "push", after=sha, secret="guessed")
    delivery = point_at("github", load("github", "push"), after=sha)
    raw = json.dumps(delivery.body).encode()
    missing = odin.post("github", raw, delivery.headers)
    assert wrong.status_code == missing.status_code == 401
    assert wrong.json() == missing.json() == {"status": "rejected", "detail": "signature missing or invalid"}
    assert metric("odin_webhook_rejections_total", provider="github", reason="bad_signature") == before + 1
    assert odin.deliveries() == [], "unauthenticated requests are never written to the database"
    assert odin.runs(sha) == []
    logged = [r.getMessage() for r in caplog.records if r.name == "odin.webhooks"]
    assert any("d9a5b0a0" in m and "bad_signature" in m and "127.0.0.1" in m for m in logged)
    assert not any("sha256=" in m or "whsec" in m for m in logged), "never the signature or the secret"


def test_a_delivery_signed_for_one_repository_cannot_name_another(odin: Odin) -> None:
    # The generic endpoint lets the test name any URL: a followed repository's secret signing an unknown repository.
    body = json.dumps({"repo": "https://github.com/acme/secret-project", "ref": "main"}).encode()
    headers = signature_headers("generic", body, "whsec-test-0123456789abcdef")
    res = odin.post("generic", body, headers)
    assert res.status_code == 404
    text = res.text
    assert "default" not in text and odin.remote.url not in text and "acme/ml" not in text, "no repository is revealed"
    unsigned = odin.post("generic", body, {})
    assert unsigned.status_code == 401, "without a valid signature, nothing says whether the repository exists"


@pytest.mark.parametrize(
    ("provider", "name", "expected"),
    [
        ("github", "ping", "pong"),
        ("bitbucket", "server_ping", "pong"),
        ("github", "pull_request", "pull requests do not run"),
        ("gitlab", "merge_request", "pull requests do not run"),
        ("github", "tag_push", "no tag pattern"),
        ("gitlab", "tag_push", "no tag pattern"),
        ("gitea", "tag_push", "no tag pattern"),
        ("github", "other_branch", "feature/bigger-model is not followed"),
        ("github", "branch_delete", "was deleted"),
        ("gitlab", "branch_delete", "was deleted"),
        ("gitea", "branch_delete", "was deleted"),
        ("bitbucket", "cloud_branch_delete", "was deleted"),
    ],
)
def test_authenticated_events_odin_does_not_act_on_get_a_2xx_saying_why(
    odin: Odin, provider: str, name: str, expected: str
) -> None:
    syncs = odin.syncs()
    res = send(odin, provider, name, after=None if "delete" in name else odin.remote.head)
    assert res.status_code == 200, res.text
    assert res.json()["status"] == "ignored" and expected in res.json()["detail"]
    [row] = odin.deliveries()
    assert row.outcome == "ignored" and expected in row.reason
    if "deleted" not in expected:
        assert odin.syncs() == syncs, "nothing to sync for"
    assert odin.runs() == []


@pytest.mark.parametrize("provider", ["github", "gitlab", "gitea"])
def test_a_tag_push_a_tag_pattern_matches_requests_a_sync(odin: Odin, provider: str) -> None:
    """The sync lists the remote's tags and starts the new tag's runs (controller/tags.py; tests/api/test_repos.py
    runs one end to end): the receiver's part is to accept the push and ask for it."""
    odin.controller.repo().tag_patterns = ("v1.*",)  # as a registration with `tags: ['v1.*']` builds it
    syncs = odin.syncs()
    res = send(odin, provider, "tag_push", after=odin.remote.head)
    assert res.status_code == 202, res.text
    assert res.json()["status"] == "accepted" and res.json()["ref"] == "refs/tags/v1.2.0"
    wait_until(lambda: odin.syncs() > syncs, 15, message="the sync the tag push asked for")
    [row] = odin.deliveries()
    assert row.outcome == "accepted"


def test_a_push_of_a_tag_and_the_branch_together_runs_the_branch(odin: Odin) -> None:
    sha = push_change(odin, "both")
    res = send(odin, "bitbucket", "cloud_push_tag_and_branch", after=sha)
    assert res.status_code == 202 and res.json()["ref"] == "refs/heads/main"
    wait_until(lambda: odin.runs(sha), 15)


def test_a_commit_the_remote_does_not_have_is_rejected_after_the_sync(
    odin: Odin, caplog: pytest.LogCaptureFixture
) -> None:
    forged = "c0ffee" + "0" * 34
    before = metric("odin_webhook_rejections_total", provider="gitlab", reason="sha_not_found")
    res = send(odin, "gitlab", "push", after=forged)
    assert res.status_code == 202, "the claim is only checked against the remote after the sync"
    [row] = wait_until(lambda: odin.deliveries(WEBHOOK_DELIVERIES.c.sha_verified.is_not(None)), 15)
    assert (row.outcome, row.sha_verified) == ("rejected", False)
    assert "not found on the remote" in row.reason
    [event] = odin.rows(EVENTS, EVENTS.c.kind == "webhook.rejected")
    assert event.commit_sha == forged and event.data["provider"] == "gitlab"
    assert metric("odin_webhook_rejections_total", provider="gitlab", reason="sha_not_found") == before + 1
    assert odin.runs() == []
    assert any("not found on the remote" in r.getMessage() for r in caplog.records)


def test_a_redelivery_is_a_duplicate_and_runs_nothing_twice(odin: Odin) -> None:
    sha = push_change(odin, "redelivered")
    first = send(odin, "github", "push", after=sha)
    assert first.status_code == 202
    wait_until(lambda: odin.runs(sha), 15)
    again = send(odin, "github", "push", after=sha)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    other_id = point_at("github", load("github", "push"), after=sha)
    other_id.headers["X-GitHub-Delivery"] = "another-delivery-of-the-same-commit"
    raw, headers = signed("github", other_id)
    assert odin.post("github", raw, headers).status_code == 202
    wait_until(lambda: len(odin.deliveries(WEBHOOK_DELIVERIES.c.sha_verified.is_(True))) == 2, 15)
    assert len(odin.runs(sha)) == 1, "one run per (repository, commit, pipeline)"


def test_malformed_json_is_400_and_recorded_nowhere(odin: Odin) -> None:
    for raw in (b"{not json", b"[" * 50_000, b'{"ref": 7, "repository": {}}'):
        headers = {"X-GitHub-Event": "push", "Content-Type": "application/json"}
        headers.update(signature_headers("github", raw, "whsec-test-0123456789abcdef"))
        res = odin.post("github", raw, headers)
        assert res.status_code == 400, res.text
        assert res.json()["status"] == "rejected"
    assert odin.deliveries() == []


def test_bodies_over_the_cap_are_413_before_being_read(odin_factory: OdinFactory) -> None:
    odin = odin_factory(webhook_max_body=64 * 1024)
    big = b'{"pad": "' + b"x" * (64 * 1024) + b'"}'
    headers = {"X-GitHub-Event": "push", "Content-Type": "application/json"}
    headers.update(signature_headers("github", big, "whsec-test-0123456789abcdef"))
    declared = odin.post("github", big, headers)
    assert declared.status_code == 413 and declared.json()["status"] == "rejected"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap applies while streaming
        for _ in range(20):
            yield b"x" * 8192

    # A well-formed signature (wrong, but only the whole body can tell), so the body is streamed and not refused by
    # its headers alone.
    wrong = {"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=" + "0" * 64}
    streamed = odin.http.post("/webhooks/github", content=chunks(), headers=wrong)
    assert streamed.status_code == 413
    assert metric("odin_webhook_rejections_total", provider="github", reason="too_large") >= 2


def test_the_default_cap_follows_githubs_25_mb_ceiling(odin: Odin) -> None:
    assert odin.settings.webhook_max_body == 25 * 1024 * 1024
    # A declared length just over the cap is refused without sending the body.
    with socket.create_connection(("127.0.0.1", odin.settings.port)) as s:
        s.sendall(
            b"POST /webhooks/gitlab HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {25 * 1024 * 1024 + 1}\r\n\r\n".encode()
        )
        answer = s.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")


def test_with_no_secret_configured_every_delivery_is_refused(
    odin_factory: OdinFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "odin.webhooks")
    odin = odin_factory(webhook_secret=None)
    for secret in ("whsec-test-0123456789abcdef", ""):
        res = send(odin, "github", "push", after=odin.remote.head, secret=secret or None)
        assert res.status_code == 401
        assert "no webhook secret is configured" in res.json()["detail"]
    assert (
        sum("no webhook secret is configured (set ODIN_WEBHOOK_SECRET)" in r.getMessage() for r in caplog.records) == 1
    )


def test_unknown_endpoints_and_methods(odin: Odin) -> None:
    assert odin.http.post("/webhooks/svn", content=b"{}").status_code == 404
    assert odin.http.get("/webhooks/github").status_code == 405


def test_generic_run_request_starts_the_pipeline_once_per_id(odin: Odin) -> None:
    sha = odin.remote.commit(
        {
            "train/main.yml": "params:\n  lr: {type: number, default: 0.1}\n  full: {type: boolean, default: false}\n"
            "tasks:\n  - {name: fit, image: busybox, command: [sh, -c, 'echo ${params.lr} ${params.full}']}\n"
        }
    )
    delivery = point_at("generic", load("generic", "run"), after=sha)
    raw, headers = signed("generic", delivery)
    started = odin.post("generic", raw, headers)
    assert started.status_code == 201, started.text
    run_id = started.json()["run_id"]
    [run] = odin.runs(sha)
    assert (run.id, run.pipeline, run.trigger, run.params) == (run_id, "train", "api", {"lr": "0.01", "full": "true"})
    assert run.triggered_by == "generic:id:gitlab-ci-job-8812"
    again = odin.post("generic", raw, headers)
    assert again.status_code == 200 and again.json() == {**again.json(), "status": "duplicate", "run_id": run_id}
    assert len(odin.runs(sha)) == 1
    wait_until(lambda: odin.runs(sha)[0].status == "succeeded", 30)


def test_generic_run_requests_with_params_and_their_rejections(odin: Odin) -> None:
    sha = odin.remote.commit(
        {
            "sweep/main.yml": "params:\n  lr: {type: number, default: 0.1}\ntasks:\n"
            "  - {name: fit, image: busybox, command: [sh, -c, 'echo ${params.lr}']}\n"
        }
    )
    cases = [
        ({"pipeline": "sweep", "params": {"lr": 0.5}, "id": "p-1"}, 201, None),
        ({"pipeline": "nope", "id": "p-2"}, 404, "no pipeline"),
        ({"pipeline": "sweep", "params": {"lr": "fast"}, "id": "p-3"}, 422, "lr"),
        ({"pipeline": "sweep", "sha": "d" * 40, "id": "p-4"}, 422, "not on main or a tag"),
        ({"pipeline": "sweep"}, 400, "needs an `id`"),
    ]
    for extra, status, words in cases:
        body = {"repo": "https://github.com/acme/ml", "sha": sha, **extra}
        raw = json.dumps(body).encode()
        res = odin.post("generic", raw, signature_headers("generic", raw, "whsec-test-0123456789abcdef"))
        assert res.status_code == status, (extra, res.text)
        if words:
            assert words in res.json()["detail"]
    [run] = odin.runs(sha)
    assert run.params == {"lr": "0.5"}
    rejected = {r.delivery_id: r for r in odin.deliveries(WEBHOOK_DELIVERIES.c.outcome == "rejected")}
    assert set(rejected) == {"id:p-2", "id:p-3", "id:p-4"}
