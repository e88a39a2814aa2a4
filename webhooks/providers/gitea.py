"""Gitea and Forgejo webhooks (Gogs-compatible), at one endpoint.

Signature: `X-Forgejo-Signature` or `X-Gitea-Signature`, the hex HMAC-SHA256 of the raw body without a prefix.
Events (`X-Forgejo-Event` / `X-Gitea-Event`): `push` for commits and tags; a deleted branch arrives as a `delete`
event naming the branch. Delivery id: `X-Forgejo-Delivery` / `X-Gitea-Delivery`.
"""

from __future__ import annotations

from collections.abc import Sequence

from odin.webhooks.events import Ignored, MalformedPayload, ParsedEvent, PushEvent, RefUpdate, sha_or_none
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
        if event != "push":
            return Ignored(event, f"Gitea/Forgejo `{event}` events start nothing", repo_urls)
        ref = required_text(data, "ref", "push event")
        if not repo_urls:
            raise MalformedPayload("push event: `repository` has no clone_url, ssh_url or html_url")
        update = RefUpdate(ref=ref, before=sha_or_none(data.get("before")), after=sha_or_none(data.get("after")))
        return PushEvent(event, repo_urls, (update,))
