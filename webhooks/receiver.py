"""One delivery, from raw request to answer: verify, parse, match, record, request a sync. Framework-free.

The order is the security argument:

1. **Verify** the signature over the raw body against every followed repository's secrets (all of them, always:
   nothing about the answer's timing says which matched). Unauthenticated requests get 401 and touch nothing but the
   log and the metrics — not the database, not the JSON parser.
2. **Parse** the payload into a claim (`events.py`); malformed JSON is 400.
3. **Match** the claimed repository by its URLs. The delivery must be signed with *that* repository's secret; an
   unknown repository is 404, with nothing said about which repositories exist.
4. **Record** the delivery. The database's UNIQUE (provider, delivery_id) decides duplicates, so copies racing in
   concurrently produce one row and one sync request; while the store cannot record anything the answer is 503 (the
   provider retries, and the poller catches up anyway), never a 2xx.
5. **Request a sync** of the repository and answer 202. The sync — the same one the poller runs — fetches from the
   remote and runs what it finds; one run per (repository, commit, pipeline) is the store's promise. Afterwards the
   payload's commit is checked against the remote (`verifier.py`).

Pull requests (`PullRequestEvent`, a `/retest` `PullRequestComment`) take steps 1-4 alike, then the repository's
`pull_requests` policy, its branch patterns and (for a comment) who may ask decide; what passes is fetched, validated
and run at once by the controller (controller/pulls.py), and answered 202 with the runs.

Events Odin does not act on (pings, other branches, tags, other comments) are answered 2xx with the reason: GitLab
disables hooks that keep failing, and a provider's delivery log is where a user looks first.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from odin.controller import facade
from odin.controller.facade import (
    Controller,
    FollowedRepo,
    GitError,
    InvalidPipeline,
    PullRequestRejected,
    PullRequestUnavailable,
    RunRejected,
    StartRequest,
    SyncRequest,
    matches_branch,
)
from odin.controller.settings import Settings
from odin.controller.store import deliveries
from odin.controller.store.db import DbEngine, StoreUnavailable
from odin.controller.store.deliveries import Delivery, Outcome, Recorded
from odin.controller.store.pulls import last_seen
from odin.controller.vocabulary import Trigger
from odin.webhooks.audit import RejectionLog, printable
from odin.webhooks.events import (
    Ignored,
    MalformedPayload,
    ParsedEvent,
    Ping,
    PullRequestComment,
    PullRequestEvent,
    PushEvent,
    RefUpdate,
    RunRequest,
    nul_field,
)
from odin.webhooks.matching import RepoIndex
from odin.webhooks.metrics import DELIVERIES, HANDLING
from odin.webhooks.providers import PROVIDERS, Provider
from odin.webhooks.providers.base import BodyCheck, Headers
from odin.webhooks.secrets import WebhookSecrets
from odin.webhooks.verifier import ShaVerifier

log = logging.getLogger("odin.webhooks")

RETRY_AFTER = "5"
UNAUTHORIZED = "signature missing or invalid"


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


def secret_sources(settings: Settings, controller: Controller | None) -> Callable[[], dict[int, list[str]]]:
    """The configured secrets of each followed repository: `ODIN_WEBHOOK_SECRET` (and `..._PREVIOUS` while rotating)
    belong to the repository given by `ODIN_REPO`."""

    def sources() -> dict[int, list[str]]:
        if controller is None:
            return {}
        configured = [s.get_secret_value() for s in (settings.webhook_secret, settings.webhook_secret_previous) if s]
        sources = {r.id: configured for r in controller.repos.values() if r.name == settings.repo_name and configured}
        # Repositories registered through the API name their own secret, by reference (resolved in WebhookSecrets).
        sources.update({r.id: [r.webhook_secret_ref] for r in controller.repos.values() if r.webhook_secret_ref})
        return sources

    return sources


@dataclass(slots=True)
class Pending:
    """A delivery whose headers passed `WebhookReceiver.begin`: its signature checks, one per followed repository
    with a secret, are fed the body as it arrives."""

    provider: Provider
    headers: Headers
    client: str | None
    checks: dict[int, BodyCheck]

    def update(self, chunk: bytes) -> None:
        for check in self.checks.values():  # every repository's, always: the timing says nothing about which
            check.update(chunk)


class WebhookReceiver:
    def __init__(
        self,
        *,
        db: DbEngine,
        settings: Settings,
        controller: Controller | None,
        secrets: WebhookSecrets | None = None,
        rejections: RejectionLog | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.controller = controller
        self.secrets = secrets or WebhookSecrets(secret_sources(settings, controller))
        self.rejections = rejections or RejectionLog()
        publish = controller.bus.publish if controller is not None else (lambda _event: None)
        self.verifier = ShaVerifier(db, publish)
        self._index_lock = threading.Lock()
        self._index: tuple[tuple[tuple[int, str], ...], RepoIndex] | None = None
        self._warned_no_secret = False

    # -- entry point ----------------------------------------------------------------------------------------------
    def handle(self, provider_name: str, headers: Headers, body: bytes, client: str | None) -> Answer:
        """Answer one delivery whose body is already in memory. `headers` must have lower-case names;
        `provider_name` is one of `PROVIDERS`."""
        started = self.begin(provider_name, headers, client)
        if isinstance(started, Answer):
            return started
        started.update(body)
        return self.finish(started, lambda: body)

    def begin(self, provider_name: str, headers: Headers, client: str | None) -> Answer | Pending:
        """Step 1 with the headers only: the rejection when they alone decide it (no secret configured, a missing or
        malformed signature, a wrong token), else the pending checks to feed with the body as it streams in."""
        provider = PROVIDERS[provider_name]
        secrets = self.secrets.current()
        if not secrets:
            if not self._warned_no_secret:
                self._warned_no_secret = True
                log.warning("webhook deliveries are refused: no webhook secret is configured (set ODIN_WEBHOOK_SECRET)")
            message = "no webhook secret is configured on this Odin; every delivery is refused"
            return self._reject(provider, "no_secret", 401, message, headers, client)
        checks = {repo_id: provider.check(headers, repo_secrets) for repo_id, repo_secrets in secrets.items()}
        pending = Pending(provider, headers, client, checks)
        if all(check.settled() is False for check in checks.values()):
            return self._unauthorised(pending)
        return pending

    def finish(self, pending: Pending, read_body: Callable[[], bytes]) -> Answer:
        """Steps 1 (end) to 5 once the whole body went through `pending.update`; `read_body` is only called for an
        authenticated delivery, so an unauthenticated body is never loaded whole."""
        started = time.perf_counter()
        try:
            # A set comprehension, not any(): every repository's secrets are compared, whatever matched first.
            authorised = {repo_id for repo_id, check in pending.checks.items() if check.matches()}
            if not authorised:
                return self._unauthorised(pending)
            return self._handle(pending.provider, pending.headers, read_body(), pending.client, authorised)
        finally:
            HANDLING.labels(pending.provider.name).observe(time.perf_counter() - started)

    def too_large(self, provider_name: str, headers: Headers, client: str | None, limit: int) -> Answer:
        """The answer for a body over the size cap (read no further than the cap, never parsed)."""
        message = f"the body is larger than {limit} bytes"
        return self._reject(PROVIDERS[provider_name], "too_large", 413, message, headers, client)

    def busy(self, provider_name: str, headers: Headers, client: str | None, slots: int) -> Answer:
        """The answer when every slot for a large body is taken (503: the provider retries later)."""
        provider = PROVIDERS[provider_name]
        claimed = next((headers[h] for h in provider.delivery_headers if h in headers), None)
        message = f"{slots} large deliveries are being received already; retry later"
        self.rejections.rejected(provider.name, "busy", message, delivery=claimed, client=client, outcome="unavailable")
        return Answer(503, {"status": "unavailable", "detail": message}, {"Retry-After": RETRY_AFTER})

    def _unauthorised(self, pending: Pending) -> Answer:
        provider, headers = pending.provider, pending.headers
        reason = "bad_signature" if provider.signature_present(headers) else "missing_signature"
        return self._reject(provider, reason, 401, UNAUTHORIZED, headers, pending.client)

    def _handle(
        self, provider: Provider, headers: Headers, body: bytes, client: str | None, authorised: set[int]
    ) -> Answer:
        try:
            event = provider.parse(headers, body)
        except MalformedPayload as e:
            return self._reject(provider, "malformed", 400, str(e), headers, client)
        delivery_id = provider.delivery_id(headers, body)
        bad_field = nul_field(event, delivery_id)
        if bad_field is not None:
            message = f"{bad_field} contains a NUL character (\\u0000)"
            return self._reject(provider, "malformed", 400, message, headers, client)
        repo_id = self.repo_index().match(event.repo_urls)
        if repo_id is not None and repo_id not in authorised:
            message = f"signed with the secret of another repository than the one it names (repository {repo_id})"
            self.rejections.rejected(provider.name, "wrong_secret", message, delivery=delivery_id, client=client)
            return Answer(401, {"status": "rejected", "detail": UNAUTHORIZED})
        if isinstance(event, Ping | Ignored):
            reason = (
                "pong: the hook reaches Odin and its signature is valid" if isinstance(event, Ping) else event.reason
            )
            return self._ignored(provider, delivery_id, event, repo_id, reason, None)
        if repo_id is None:
            message = "no repository followed by this Odin matches the delivery"
            self.rejections.rejected(provider.name, "unknown_repository", message, delivery=delivery_id, client=client)
            return Answer(404, {"status": "rejected", "detail": message, "delivery": delivery_id})
        repo = self._followed(repo_id)
        if isinstance(event, RunRequest):
            return self._run(provider, delivery_id, event, repo, client)
        if isinstance(event, PullRequestEvent | PullRequestComment):
            return self._pull_request(provider, delivery_id, event, repo, client)
        return self._push(provider, delivery_id, event, repo)

    # -- pushes ---------------------------------------------------------------------------------------------------
    def _push(self, provider: Provider, delivery_id: str, event: PushEvent, repo: FollowedRepo) -> Answer:
        update = next((u for u in event.updates if u.branch is not None and _follows(repo, u.branch)), None)
        tagged = next((u for u in event.updates if _follows_tag(repo, u)), None)
        if update is None and tagged is not None:
            return self._tag(provider, delivery_id, event, repo, tagged)
        if update is None:
            other = event.updates[0] if event.updates else None
            return self._ignored(
                provider,
                delivery_id,
                event,
                repo.id,
                _not_followed(other, ", ".join(repo.branches) or repo.branch),
                other,
            )
        by = f"{provider.name}:{delivery_id}"[:255]
        if update.deleted:
            reason = (
                f"the followed branch {update.branch} was deleted: nothing runs, and the repository is reported not "
                "ready until the branch is pushed again"
            )
            answer = self._ignored(provider, delivery_id, event, repo.id, reason, update)
            if answer.body["status"] == "ignored":
                self._request_sync(repo, SyncRequest(trigger=Trigger.WEBHOOK, by=by))  # records the condition now
            return answer
        if update.branch != repo.branch:
            return self._further(provider, delivery_id, event, repo, update, by)
        recorded = self._record(provider, delivery_id, event, repo.id, Outcome.ACCEPTED, update)
        if isinstance(recorded, Answer):
            return recorded
        if recorded.duplicate_of is not None:
            return self._duplicate(provider, delivery_id, recorded)
        on_done = None
        if update.after is not None:
            on_done = self.verifier.after_sync(
                row_id=recorded.id,
                provider=provider.name,
                delivery_id=delivery_id,
                repo_id=repo.id,
                repo=repo,
                branch=repo.branch,
                sha=update.after,
            )
        queued = self._request_sync(repo, SyncRequest(trigger=Trigger.WEBHOOK, by=by, on_done=on_done))
        DELIVERIES.labels(provider.name, "accepted").inc()
        log.info(
            "webhook %s delivery %s: push to %s of %s at %s; sync requested",
            provider.name,
            printable(delivery_id),
            repo.branch,
            repo.name,
            (update.after or "?")[:12],
        )
        detail = (
            f"a sync of {repo.name} was requested; runs follow from the commits it finds"
            if queued
            else "recorded; this replica does not schedule (it is not the leader): the leader is woken to sync now "
            "(on Postgres), or its next poll picks the commit up"
        )
        body: dict[str, Any] = {"status": "accepted", "detail": detail, "delivery": delivery_id}
        body.update(repository=repo.name, ref=update.ref, commit=update.after)
        return Answer(202, body)

    def _further(
        self, provider: Provider, delivery_id: str, event: PushEvent, repo: FollowedRepo, update: RefUpdate, by: str
    ) -> Answer:
        """A push to a branch one of the repository's patterns matches: a sync of that branch (or, for a branch not
        followed yet, of the repository's own, which then finds it)."""
        recorded = self._record(provider, delivery_id, event, repo.id, Outcome.ACCEPTED, update)
        if isinstance(recorded, Answer):
            return recorded
        if recorded.duplicate_of is not None:
            return self._duplicate(provider, delivery_id, recorded)
        assert self.controller is not None
        request = SyncRequest(trigger=Trigger.WEBHOOK, by=by)
        queued = self.controller.request_sync(repo.id, request, branch=update.branch)
        DELIVERIES.labels(provider.name, "accepted").inc()
        detail = (
            f"a sync of {repo.name} branch {update.branch} was requested; runs follow from the commits it finds"
            if queued
            else "recorded; this replica does not schedule (it is not the leader): the leader is woken to sync "
            f"branch {update.branch} now (on Postgres), or its next poll picks the commit up"
        )
        body: dict[str, Any] = {"status": "accepted", "detail": detail, "delivery": delivery_id}
        body.update(repository=repo.name, ref=update.ref, commit=update.after)
        return Answer(202, body)

    def _tag(
        self, provider: Provider, delivery_id: str, event: PushEvent, repo: FollowedRepo, update: RefUpdate
    ) -> Answer:
        """A push of a tag one of the repository's tag patterns matches: a sync of its own branch, after which it
        lists the remote's tags and starts the runs of the new or moved ones (controller/tags.py)."""
        recorded = self._record(provider, delivery_id, event, repo.id, Outcome.ACCEPTED, update)
        if isinstance(recorded, Answer):
            return recorded
        if recorded.duplicate_of is not None:
            return self._duplicate(provider, delivery_id, recorded)
        by = f"{provider.name}:{delivery_id}"[:255]
        assert self.controller is not None
        queued = self.controller.request_sync(repo.id, SyncRequest(trigger=Trigger.WEBHOOK, by=by), tag=update.tag)
        DELIVERIES.labels(provider.name, "accepted").inc()
        detail = (
            f"tag {update.tag}: a sync of {repo.name} was requested; the tag's pipelines run once at its commit"
            if queued
            else "recorded; this replica does not schedule (it is not the leader): the leader is woken to sync now "
            "(on Postgres), or its next poll picks the tag up"
        )
        body: dict[str, Any] = {"status": "accepted", "detail": detail, "delivery": delivery_id}
        body.update(repository=repo.name, ref=update.ref, commit=update.after)
        return Answer(202, body)

    def _request_sync(self, repo: FollowedRepo, request: SyncRequest) -> bool:
        assert self.controller is not None
        return self.controller.request_sync(repo.id, request)

    # -- pull requests (docs/webhooks.md#pull-requests) ----------------------------------------------------------------
    def _pull_request(
        self,
        provider: Provider,
        delivery_id: str,
        event: PullRequestEvent | PullRequestComment,
        repo: FollowedRepo,
        client: str | None,
    ) -> Answer:
        """A pull request's new head, or a `/retest` on it: checked against the repository's `pull_requests` policy,
        its branch patterns and (for a comment) who may ask, then fetched, validated and run (controller/pulls.py)."""
        retest = isinstance(event, PullRequestComment)
        refusal = _pull_request_refusal(repo, event)
        if refusal is None and (event.pull.fork is None or event.pull.base_branch is None):
            # A GitHub or Gitea comment names neither: what the pull request's last run recorded, else (never run
            # here) a fork, against the repository's own branch.
            try:
                seen = last_seen(self.db, repo.id, event.pull.provider, event.pull.number)
            except StoreUnavailable as e:
                return self._unavailable(provider, delivery_id, e)
            fork_seen: bool | None = seen[0] if seen is not None else None
            base_seen = seen[1] if seen is not None else None
            event = replace(
                event,
                pull=replace(
                    event.pull,
                    fork=event.pull.fork if event.pull.fork is not None else fork_seen,
                    base_branch=event.pull.base_branch or base_seen or repo.branch,
                ),
            )
        pull = event.pull
        fork = pull.fork
        if refusal is None and fork is None and repo.pull_requests == "same-repo":
            refusal = (
                f"pull request #{pull.number} never ran here, and the comment does not say whether it comes from a "
                "fork; push to it (or reopen it) to run it first"
            )
        update = RefUpdate(ref=pull.source_ref if pull.head_ref or pull.provider != "bitbucket" else "", before=None,
                           after=pull.head_sha if pull.head_sha and len(pull.head_sha) == 40 else None)  # fmt: skip
        if refusal is not None:
            return self._ignored(provider, delivery_id, event, repo.id, refusal, update)
        recorded = self._record(provider, delivery_id, event, repo.id, Outcome.ACCEPTED, update)
        if isinstance(recorded, Answer):
            return recorded
        if recorded.duplicate_of is not None:
            return self._duplicate(provider, delivery_id, recorded)
        assert self.controller is not None
        commenter = event.commenter if isinstance(event, PullRequestComment) else None
        by = (f"{provider.name}:retest:{commenter}" if retest else f"{provider.name}:{delivery_id}")[:255]
        pipeline = event.pipeline if isinstance(event, PullRequestComment) else None
        try:
            done = self.controller.pull_request(
                repo.id,
                pull,
                by=by,
                withheld=fork is not False,
                forks=repo.pull_requests == "all",
                retest=retest,
                pipeline=pipeline,
            )
        except PullRequestUnavailable as e:
            return self._run_unavailable(provider, delivery_id, recorded.id, str(e))
        except PullRequestRejected as e:
            return self._run_rejected(provider, delivery_id, recorded.id, 422, str(e), client)
        except StoreUnavailable as e:
            return self._unavailable(provider, delivery_id, e)
        with contextlib.suppress(StoreUnavailable):
            runs = done.created or done.existing
            deliveries.update(self.db, recorded.id, sha=done.sha, sha_verified=True, run_id=runs[0] if runs else None)
        DELIVERIES.labels(provider.name, "accepted").inc()
        what = "retest of" if retest else "head of"
        log.info("webhook %s delivery %s: %s pull request #%s at %s: runs %s", provider.name, printable(delivery_id),
                 what, pull.number, done.sha[:12], ", ".join(done.created) or "none new")  # fmt: skip
        detail = (
            f"{what} pull request #{pull.number} at {done.sha[:12]}: {len(done.created)} run(s) started"
            + (f", {len(done.existing)} already existed" if done.existing else "")
            + (f", {len(done.superseded)} of older heads cancelled" if done.superseded else "")
            + ("; secrets are withheld (a fork)" if done.withheld else "")
            + ("; the commit has problems (see the commit)" if done.validation == "invalid" else "")
        )
        body: dict[str, Any] = {"status": "accepted", "detail": detail, "delivery": delivery_id}
        body.update(repository=repo.name, pull_request=pull.number, commit=done.sha, runs=done.created)
        body.update(existing=done.existing, superseded=done.superseded, validation=done.validation)
        if done.created:
            body["run_id"] = done.created[0]
        return Answer(202, body)

    # -- generic run requests ---------------------------------------------------------------------------------------
    def _run(
        self, provider: Provider, delivery_id: str, req: RunRequest, repo: FollowedRepo, client: str | None
    ) -> Answer:
        assert self.controller is not None
        update = RefUpdate(ref=req.ref or "", before=None, after=req.sha)
        recorded = self._record(provider, delivery_id, req, repo.id, Outcome.ACCEPTED, update)
        if isinstance(recorded, Answer):
            return recorded
        if recorded.duplicate_of is not None:
            return self._duplicate(provider, delivery_id, recorded)
        by = f"{provider.name}:{delivery_id}"[:255]
        try:
            if req.sha is not None and not facade.has_commit(repo, req.sha, fetch=True):
                message = f"commit {req.sha} is not on {repo.branch} or a tag of the remote"
                return self._run_rejected(provider, delivery_id, recorded.id, 422, message, client)
            created = self.controller.start_run(
                StartRequest(
                    pipeline=req.pipeline,
                    ref=req.sha or req.ref,
                    params=req.params,
                    trigger=Trigger.API,
                    by=by,
                ),
                repo.id,
            )
        except GitError as e:
            return self._run_unavailable(provider, delivery_id, recorded.id, f"cannot read the repository: {e.message}")
        except RunRejected as e:
            if e.status == 503:
                return self._run_unavailable(provider, delivery_id, recorded.id, e.message)
            extra = {"problems": [p.to_dict() for p in e.problems]} if isinstance(e, InvalidPipeline) else {}
            return self._run_rejected(provider, delivery_id, recorded.id, e.status, e.message, client, extra)
        except StoreUnavailable as e:
            return self._unavailable(provider, delivery_id, e)
        try:
            deliveries.update(self.db, recorded.id, run_id=created.run_id)
        except StoreUnavailable:
            log.error(
                "run %s started for delivery %s, but the delivery row could not be updated", created.run_id, delivery_id
            )
        DELIVERIES.labels(provider.name, "accepted").inc()
        log.info("webhook %s delivery %s started run %s", provider.name, printable(delivery_id), created.run_id)
        body: dict[str, Any] = {"status": "accepted", "detail": f"run {created.run_id} started"}
        body.update(delivery=delivery_id, run_id=created.run_id)
        return Answer(201, body)

    def _run_rejected(
        self,
        provider: Provider,
        delivery_id: str,
        row: int,
        status: int,
        message: str,
        client: str | None,
        extra: Mapping[str, Any] | None = None,
    ) -> Answer:
        with contextlib.suppress(StoreUnavailable):  # the answer still says why; the row keeps "accepted", no run
            deliveries.update(self.db, row, outcome=Outcome.REJECTED, reason=message)
        self.rejections.rejected(provider.name, "run_rejected", message, delivery=delivery_id, client=client)
        return Answer(status, {"status": "rejected", "detail": message, "delivery": delivery_id, **(extra or {})})

    def _run_unavailable(self, provider: Provider, delivery_id: str, row: int, message: str) -> Answer:
        with contextlib.suppress(StoreUnavailable):  # so that the provider's retry is not a "duplicate" of nothing
            deliveries.forget(self.db, row)
        DELIVERIES.labels(provider.name, "unavailable").inc()
        log.warning("webhook %s delivery %s: run not started (%s)", provider.name, printable(delivery_id), message)
        body = {"status": "unavailable", "detail": f"{message}; retry later", "delivery": delivery_id}
        return Answer(503, body, {"Retry-After": RETRY_AFTER})

    # -- recording ----------------------------------------------------------------------------------------------------
    def _record(
        self,
        provider: Provider,
        delivery_id: str,
        event: ParsedEvent,
        repo_id: int | None,
        outcome: str,
        update: RefUpdate | None,
        reason: str | None = None,
    ) -> Recorded | Answer:
        delivery = Delivery(
            provider=provider.name,
            delivery_id=delivery_id,
            event=event.event,
            outcome=outcome,
            repo_id=repo_id,
            ref=(update.ref or None) if update else None,
            sha=update.after if update else None,
            reason=reason,
        )
        try:
            return deliveries.record(self.db, delivery)
        except StoreUnavailable as e:
            return self._unavailable(provider, delivery_id, e)

    def _ignored(
        self,
        provider: Provider,
        delivery_id: str,
        event: ParsedEvent,
        repo_id: int | None,
        reason: str,
        update: RefUpdate | None,
    ) -> Answer:
        recorded = self._record(provider, delivery_id, event, repo_id, Outcome.IGNORED, update, reason)
        if isinstance(recorded, Answer):
            return recorded
        if recorded.duplicate_of is not None:
            return self._duplicate(provider, delivery_id, recorded)
        DELIVERIES.labels(provider.name, "ignored").inc()
        log.info("webhook %s delivery %s (%s) ignored: %s", provider.name, printable(delivery_id), event.event, reason)
        return Answer(200, {"status": "ignored", "detail": reason, "delivery": delivery_id})

    def _duplicate(self, provider: Provider, delivery_id: str, recorded: Recorded) -> Answer:
        previous = recorded.duplicate_of
        assert previous is not None
        DELIVERIES.labels(provider.name, "duplicate").inc()
        log.info("webhook %s delivery %s is a duplicate; nothing to do", provider.name, printable(delivery_id))
        detail = f"delivery already received at {previous.received_at.isoformat()} ({previous.outcome}); nothing to do"
        body: dict[str, Any] = {"status": "duplicate", "detail": detail, "delivery": delivery_id}
        if previous.run_id:
            body["run_id"] = previous.run_id
        return Answer(200, body)

    def _unavailable(self, provider: Provider, delivery_id: str, error: StoreUnavailable) -> Answer:
        self.rejections.rejected(
            provider.name, "store_unavailable", str(error), delivery=delivery_id, client=None, outcome="unavailable"
        )
        detail = "the database is unavailable, so the delivery cannot be recorded; retry later"
        return Answer(
            503, {"status": "unavailable", "detail": detail, "delivery": delivery_id}, {"Retry-After": RETRY_AFTER}
        )

    def _reject(
        self, provider: Provider, reason: str, status: int, message: str, headers: Headers, client: str | None
    ) -> Answer:
        claimed = next((headers[h] for h in provider.delivery_headers if h in headers), None)
        self.rejections.rejected(provider.name, reason, message, delivery=claimed, client=client)
        return Answer(status, {"status": "rejected", "detail": message})

    # -- repositories -------------------------------------------------------------------------------------------------
    def repo_index(self) -> RepoIndex:
        repos = self._repos()
        ids = tuple((r.id, r.url) for r in repos)  # rebuilt when a repository is added, removed or moves
        with self._index_lock:
            if self._index is None or self._index[0] != ids:
                aliases = self.settings.repo_aliases
                entries = [(r.id, [r.url, *(aliases if r.name == self.settings.repo_name else [])]) for r in repos]
                self._index = (ids, RepoIndex.build(entries))
            return self._index[1]

    def _repos(self) -> Sequence[FollowedRepo]:
        return list(self.controller.repos.values()) if self.controller is not None else []

    def _followed(self, repo_id: int) -> FollowedRepo:
        assert self.controller is not None
        return self.controller.repo(repo_id)


