"""Gitea and Forgejo webhooks (Gogs-compatible), at one endpoint.

Signature: `X-Forgejo-Signature` or `X-Gitea-Signature`, the hex HMAC-SHA256 of the raw body without a prefix.
Events (`X-Forgejo-Event` / `X-Gitea-Event`): `push` for commits and tags; a deleted branch arrives as a `delete`
event naming the branch. Delivery id: `X-Forgejo-Delivery` / `X-Gitea-Delivery`.

Pull requests (docs/webhooks.md#pull-requests): `pull_request` (newer releases name a new commit's event
`pull_request_sync`) with `action` opened, synchronized or reopened runs `pull_request.head.sha`, fetched from
`refs/pull/N/head`; a fork when `head.repo.full_name` is not `base.repo.full_name`. `issue_comment` (or
`pull_request_comment`) `created` with `is_pull: true` is a comment on one: `/retest` there is obeyed for the
repository's `pr_approvers` only.
"""

from __future__ import annotations

from collections.abc import Sequence

from odin.controller.facade import PullRequest
from odin.webhooks.events import Ignored, MalformedPayload, ParsedEvent, PushEvent, RefUpdate, sha_or_none
from odin.webhooks.providers import pulls
from odin.webhooks.providers.base import (
    BodyCheck,
    Headers,
    HmacSha256Check,
    delivery_id_from,
    exact_hex_signature,
    first_header,
    load_payload,
    obj,
    required_text,
    text,
    urls,
    verify_whole,
)

_SIGNATURES = ("x-forgejo-signature", "x-gitea-signature", "x-gogs-signature")
_EVENTS = ("x-forgejo-event", "x-gitea-event", "x-gogs-event")
_DELIVERIES = ("x-forgejo-delivery", "x-gitea-delivery", "x-gogs-delivery")


class Gitea:
    name = "gitea"
    delivery_headers: tuple[str, ...] = _DELIVERIES

    def signature_present(self, headers: Headers) -> bool:
        return first_header(headers, _SIGNATURES) is not None

    def check(self, headers: Headers, secrets: Sequence[bytes]) -> BodyCheck:
        return HmacSha256Check(exact_hex_signature(first_header(headers, _SIGNATURES)), secrets)

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[bytes]) -> bool:
        return verify_whole(self.check(headers, secrets), body)

    def delivery_id(self, headers: Headers, body: bytes) -> str:
        return delivery_id_from(headers, body, *self.delivery_headers)

    def parse(self, headers: Headers, body: bytes) -> ParsedEvent:
        event = (first_header(headers, _EVENTS) or "").strip() or "(none)"
        data = load_payload(headers, body)
        repository = obj(data, "repository")
        repo_urls = urls(repository.get("clone_url"), repository.get("ssh_url"), repository.get("html_url"))
        if event == "delete" and text(data, "ref_type") == "branch":
            branch = required_text(data, "ref", "delete event")
            return PushEvent(event, repo_urls, (RefUpdate(ref=f"refs/heads/{branch}", before=None, after=None),))
        if event in ("pull_request", "pull_request_sync"):
            pull = pulls.github_like_pull(self.name, obj(data, "pull_request"), "pull_request event")
            runs = ("opened", "synchronized", "reopened")
            return pulls.acted(event, "Gitea/Forgejo", str(data.get("action") or ""), runs, repo_urls, pull)
        if event in ("issue_comment", "pull_request_comment"):
            issue, note = obj(data, "issue"), obj(data, "comment")
            if data.get("is_pull") is not True and not issue.get("pull_request"):
                return Ignored(event, "Gitea/Forgejo comment on an issue (not a pull request) starts nothing",
                               repo_urls)  # fmt: skip
            if data.get("action") != "created":
                return Ignored(event, f"Gitea/Forgejo comment `{data.get('action')}` starts nothing", repo_urls)
            pull = PullRequest(provider=self.name, number=pulls.number(issue, "number", f"{event} event"))
            commenter = pulls.login(obj(note, "user"), "login", "username")
            return pulls.comment(event, "Gitea/Forgejo", note.get("body"), repo_urls, pull, commenter)
        if event != "push":
            return Ignored(event, f"Gitea/Forgejo `{event}` events start nothing", repo_urls)
        ref = required_text(data, "ref", "push event")
        if not repo_urls:
            raise MalformedPayload("push event: `repository` has no clone_url, ssh_url or html_url")
        update = RefUpdate(ref=ref, before=sha_or_none(data.get("before")), after=sha_or_none(data.get("after")))
        return PushEvent(event, repo_urls, (update,))
