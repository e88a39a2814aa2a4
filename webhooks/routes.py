"""The HTTP face of the receivers: `POST /webhooks/{github,gitlab,gitea,bitbucket,generic}`.

Each route is open to unauthenticated callers (`exclude_from_auth`: providers cannot log in; their signature is their
credential) and streams the raw body itself, because the signature is over the exact bytes sent. What that may cost
is bounded in `bodies.py`: the headers are checked first (a missing or malformed signature, or a wrong GitLab token,
is refused before the body is read), a declared Content-Length over the cap (`ODIN_WEBHOOK_MAX_BODY`, GitHub's 25 MB
by default) is refused before a byte is read, the body is verified while it streams in and spooled to disk past
`ODIN_WEBHOOK_SPOOL_THRESHOLD`, and large bodies in flight are capped (`ODIN_WEBHOOK_LARGE_BODIES`, 503 above). The
work after the signature — JSON, the database — runs on a worker thread, so a large or slow delivery never stalls the
event loop.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import msgspec
from litestar import Request, Response, Router, post
from litestar.exceptions import ClientException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_202_ACCEPTED

from odin.controller.facade import Controller
from odin.controller.settings import Settings
from odin.controller.store.db import DbEngine
from odin.webhooks.bodies import BodyLimits, BodyReader, Failure, LargeBodySlots, Received
from odin.webhooks.providers import PROVIDERS
from odin.webhooks.receiver import Answer, WebhookReceiver


class WebhookAnswer(msgspec.Struct, kw_only=True):
    """Every answer's body: what Odin did with the delivery, in words a provider's delivery log can show."""

    status: str  # accepted | ignored | duplicate | rejected | unavailable
    detail: str
    delivery: str | None = None
    run_id: str | None = None


_ANSWERS = {
    200: "Ignored (ping, another branch, a tag, a deleted branch, an event Odin does not act on) or a duplicate",
    201: "Generic endpoint: the pipeline's run was started",
    400: "Malformed body or headers",
    401: "Missing or wrong signature, or no secret configured (same answer for all)",
    404: "Correctly signed, but for a repository Odin does not follow",
    413: "Body over the cap (ODIN_WEBHOOK_MAX_BODY)",
    422: "Generic endpoint: the run cannot start as asked (pipeline, ref or parameters); a pull request's head is not "
    "on its pull request ref, or its /retest names a pipeline it lacks",
    503: "The store cannot record the delivery now, or too many large bodies are being received; retry (Retry-After)",
}
RESPONSES = {
    code: ResponseSpec(data_container=WebhookAnswer, description=text, generate_examples=False)
    for code, text in _ANSWERS.items()
}

_SUMMARIES = {
    "github": "GitHub push, pull_request, issue_comment (/retest) and ping events (X-Hub-Signature-256)",
    "gitlab": "GitLab Push Hook, Tag Push Hook, Merge Request Hook and Note Hook (/retest) events (X-Gitlab-Token)",
    "gitea": "Gitea and Forgejo push, pull_request and issue_comment (/retest) events (X-Gitea-Signature / "
    "X-Forgejo-Signature)",
    "bitbucket": "Bitbucket Cloud repo:push and pullrequest:created|updated|comment_created, and Bitbucket Server "
    "repo:refs_changed, pr:opened|from_ref_updated|modified and pr:comment:added (/retest) events (X-Hub-Signature)",
    "generic": "Any CI/CD system: a push notification, or a run of one pipeline at a commit (X-Odin-Signature)",
}


def webhook_router(*, db: DbEngine, settings: Settings, controller: Controller | None) -> Router:
    """The `/webhooks` routes over one receiver (one per app)."""
    receiver = WebhookReceiver(db=db, settings=settings, controller=controller)
    spool_dir = settings.data_dir / "spool"
    spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    limits = BodyLimits(settings.webhook_max_body, settings.webhook_spool_threshold, spool_dir)
    slots = LargeBodySlots(settings.webhook_large_bodies)
    handlers = [_handler(name, receiver, limits, slots) for name in PROVIDERS]
    return Router(path="/webhooks", route_handlers=handlers, request_max_body_size=settings.webhook_max_body)


def _handler(name: str, receiver: WebhookReceiver, limits: BodyLimits, slots: LargeBodySlots) -> HTTPRouteHandler:
    async def receive(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        headers = {k.lower(): v for k, v in request.headers.items()}
        client = request.client.host if request.client else None
        try:
            declared = request.content_length
        except ClientException as e:  # a Content-Length that is not a number
            return Response({"status": "rejected", "detail": str(e.detail)}, status_code=e.status_code)
        with BodyReader(limits, slots, declared) as reader:
            if declared is not None and declared > limits.max_body:
                return _response(receiver.too_large(name, headers, client, limits.max_body))
            started = await anyio.to_thread.run_sync(receiver.begin, name, headers, client)
            if isinstance(started, Answer):  # decided by the headers alone: the body is never read
                return _response(started)
            refused = reader.admit()
            if refused is None:
                body = await reader.read(request.stream(), started)
                if isinstance(body, Received):
                    answer = await anyio.to_thread.run_sync(receiver.finish, started, body.read)
                    return _response(answer)
                refused = body
            return _response(_refusal(refused, receiver, name, headers, client, limits, slots))

    receive.__name__ = f"receive_{name}"
    return post(
        f"/{name}",
        exclude_from_auth=True,
        status_code=HTTP_202_ACCEPTED,
        operation_id=f"webhook{name.capitalize()}",
        summary=_SUMMARIES[name],
        description="Answers 202 (accepted: a sync was requested, or a pull request's runs started), 201 (generic run "
        "started), 200 (ignored or "
        "duplicate, with the reason), 400, 401, 404, 413, 422 or 503 (retry later). See docs/webhooks.md.",
        tags=["webhooks"],
        security=[],
        responses=RESPONSES,
    )(receive)


def _refusal(
    failure: Failure,
    receiver: WebhookReceiver,
    name: str,
    headers: dict[str, str],
    client: str | None,
    limits: BodyLimits,
    slots: LargeBodySlots,
) -> Answer:
    if failure == "too_large":
        return receiver.too_large(name, headers, client, limits.max_body)
    if failure == "busy":
        return receiver.busy(name, headers, client, slots.slots)
    detail = "the client disconnected before the body ended" if failure == "disconnected" else "unreadable body"
    return Answer(400, {"status": "rejected", "detail": detail})


def _response(answer: Answer) -> Response[dict[str, Any]]:
    return Response(answer.body, status_code=answer.status, headers=dict(answer.headers))
