"""Bitbucket Cloud and Bitbucket Server / Data Center webhooks, at one endpoint.

Both sign with `X-Hub-Signature: sha256=<HMAC-SHA256 hex of the raw body>` and name the event in `X-Event-Key`:

- Cloud: `repo:push`, with `push.changes[]` (`new`/`old` refs, null when created/deleted, and a `forced` flag);
  the repository is known by its web URL (`repository.links.html.href`). Delivery id: `X-Request-UUID`.
- Server / Data Center: `repo:refs_changed`, with `changes[]` (`refId`, `fromHash`, `toHash`, `type` ADD, UPDATE or
  DELETE) and clone URLs in `repository.links.clone`. Delivery id: `X-Request-Id`. "Test connection" sends
  `diagnostics:ping`.

One push may move several refs; each becomes a `RefUpdate`.

Pull requests, Bitbucket Cloud (docs/webhooks.md#pull-requests): `pullrequest:created` and `pullrequest:updated` run
`pullrequest.source.commit.hash` (12 hex digits: the fetched branch's tip must start with them). Bitbucket keeps no
pull request refs, so the head is `source.branch.name`, fetched from the repository itself or, for a fork (its
`source.repository.full_name` is not `destination.repository.full_name`), from the fork's URL
(`source.repository.links.html.href`), on the same host only. `pullrequest:comment_created` with `/retest` in
`comment.content.raw` is obeyed for the repository's `pr_approvers` (`actor.nickname`) only.
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
    text,
    urls,
    verify_whole,
)

_REF_PREFIX = {"branch": "refs/heads/", "tag": "refs/tags/", "named_branch": "refs/heads/"}


class Bitbucket:
    name = "bitbucket"
    signature_header = "x-hub-signature"
    delivery_headers: tuple[str, ...] = ("x-request-uuid", "x-request-id")

    def signature_present(self, headers: Headers) -> bool:
        return self.signature_header in headers

    def check(self, headers: Headers, secrets: Sequence[bytes]) -> BodyCheck:
        return HmacSha256Check(exact_hex_signature(headers.get(self.signature_header), "sha256="), secrets)

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[bytes]) -> bool:
        return verify_whole(self.check(headers, secrets), body)

    def delivery_id(self, headers: Headers, body: bytes) -> str:
        return delivery_id_from(headers, body, *self.delivery_headers)

    def parse(self, headers: Headers, body: bytes) -> ParsedEvent:
        event = headers.get("x-event-key", "").strip() or "(none)"
        data = load_payload(headers, body)
        repository = obj(data, "repository")
        links = obj(repository, "links")
        clone = links.get("clone")
        clone_urls = [c.get("href") for c in clone if isinstance(c, dict)] if isinstance(clone, list) else []
        repo_urls = urls(*clone_urls, obj(links, "html").get("href"))
        if event == "diagnostics:ping":
            return Ping(event, repo_urls)
        if event == "repo:push":
            changes = obj(data, "push").get("changes")
            return PushEvent(event, self._required(repo_urls), tuple(_cloud_update(c) for c in _list(changes)))
        if event == "repo:refs_changed":
            changes = data.get("changes")
            return PushEvent(event, self._required(repo_urls), tuple(_server_update(c) for c in _list(changes)))
        if event in ("pullrequest:created", "pullrequest:updated"):
            pull = _pull(data, event)
            return pulls.acted(event, "Bitbucket", event.split(":", 1)[1], ("created", "updated"), repo_urls, pull)
        if event == "pullrequest:comment_created":
            pull = _pull(data, event)
            note = obj(obj(data, "comment"), "content")
            commenter = pulls.login(obj(data, "actor"), "nickname")
            return pulls.comment(event, "Bitbucket", note.get("raw"), repo_urls, pull, commenter)
        return Ignored(event, f"Bitbucket `{event}` events start nothing", repo_urls)

    @staticmethod
    def _required(repo_urls: tuple[str, ...]) -> tuple[str, ...]:
        if not repo_urls:
            raise MalformedPayload("push event: `repository.links` has no clone or html URL")
        return repo_urls


def _list(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
        raise MalformedPayload("push event: `changes` must be a list of objects")
    return value


def _cloud_update(change: dict[str, Any]) -> RefUpdate:
    new, old = change.get("new"), change.get("old")
    named = new if isinstance(new, dict) else old if isinstance(old, dict) else None
    if named is None or text(named, "name") is None:
        raise MalformedPayload("push event: a change has neither a `new` nor an `old` ref")
    ref = _REF_PREFIX.get(str(named.get("type")), "refs/heads/") + str(named["name"])
    forced = change.get("forced")
    return RefUpdate(
        ref=ref,
        before=sha_or_none(obj(old, "target").get("hash")) if isinstance(old, dict) else None,
        after=sha_or_none(obj(new, "target").get("hash")) if isinstance(new, dict) else None,
        forced=forced if isinstance(forced, bool) else None,
    )


def _server_update(change: dict[str, Any]) -> RefUpdate:
    ref = text(change, "refId") or text(obj(change, "ref"), "id")
    if ref is None:
        raise MalformedPayload("push event: a change has no `refId`")
    deleted = str(change.get("type", "")).upper() == "DELETE"
    return RefUpdate(
        ref=ref,
        before=sha_or_none(change.get("fromHash")),
        after=None if deleted else sha_or_none(change.get("toHash")),
    )


def _pull(data: dict[str, Any], what: str) -> PullRequest:
    pr = obj(data, "pullrequest")
    source, destination = obj(pr, "source"), obj(pr, "destination")
    head_repo, base_repo = obj(source, "repository"), obj(destination, "repository")
    head_name, base_name = text(head_repo, "full_name"), text(base_repo, "full_name")
    return PullRequest(
        provider="bitbucket",
        number=pulls.number(pr, "id", what),
        head_sha=pulls.head_sha(obj(source, "commit").get("hash"), what, short=True),
        head_ref=text(obj(source, "branch"), "name"),
        head_repo=head_name,
        head_url=text(obj(obj(head_repo, "links"), "html"), "href"),
        base_branch=text(obj(destination, "branch"), "name"),
        fork=head_name is None or base_name is None or head_name.lower() != base_name.lower(),
        author=pulls.login(obj(pr, "author"), "nickname"),
    )
