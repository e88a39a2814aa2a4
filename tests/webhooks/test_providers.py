"""Each provider's signature check and payload reading, on deliveries recorded from the providers' own formats."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
from typing import Any

import pytest

from odin.controller.facade import PullRequest
from odin.webhooks.events import (
    Ignored,
    MalformedPayload,
    Ping,
    PullRequestComment,
    PullRequestEvent,
    PushEvent,
    RefUpdate,
    RunRequest,
)
from odin.webhooks.providers import PROVIDERS
from odin.webhooks.providers import base as provider_base
from tests.webhooks.support import OLD_SECRET, SECRET, load, signature_headers

SECRETS = (SECRET.encode(), OLD_SECRET.encode())
PUSHES = [
    ("github", "push"),
    ("gitlab", "push"),
    ("gitea", "push"),
    ("gitea", "forgejo_push"),
    ("bitbucket", "cloud_push"),
    ("bitbucket", "server_refs_changed"),
    ("generic", "push"),
]


def lower(headers: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def signed(provider: str, name: str, secret: str = SECRET) -> tuple[dict[str, str], bytes]:
    delivery = load(provider, name)
    raw = json.dumps(delivery.body).encode()
    sig = signature_headers(provider, raw, secret)
    if name.startswith("forgejo"):
        sig = {"X-Forgejo-Signature": sig["X-Gitea-Signature"]}
    return lower({**delivery.headers, **sig}), raw


@pytest.mark.parametrize(("provider", "name"), PUSHES)
def test_a_right_signature_with_either_rotation_secret_verifies(provider: str, name: str) -> None:
    impl = PROVIDERS[provider]
    for secret in (SECRET, OLD_SECRET):
        headers, raw = signed(provider, name, secret)
        assert impl.signature_present(headers)
        assert impl.verify(headers, raw, SECRETS)
        assert impl.verify(headers, raw, [secret.encode()])
    headers, raw = signed(provider, name, OLD_SECRET)
    assert not impl.verify(headers, raw, [SECRET.encode()]), "a rotated-out secret is refused once it is removed"


@pytest.mark.parametrize(("provider", "name"), PUSHES)
def test_a_wrong_or_missing_signature_or_a_changed_body_does_not_verify(provider: str, name: str) -> None:
    impl = PROVIDERS[provider]
    headers, raw = signed(provider, name, "not-the-secret")
    assert not impl.verify(headers, raw, SECRETS)
    headers, raw = signed(provider, name)
    tampered = raw.replace(b'"acme/ml', b'"evil/ml') if b'"acme/ml' in raw else raw + b" "
    if provider != "gitlab":  # GitLab's token does not cover the body: that is GitLab's design, documented
        assert not impl.verify(headers, tampered, SECRETS)
    stripped = {k: v for k, v in headers.items() if "signature" not in k and k != "x-gitlab-token"}
    assert not impl.signature_present(stripped)
    assert not impl.verify(stripped, raw, SECRETS)
    assert not impl.verify(headers, raw, []), "no secret configured: nothing verifies"


def test_every_secret_is_compared_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append(a)
        return real(a, b)

    monkeypatch.setattr(provider_base.hmac, "compare_digest", counting)
    body = b'{"x": 1}'
    good = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert provider_base.hmac_sha256_matches(good, body, [SECRET.encode(), b"b", b"c"], prefix="sha256=")
    assert len(calls) == 3
    calls.clear()
    assert provider_base.token_matches(SECRET, [SECRET.encode(), b"other"])
    assert len(calls) == 2


@pytest.mark.parametrize(("provider", "name"), PUSHES)
def test_a_push_names_the_repository_and_the_branch_it_moved(provider: str, name: str) -> None:
    headers, raw = signed(provider, name)
    event = PROVIDERS[provider].parse(headers, raw)
    assert isinstance(event, PushEvent)
    [update] = event.updates
    assert update.branch == "main" and update.tag is None and not update.deleted
    assert update.after == "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    assert event.repo_urls, "the payload's repository URLs are what matching uses"


@pytest.mark.parametrize(
    ("provider", "name", "delivery"),
    [
        ("github", "push", "d9a5b0a0-12c1-11ef-8f0e-3e1a2b4c5d6e"),
        ("gitlab", "push", "f5e5f430-f57b-4e6e-9fac-d9128cd7232f"),  # Idempotency-Key wins over the event UUID
        ("gitea", "push", "f6266f16-1bf3-46a5-9ea4-602e06ead473"),
        ("gitea", "forgejo_push", "3b5f7e2a-9c1d-4e8f-a6b2-c4d0e8f1a3b5"),
        ("bitbucket", "cloud_push", "{c3b2a1f0-e9d8-4c7b-a6f5-e4d3c2b1a0f9}"),
        ("bitbucket", "server_refs_changed", "2c0f0f5c-7a3e-4b8d-9e1f-3a4b5c6d7e8f"),
        ("generic", "push", "jenkins-ml-build-1187"),
        ("generic", "run", "id:gitlab-ci-job-8812"),
    ],
)
def test_the_delivery_id_is_the_providers_own(provider: str, name: str, delivery: str) -> None:
    headers, raw = signed(provider, name)
    assert PROVIDERS[provider].delivery_id(headers, raw) == delivery


def test_without_a_delivery_header_the_id_is_a_digest_of_the_body() -> None:
    headers, raw = signed("gitlab", "push")
    bare = {k: v for k, v in headers.items() if k not in ("idempotency-key", "x-gitlab-event-uuid")}
    first = PROVIDERS["gitlab"].delivery_id(bare, raw)
    assert first.startswith("sha256:") and first == PROVIDERS["gitlab"].delivery_id(bare, raw)
    assert first != PROVIDERS["gitlab"].delivery_id(bare, raw + b" ")


@pytest.mark.parametrize(
    ("provider", "name", "ref"),
    [
        ("github", "tag_push", "refs/tags/v1.2.0"),
        ("gitlab", "tag_push", "refs/tags/v1.2.0"),
        ("gitea", "tag_push", "refs/tags/v1.2.0"),
    ],
)
def test_tag_pushes_are_pushes_of_a_tag(provider: str, name: str, ref: str) -> None:
    headers, raw = signed(provider, name)
    event = PROVIDERS[provider].parse(headers, raw)
    assert isinstance(event, PushEvent)
    [update] = event.updates
    assert (update.ref, update.tag, update.branch, update.created) == (ref, "v1.2.0", None, True)


@pytest.mark.parametrize(
    ("provider", "name"),
    [
        ("github", "branch_delete"),
        ("gitlab", "branch_delete"),
        ("gitea", "branch_delete"),
        ("bitbucket", "cloud_branch_delete"),
    ],
)
def test_branch_deletions_have_no_after(provider: str, name: str) -> None:
    headers, raw = signed(provider, name)
    event = PROVIDERS[provider].parse(headers, raw)
    assert isinstance(event, PushEvent)
    [update] = event.updates
    assert update.branch == "main" and update.deleted and update.after is None


def test_bitbucket_server_deletion_and_a_push_of_several_refs() -> None:
    headers, raw = signed("bitbucket", "cloud_push_tag_and_branch")
    event = PROVIDERS["bitbucket"].parse(headers, raw)
    assert isinstance(event, PushEvent)
    assert [(u.ref, u.created) for u in event.updates] == [("refs/tags/v1.2.0", True), ("refs/heads/main", False)]
    delivery = load("bitbucket", "server_refs_changed")
    delivery.body["changes"][0].update(type="DELETE", toHash="0" * 40)
    raw = json.dumps(delivery.body).encode()
    event = PROVIDERS["bitbucket"].parse(lower(delivery.headers), raw)
    assert isinstance(event, PushEvent) and event.updates[0].deleted


@pytest.mark.parametrize(
    ("provider", "name", "kind"),
    [
        ("github", "ping", Ping),
        ("bitbucket", "server_ping", Ping),
        ("github", "pull_request", PullRequestEvent),
        ("gitlab", "merge_request", PullRequestEvent),
        ("github", "issue_comment", PullRequestComment),
        ("gitlab", "note", PullRequestComment),
        ("gitea", "pull_request", PullRequestEvent),
        ("gitea", "issue_comment", PullRequestComment),
        ("bitbucket", "pullrequest_created", PullRequestEvent),
        ("bitbucket", "pullrequest_comment_created", PullRequestComment),
        ("bitbucket", "server_pr_opened", PullRequestEvent),
    ],
)
def test_pings_and_other_events_are_recognised(provider: str, name: str, kind: type) -> None:
    headers, raw = signed(provider, name)
    event = PROVIDERS[provider].parse(headers, raw)
    assert isinstance(event, kind)


def test_github_form_encoded_deliveries_are_read_too() -> None:
    delivery = load("github", "push")
    from urllib.parse import urlencode

    raw = urlencode({"payload": json.dumps(delivery.body)}).encode()
    headers = lower({**delivery.headers, "Content-Type": "application/x-www-form-urlencoded"})
    event = PROVIDERS["github"].parse(headers, raw)
    assert isinstance(event, PushEvent) and event.updates[0].branch == "main"


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"[1, 2]", b'"text"', b"{" * 10, b"[" * 100_000, b"\xff\xfe\x00garbage", b'{"ref": 5}'],
)
@pytest.mark.parametrize("provider", ["github", "gitlab", "gitea", "bitbucket", "generic"])
def test_malformed_bodies_are_malformed_payloads_never_crashes(provider: str, raw: bytes) -> None:
    event_headers = {
        "github": {"x-github-event": "push"},
        "gitlab": {"x-gitlab-event": "Push Hook"},
        "gitea": {"x-gitea-event": "push"},
        "bitbucket": {"x-event-key": "repo:push"},
        "generic": {},
    }[provider]
    try:
        event = PROVIDERS[provider].parse(event_headers, raw)
    except MalformedPayload:
        return
    assert isinstance(event, Ignored), f"{raw[:20]!r} gave {event!r}"


def test_generic_run_requests_need_an_id_and_valid_fields() -> None:
    generic = PROVIDERS["generic"]
    headers, raw = signed("generic", "run")
    event = generic.parse(headers, raw)
    assert isinstance(event, RunRequest)
    assert (event.pipeline, event.sha, dict(event.params)) == (
        "train",
        "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        {"lr": "0.01", "full": "true"},
    )
    body = load("generic", "run").body
    for change, message in [
        ({"id": None}, "needs an `id`"),
        ({"sha": "abc"}, "full commit SHA"),
        ({"params": {"x": [1]}}, "parameter `x`"),
        ({"repo": None}, "`repo`"),
        ({"pipeline": ""}, "`pipeline`"),
    ]:
        bad = {k: v for k, v in {**body, **change}.items() if v is not None}
        with pytest.raises(MalformedPayload, match=re.escape(message)):
            generic.parse({}, json.dumps(bad).encode())
    with pytest.raises(MalformedPayload, match=r"needs `ref`"):
        generic.parse({}, json.dumps({"repo": "x", "sha": "1" * 40}).encode())


def test_ref_updates_know_branches_from_tags() -> None:
    assert RefUpdate("refs/heads/release/1", None, "a" * 40).branch == "release/1"
    assert RefUpdate("refs/tags/v1", "a" * 40, None).deleted


HEAD = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"


@pytest.mark.parametrize(
    ("provider", "name", "expected"),
    [
        ("github", "pull_request", PullRequest("github", 42, HEAD, "feature/bigger-model", "acme/ml",
                                               "https://github.com/acme/ml.git", "main", False, "octocat")),
        ("github", "pull_request_fork", PullRequest("github", 43, HEAD, "patch-1", "mallory/ml",
                                                    "https://github.com/mallory/ml.git", "main", True, "mallory")),
        ("gitlab", "merge_request", PullRequest("gitlab", 7, HEAD, "feature/bigger-model", "acme/ml",
                                                "https://gitlab.example.com/acme/ml.git", "main", False, "jmon")),
        ("gitea", "pull_request", PullRequest("gitea", 12, HEAD, "feature/bigger-model", "acme/ml",
                                              "https://gitea.example.com/acme/ml.git", "main", False, "octo")),
        ("bitbucket", "pullrequest_created", PullRequest("bitbucket", 5, HEAD[:12], "feature/bigger-model",
                                                         "mallory/ml", "https://bitbucket.org/mallory/ml", "main", True,
                                                         "mallory")),
        ("bitbucket", "server_pr_opened", PullRequest("bitbucket", 7, HEAD, "feature/bigger-model", "~MALLORY/ml",
                                                      "https://bitbucket.example.com/scm/~mallory/ml.git", "main",
                                                      True, "mallory")),
    ],
)  # fmt: skip
def test_pull_request_events_normalise_to_one_shape(provider: str, name: str, expected: PullRequest) -> None:
    headers, raw = signed(provider, name)
    event = PROVIDERS[provider].parse(headers, raw)
    assert isinstance(event, PullRequestEvent), event
    assert event.pull == expected
    assert event.repo_urls, "the base repository, which Odin matches"


@pytest.mark.parametrize(
    ("provider", "name", "commenter", "pipeline", "number"),
    [
        ("github", "issue_comment", "octocat", None, 42),
        ("gitlab", "note", "maintainer", None, 7),
        ("gitea", "issue_comment", "maintainer", "train", 12),
        ("bitbucket", "pullrequest_comment_created", "alex", None, 5),
    ],
)
def test_retest_comments_name_the_commenter_and_the_pipeline(
    provider: str, name: str, commenter: str, pipeline: str | None, number: int
) -> None:
    headers, raw = signed(provider, name)
    event = PROVIDERS[provider].parse(headers, raw)
    assert isinstance(event, PullRequestComment), event
    assert (event.commenter, event.pipeline, event.pull.number) == (commenter, pipeline, number)
    assert event.association == ("MEMBER" if provider == "github" else None)


@pytest.mark.parametrize(
    ("provider", "name", "change", "expected"),
    [
        ("github", "pull_request", {"action": "closed"}, "action `closed` starts nothing"),
        ("github", "pull_request", {"action": "labeled"}, "only opened, synchronize, reopened run the head"),
        ("gitea", "pull_request", {"action": "edited"}, "action `edited` starts nothing"),
        ("github", "issue_comment", {"action": "edited"}, "only new comments"),
        ("github", "issue_comment", {"comment.body": "LGTM, thanks"}, "without `/retest`"),
        ("github", "issue_comment", {"comment.body": "please /retest"}, "without `/retest`"),
        ("gitlab", "merge_request", {"object_attributes.oldrev": None}, "without new commits"),
        ("gitlab", "merge_request", {"object_attributes.action": "merge"}, "action `merge` starts nothing"),
        ("gitlab", "note", {"object_attributes.noteable_type": "Issue"}, "note on a Issue"),
        ("gitea", "issue_comment", {"is_pull": False, "issue.pull_request": None}, "not a pull request"),
    ],
)
def test_pull_request_actions_that_run_nothing_are_ignored_saying_why(
    provider: str, name: str, change: dict[str, Any], expected: str
) -> None:
    delivery = load(provider, name)
    for path, value in change.items():
        *parents, key = path.split(".")
        target = delivery.body
        for part in parents:
            target = target[part]
        target[key] = value
    raw = json.dumps(delivery.body).encode()
    event = PROVIDERS[provider].parse(lower(delivery.headers), raw)
    assert isinstance(event, Ignored) and expected in event.reason, event


@pytest.mark.parametrize(
    ("provider", "name", "path", "value", "expected"),
    [
        ("github", "pull_request", "pull_request.number", "42", "`number` must be the pull request's number"),
        ("github", "pull_request", "pull_request.head.sha", "main", "the head commit must be a commit id"),
        ("gitlab", "merge_request", "object_attributes.iid", -1, "`iid` must be"),
        ("bitbucket", "pullrequest_created", "pullrequest.source.commit.hash", "abc", "must be a commit id"),
        ("bitbucket", "server_pr_opened", "pullRequest.fromRef.latestCommit", "abc", "must be a commit id"),
        ("bitbucket", "server_pr_opened", "pullRequest.id", "7", "`id` must be the pull request's number"),
        ("bitbucket", "server_pr_opened", "pullRequest.toRef.repository", {"slug": "ml"}, "has no clone or self URL"),
        ("github", "issue_comment", "issue.number", None, "`number` must be"),
    ],
)
def test_malformed_pull_requests_are_malformed_payloads(
    provider: str, name: str, path: str, value: Any, expected: str
) -> None:
    delivery = load(provider, name)
    *parents, key = path.split(".")
    target = delivery.body
    for part in parents:
        target = target[part]
    target[key] = value
    with pytest.raises(MalformedPayload, match=re.escape(expected)):
        PROVIDERS[provider].parse(lower(delivery.headers), json.dumps(delivery.body).encode())


def server_pull(event: str, **body: Any) -> Any:
    """A Bitbucket Server pull request delivery of `event`, from the repository itself, parsed."""
    delivery = load("bitbucket", "server_pr_opened")
    delivery.headers["X-Event-Key"] = event
    delivery.body["eventKey"] = event
    pull = delivery.body["pullRequest"]
    pull["fromRef"]["repository"] = copy.deepcopy(pull["toRef"]["repository"])
    delivery.body.update(body)
    return PROVIDERS["bitbucket"].parse(lower(delivery.headers), json.dumps(delivery.body).encode())


def test_bitbucket_server_pull_requests_run_on_a_new_source_or_target_and_nothing_else() -> None:
    """`pr:from_ref_updated` runs the new head; `pr:modified` only when the target branch changed; a pull request
    from a branch of the repository itself is not a fork's."""
    moved = server_pull("pr:from_ref_updated", previousFromHash="6113728f27ae82c7b1a177c8d03f9e96e0adf246")
    assert isinstance(moved, PullRequestEvent) and moved.action == "from_ref_updated"
    assert (moved.pull.fork, moved.pull.head_repo, moved.pull.head_sha) == (False, "ACME/ml", HEAD)
    assert "ssh://git@bitbucket.example.com:7999/acme/ml.git" in moved.repo_urls
    retargeted = server_pull(
        "pr:modified", previousTarget={"id": "refs/heads/develop", "displayId": "develop", "type": "BRANCH"}
    )
    assert isinstance(retargeted, PullRequestEvent) and retargeted.pull.base_branch == "main"
    renamed = server_pull(
        "pr:modified", previousTitle="Old title", previousTarget={"id": "refs/heads/main", "displayId": "main"}
    )
    assert isinstance(renamed, Ignored) and "without a new target branch" in renamed.reason
    for other in ("pr:merged", "pr:declined", "pr:reviewer:approved"):
        assert isinstance(server_pull(other), Ignored)
