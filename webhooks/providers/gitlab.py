"""GitLab webhooks (project, group and system hooks).

GitLab does not sign bodies: it sends the configured secret token as is, in `X-Gitlab-Token`, which is compared in
constant time. Events: `Push Hook` and `Tag Push Hook` (system hooks send the same bodies under `System Hook`, so the
body's `object_kind` decides). Delivery id: `Idempotency-Key` (GitLab 17.4+; the same on a retry), else
`X-Gitlab-Event-UUID`. A deleted branch has `after` all zeros and no `checkout_sha`.

Ignored events get a 2xx: GitLab disables a hook that keeps answering errors.
"""

from __future__ import annotations

from collections.abc import Sequence

from odin.webhooks.events import Ignored, MalformedPayload, ParsedEvent, PushEvent, RefUpdate, sha_or_none
from odin.webhooks.providers.base import (
    BodyCheck,
    Headers,
    SettledCheck,
    delivery_id_from,
    load_payload,
    obj,
    required_text,
    text,
    token_matches,
    urls,
    verify_whole,
)

_PUSH_KINDS = {"push", "tag_push"}


class GitLab:
    name = "gitlab"
    token_header = "x-gitlab-token"
    delivery_headers: tuple[str, ...] = ("idempotency-key", "x-gitlab-event-uuid")

    def signature_present(self, headers: Headers) -> bool:
        return self.token_header in headers

    def check(self, headers: Headers, secrets: Sequence[bytes]) -> BodyCheck:
        """Settled by the header alone: a wrong token is refused before a byte of the body is read."""
        return SettledCheck(token_matches(headers.get(self.token_header), secrets))

    def verify(self, headers: Headers, body: bytes, secrets: Sequence[bytes]) -> bool:
        return verify_whole(self.check(headers, secrets), body)

    def delivery_id(self, headers: Headers, body: bytes) -> str:
        return delivery_id_from(headers, body, *self.delivery_headers)

    def parse(self, headers: Headers, body: bytes) -> ParsedEvent:
        event = headers.get("x-gitlab-event", "").strip() or "(none)"
        data = load_payload(headers, body)
        project = obj(data, "project")
        repository = obj(data, "repository")  # deprecated by GitLab in favour of `project`, still sent
        repo_urls = urls(
            project.get("git_http_url"),
            project.get("git_ssh_url"),
            project.get("web_url"),
            repository.get("git_http_url"),
            repository.get("git_ssh_url"),
            repository.get("homepage"),
        )
        kind = text(data, "object_kind") or text(data, "event_name")
        if kind not in _PUSH_KINDS:
            return Ignored(event, f"GitLab `{kind or event}` events start nothing", repo_urls)
        ref = required_text(data, "ref", f"{kind} event")
        if not repo_urls:
            raise MalformedPayload(f"{kind} event: `project` has no git_http_url, git_ssh_url or web_url")
        update = RefUpdate(ref=ref, before=sha_or_none(data.get("before")), after=sha_or_none(data.get("after")))
        return PushEvent(event, repo_urls, (update,))
