"""GitLab webhooks (project, group and system hooks).

GitLab does not sign bodies: it sends the configured secret token as is, in `X-Gitlab-Token`, which is compared in
constant time. Events: `Push Hook` and `Tag Push Hook` (system hooks send the same bodies under `System Hook`, so the
body's `object_kind` decides). Delivery id: `Idempotency-Key` (GitLab 17.4+; the same on a retry), else
`X-Gitlab-Event-UUID`. A deleted branch has `after` all zeros and no `checkout_sha`.

Merge requests (docs/webhooks.md#pull-requests): `Merge Request Hook` (`object_kind: merge_request`) with
`object_attributes.action` open, reopen, or update carrying `oldrev` (new commits; an update without it changed only
the title, labels...) runs `object_attributes.last_commit.id`, fetched from `refs/merge-requests/<iid>/head`; it comes
from a fork when `source_project_id` is not `target_project_id`. `Note Hook` (`object_kind: note`) with
`noteable_type: MergeRequest` is a comment on one (`merge_request` holds its iid and head): `/retest` there is obeyed
for the repository's `pr_approvers` only (the payload does not say the commenter's role).

Ignored events get a 2xx: GitLab disables a hook that keeps answering errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from odin.controller.facade import PullRequest
from odin.webhooks.events import Ignored, MalformedPayload, ParsedEvent, PushEvent, RefUpdate, sha_or_none
from odin.webhooks.providers import pulls
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
        if kind == "merge_request":
            attributes = obj(data, "object_attributes")
            pull = _pull(attributes, data, "Merge Request Hook")
            action = str(attributes.get("action") or "")
            if action == "update" and not attributes.get("oldrev"):
                return Ignored(event, "GitLab merge request update without new commits starts nothing", repo_urls)
            return pulls.acted(event, "GitLab", action, ("open", "reopen", "update"), repo_urls, pull)
        if kind == "note":
            attributes = obj(data, "object_attributes")
            if attributes.get("noteable_type") != "MergeRequest":
                return Ignored(event, f"GitLab note on a {attributes.get('noteable_type')} starts nothing", repo_urls)
            pull = _pull(obj(data, "merge_request"), data, "Note Hook")
            commenter = pulls.login(obj(data, "user"), "username")
            return pulls.comment(event, "GitLab", attributes.get("note"), repo_urls, pull, commenter)
        if kind not in _PUSH_KINDS:
            return Ignored(event, f"GitLab `{kind or event}` events start nothing", repo_urls)
        ref = required_text(data, "ref", f"{kind} event")
        if not repo_urls:
            raise MalformedPayload(f"{kind} event: `project` has no git_http_url, git_ssh_url or web_url")
        update = RefUpdate(ref=ref, before=sha_or_none(data.get("before")), after=sha_or_none(data.get("after")))
        return PushEvent(event, repo_urls, (update,))


def _pull(mr: Mapping[str, Any], data: Mapping[str, Any], what: str) -> PullRequest:
    """A merge request object (`object_attributes` of a Merge Request Hook, `merge_request` of a Note Hook)."""
    source, target = mr.get("source_project_id"), mr.get("target_project_id")
    head = obj(mr, "source")
    return PullRequest(
        provider="gitlab",
        number=pulls.number(mr, "iid", what),
        head_sha=pulls.head_sha(obj(mr, "last_commit").get("id"), what),
        head_ref=text(mr, "source_branch"),
        head_repo=text(head, "path_with_namespace"),
        head_url=text(head, "git_http_url"),
        base_branch=text(mr, "target_branch"),
        fork=source is None or target is None or source != target,
        author=pulls.login(obj(data, "user"), "username"),
    )
