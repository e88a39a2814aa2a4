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

Pull requests, Bitbucket Server / Data Center: `pr:opened` and `pr:from_ref_updated` (the source branch moved) run
`pullRequest.fromRef.latestCommit` (40 hex digits); `pr:modified` runs it only when the target branch changed
(`previousTarget.id` is not `toRef.id`: the pipelines that changed are counted from the new base), and any other edit
(title, description, reviewers) is ignored. These payloads have no top-level `repository`: the repository is
`pullRequest.toRef.repository` (its `links.clone` and `links.self`), the head is the source branch
`fromRef.displayId`, and a fork is a `fromRef.repository` that is not `toRef.repository` (by `id`, else project key
and slug), fetched from the fork's http(s) clone URL, on the same host only, as for Cloud. The author is
`author.user.slug` (else `name`). `pr:comment:added` with a `/retest` line in `comment.text` re-runs
`pullRequest.fromRef.latestCommit` for the repository's `pr_approvers` (the commenter is `actor.slug`, else
`actor.name`); its `pullRequest` is the whole pull request, so a fork's comment is known as a fork's.
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
        if event in _SERVER_PULLS:
            return _server_pull_event(event, data)
        if event == _SERVER_COMMENT:
            return _server_comment(event, data)
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


_SERVER_PULLS = ("pr:opened", "pr:from_ref_updated", "pr:modified")
_SERVER_COMMENT = "pr:comment:added"


def _server_pull_event(event: str, data: dict[str, Any]) -> ParsedEvent:
    """A Bitbucket Server pull request event, or `Ignored` for a `pr:modified` that kept the target branch."""
    repo_urls, pull = _server_pull(event, data)
    action = event.split(":", 1)[1]
    if action == "modified":
        target = obj(obj(data, "pullRequest"), "toRef")
        before = text(obj(data, "previousTarget"), "id")
        if before is None or before == text(target, "id"):
            return Ignored(event, f"Bitbucket Server pull request #{pull.number} was modified without a new target "
                                  "branch: it starts nothing (only opened, from_ref_updated, and modified with a new "
                                  "target branch run the head)", repo_urls)  # fmt: skip
    return pulls.acted(event, "Bitbucket Server", action, ("opened", "from_ref_updated", "modified"), repo_urls, pull)


def _server_comment(event: str, data: dict[str, Any]) -> ParsedEvent:
    """A `/retest` comment on a Bitbucket Server pull request (`comment.text`, by `actor`), or `Ignored`."""
    repo_urls, pull = _server_pull(event, data)
    commenter = pulls.login(obj(data, "actor"), "slug", "name")
    return pulls.comment(event, "Bitbucket Server", obj(data, "comment").get("text"), repo_urls, pull, commenter)


def _server_pull(event: str, data: dict[str, Any]) -> tuple[tuple[str, ...], PullRequest]:
    """The repository's URLs and the pull request, from a Bitbucket Server payload's `pullRequest`."""
    pr = obj(data, "pullRequest")
    source, target = obj(pr, "fromRef"), obj(pr, "toRef")
    head_repo, base_repo = obj(source, "repository"), obj(target, "repository")
    repo_urls = _server_repo_urls(base_repo)
    if not repo_urls:
        raise MalformedPayload(f"{event}: `pullRequest.toRef.repository.links` has no clone or self URL")
    pull = PullRequest(
        provider="bitbucket",
        number=pulls.number(pr, "id", event),
        head_sha=pulls.head_sha(source.get("latestCommit"), event),
        head_ref=text(source, "displayId") or _branch(text(source, "id")),
        head_repo=_server_full_name(head_repo),
        head_url=_server_clone_url(head_repo),
        base_branch=text(target, "displayId") or _branch(text(target, "id")),
        fork=_server_fork(head_repo, base_repo),
        author=pulls.login(obj(obj(pr, "author"), "user"), "slug", "name"),
    )
    return repo_urls, pull


def _branch(ref: str | None) -> str | None:
    return ref.removeprefix("refs/heads/") if ref else None


def _server_links(repository: dict[str, Any]) -> list[dict[str, Any]]:
    links = obj(repository, "links")
    return [c for c in links.get("clone") or [] if isinstance(c, dict)] if isinstance(links.get("clone"), list) else []


def _server_repo_urls(repository: dict[str, Any]) -> tuple[str, ...]:
    own = obj(repository, "links").get("self")
    selves = [c.get("href") for c in own if isinstance(c, dict)] if isinstance(own, list) else []
    return urls(*(c.get("href") for c in _server_links(repository)), *selves)


def _server_clone_url(repository: dict[str, Any]) -> str | None:
    """The repository's http(s) clone URL (the one Odin can fetch without the server's SSH key), else the first."""
    hrefs = [str(c["href"]) for c in _server_links(repository) if isinstance(c.get("href"), str)]
    return next((h for h in hrefs if h.startswith(("https://", "http://"))), hrefs[0] if hrefs else None)


def _server_full_name(repository: dict[str, Any]) -> str | None:
    project, slug = text(obj(repository, "project"), "key"), text(repository, "slug")
    return f"{project}/{slug}" if project and slug else None


def _server_fork(head: dict[str, Any], base: dict[str, Any]) -> bool:
    """A fork unless both refs name the same repository: by id when both say it, else by project key and slug (a
    payload that says neither is a fork's, so it never gets secrets)."""
    head_id, base_id = head.get("id"), base.get("id")
    if isinstance(head_id, int) and isinstance(base_id, int):
        return head_id != base_id
    head_name, base_name = _server_full_name(head), _server_full_name(base)
    return head_name is None or base_name is None or head_name.lower() != base_name.lower()
