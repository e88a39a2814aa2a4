"""The HTTP face of the receivers: `POST /webhooks/{github,gitlab,gitea,bitbucket,generic}`.

Each route is open to unauthenticated callers (`exclude_from_auth`: providers cannot log in; their signature is their
credential) and reads the raw body itself, because the signature is over the exact bytes sent. The body size cap
(`ODIN_WEBHOOK_MAX_BODY`, GitHub's 25 MB by default) is enforced while reading: a declared Content-Length over it is
refused before a byte is read, and a body that streams past it is cut off there. The work — hashing, JSON, the
database — runs on a worker thread, so a large or slow delivery never stalls the event loop.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import msgspec
from litestar import Request, Response, Router, post
from litestar.exceptions import ClientException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_202_ACCEPTED
from sqlalchemy.engine import Engine as DbEngine

from odin.controller.service import Controller
from odin.controller.settings import Settings
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
    422: "Generic endpoint: the run cannot start as asked (pipeline, ref or parameters)",
    503: "The store cannot record the delivery now; retry (Retry-After)",
}
RESPONSES = {
    code: ResponseSpec(data_container=WebhookAnswer, description=text, generate_examples=False)
    for code, text in _ANSWERS.items()
}

_SUMMARIES = {
    "github": "GitHub push and ping events (X-Hub-Signature-256)",
    "gitlab": "GitLab Push Hook and Tag Push Hook events (X-Gitlab-Token)",
    "gitea": "Gitea and Forgejo push events (X-Gitea-Signature / X-Forgejo-Signature)",
    "bitbucket": "Bitbucket Cloud repo:push and Bitbucket Server repo:refs_changed events (X-Hub-Signature)",
    "generic": "Any CI/CD system: a push notification, or a run of one pipeline at a commit (X-Odin-Signature)",
}


def webhook_router(*, db: DbEngine, settings: Settings, controller: Controller | None) -> Router:
    """The `/webhooks` routes over one receiver (one per app)."""
    receiver = WebhookReceiver(db=db, settings=settings, controller=controller)
    handlers = [_handler(name, receiver, settings.webhook_max_body) for name in PROVIDERS]
    return Router(path="/webhooks", route_handlers=handlers, request_max_body_size=settings.webhook_max_body)


def _handler(name: str, receiver: WebhookReceiver, limit: int) -> HTTPRouteHandler:
    async def receive(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        headers = {k.lower(): v for k, v in request.headers.items()}
        client = request.client.host if request.client else None
        try:
            body = await request.body()
        except RequestEntityTooLarge:
            return _response(receiver.too_large(name, headers, client, limit))
        except ClientException as e:  # e.g. a Content-Length that is not a number
            return Response({"status": "rejected", "detail": str(e.detail)}, status_code=e.status_code)
        answer = await anyio.to_thread.run_sync(receiver.handle, name, headers, body, client)
        return _response(answer)

    receive.__name__ = f"receive_{name}"
    return post(
        f"/{name}",
        exclude_from_auth=True,
        status_code=HTTP_202_ACCEPTED,
        operation_id=f"webhook{name.capitalize()}",
        summary=_SUMMARIES[name],
        description="Answers 202 (accepted: a sync was requested), 201 (generic run started), 200 (ignored or "
        "duplicate, with the reason), 400, 401, 404, 413, 422 or 503 (retry later). See docs/webhooks.md.",
        tags=["webhooks"],
        security=[],
        responses=RESPONSES,
    )(receive)


def _response(answer: Answer) -> Response[dict[str, Any]]:
    return Response(answer.body, status_code=answer.status, headers=dict(answer.headers))