def _follows(repo: FollowedRepo, branch: str) -> bool:
    """Is `branch` the repository's own or one its patterns match?"""
    return branch == repo.branch or matches_branch(repo.branches, branch)


AUTHORISED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
"""GitHub's `author_association` values whose `/retest` is obeyed: the repository's owner, its organisation's members
and its collaborators (not CONTRIBUTOR, FIRST_TIMER, NONE...)."""


def _pull_request_refusal(repo: FollowedRepo, event: PullRequestEvent | PullRequestComment) -> str | None:
    """Why the pull request event starts nothing here (the answer's `ignored` reason), or None."""
    pull = event.pull
    if repo.pull_requests == "off":
        return (
            f"pull requests do not run for repository {repo.name} (odinctl repos update {repo.name} "
            "--pull-requests same-repo, or ODIN_PULL_REQUESTS for the ODIN_REPO one)"
        )
    if isinstance(event, PullRequestComment):
        allowed = event.commenter is not None and event.commenter in repo.pr_approvers
        if pull.provider == "github" and (event.association or "").upper() in AUTHORISED_ASSOCIATIONS:
            allowed = True
        if not allowed:
            who = event.commenter or "an unnamed user"
            role = f" ({event.association})" if event.association else ""
            return (
                f"/retest by {who}{role} on pull request #{pull.number} ignored: not authorised (GitHub: owners, "
                "members and collaborators; everywhere: the repository's pr_approvers)"
            )
    if pull.base_branch is not None and not _follows(repo, pull.base_branch):
        return (
            f"pull request #{pull.number} targets {pull.base_branch}, which this repository does not follow (it "
            f"follows {', '.join(repo.branches) or repo.branch})"
        )
    if pull.fork and repo.pull_requests != "all":
        return (
            f"pull request #{pull.number} comes from a fork ({pull.head_repo or 'unknown'}); repository {repo.name} "
            "runs only pull requests from its own branches (--pull-requests all runs forks too, without secrets)"
        )
    return None


def _follows_tag(repo: FollowedRepo, update: RefUpdate) -> bool:
    """Is `update` a new or moved tag one of the repository's tag patterns matches?"""
    return update.tag is not None and not update.deleted and matches_branch(repo.tag_patterns, update.tag)


def _not_followed(update: RefUpdate | None, branch: str) -> str:
    if update is None:
        return "the push moved no ref"
    if update.tag is not None:
        return (
            f"tag push ({update.tag}): no tag pattern of this repository matches it (`odinctl repos update NAME "
            f"--tag PATTERN` follows tags); start a run at it with `odinctl run PIPELINE --ref {update.tag}`"
        )
    if update.branch is not None:
        return f"branch {update.branch} is not followed (this repository follows {branch})"
    return f"ref {update.ref} is not followed"
