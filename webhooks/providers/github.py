"""GitHub (and GitHub Enterprise Server) webhooks.

Signature: `X-Hub-Signature-256: sha256=<HMAC-SHA256 hex of the raw body>` (the legacy SHA-1 `X-Hub-Signature` is not
accepted). Event: `X-GitHub-Event` (`push`, `ping`; everything else is ignored). Delivery id: `X-GitHub-Delivery`, a
GUID that stays the same when a delivery is redelivered. One `push` delivery per ref; `deleted`/`created`/`forced`
flags say what happened to it.

Pull requests (docs/webhooks.md#pull-requests): `pull_request` with `action` opened, synchronize or reopened runs the
head (`pull_request.head.sha`, fetched from `refs/pull/N/head`); it comes from a fork when `head.repo.full_name` is
not `base.repo.full_name`. `issue_comment` (`created`) on an issue that has a `pull_request` key is a comment on a pull
request: `/retest` there, with the commenter's `author_association` (OWNER, MEMBER, COLLABORATOR are authorised).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from odin.controller.facade import PullRequest
from odin.webhooks.events import Ignored, MalformedPayload, ParsedEvent, Ping, PushEvent, RefUpdate, sha_or_none
from odin.webhooks.providers import pulls
from odin.webhooks.providers.base import (
    BodyCheck,
    Headers,
    HmacSha256Check,
    delivery_id_from,
    exact_hex_signature,
    load_payload,
    obj,
    required_text,
    text,
    urls,
    verify_whole,
)


class GitHub:
    name = "github"
    signature_header = "x-hub-signature-256"
    delivery_headers: tuple[str, ...] = ("x-github-delivery",)

    def signature_present(self, headers: Headers) -> bool:
        return self.signature_header in headers

    def check(self, headers: Headers, secrets: Sequence[bytes]) -> BodyCheck:
        return HmacSha256Check(exact_hex_signature(headers.get(self.signature_header), "sha256="), secrets)

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[bytes]) -> bool:
        return verify_whole(self.check(headers, secrets), body)

    def delivery_id(self, headers: Headers, body: bytes) -> str:
        return delivery_id_from(headers, body, *self.delivery_headers)

    def parse(self, headers: Headers, body: bytes) -> ParsedEvent:
        event = headers.get("x-github-event", "").strip()
        data = load_payload(headers, body)
        repository = obj(data, "repository")
        repo_urls = urls(repository.get("clone_url"), repository.get("ssh_url"), repository.get("html_url"))
        if event == "ping":
            return Ping(event, repo_urls)
        if event == "pull_request":
            pull = pulls.github_like_pull(self.name, obj(data, "pull_request"), "pull_request event")
            runs = ("opened", "synchronize", "reopened")
            return pulls.acted(event, "GitHub", str(data.get("action") or ""), runs, repo_urls, pull)
        if event == "issue_comment":
            return _comment(event, data, repo_urls)
        if event != "push":
            return Ignored(
                event or "(none)", f"GitHub `{event or '(no X-GitHub-Event)'}` events start nothing", repo_urls
            )
        ref = required_text(data, "ref", "push event")
        if not repo_urls:
            raise MalformedPayload("push event: `repository` has no clone_url, ssh_url or html_url")
        forced = data.get("forced")
        update = RefUpdate(
            ref=ref,
            before=sha_or_none(data.get("before")),
            after=None if data.get("deleted") is True else sha_or_none(data.get("after")),
            forced=forced if isinstance(forced, bool) else None,
        )
        return PushEvent(event, repo_urls, (update,))


def _comment(event: str, data: dict[str, Any], repo_urls: tuple[str, ...]) -> ParsedEvent:
    issue, note = obj(data, "issue"), obj(data, "comment")
    if "pull_request" not in issue:
        return Ignored(event, "GitHub comment on an issue (not a pull request) starts nothing", repo_urls)
    if data.get("action") != "created":
        return Ignored(event, f"GitHub comment `{data.get('action')}` starts nothing (only new comments)", repo_urls)
    pull = PullRequest(provider="github", number=pulls.number(issue, "number", "issue_comment event"))
    association = text(note, "author_association")
    commenter = pulls.login(obj(note, "user"), "login")
    return pulls.comment(event, "GitHub", note.get("body"), repo_urls, pull, commenter, association)
