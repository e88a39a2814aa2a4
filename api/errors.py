"""Domain errors to HTTP answers, in one place, and the error responses each route documents in OpenAPI.

Services raise what they mean (`RunRejected`, `GitError`, `StoreUnavailable`, `UserExists`...); this module decides
the status code and the body (`ErrorBody`: status_code, detail, extra), so the same failure reads the same on every
route. Messages come from the domain and are written for users; none carries a secret (git errors are redacted at
the source, database errors are summarised).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException
from litestar.openapi.datastructures import ResponseSpec

from odin.api.auth.api_tokens import TokenNotFound
from odin.api.auth.passwords import WeakPassword
from odin.api.auth.tokens import bearer_challenge
from odin.api.auth.users import InvalidUsername, LastAdmin, UserExists, UserNotFound
from odin.api.context import NoScheduler
from odin.api.schemas import ErrorBody
from odin.api.services.errors import InvalidRequest, NotFound, RangeNotSatisfiable
from odin.api.services.pipelines import InvalidContent, PipelineMissing
from odin.api.validation_queue import RETRY_AFTER_SECONDS, ValidationBusy
from odin.controller.facade import (
    AmbiguousRef,
    ArtifactError,
    ArtifactNotFound,
    ArtifactStoreUnavailable,
    AuthenticationFailed,
    CertificateRejected,
    EditConflict,
    FileMissing,
    FileTooLarge,
    GitError,
    InvalidPipeline,
    InvalidRef,
    InvalidRepoSpec,
    NotAPipeline,
    PathEscapes,
    RefNotFound,
    RepositoryNotFound,
    RunRejected,
    UnsupportedEntry,
)
from odin.controller.store.db import InvalidText, is_unavailable
from odin.controller.store.repo_records import RepoExists, RepoManagedBySettings, RepoNotFound

log = logging.getLogger(__name__)


_DESCRIPTIONS = {
    400: "Malformed request: invalid JSON, a wrong type, an unknown field, or a bad query parameter",
    401: "Missing, malformed, expired, revoked or otherwise invalid token",
    403: "Authenticated, but your role does not allow this",
    404: "No such resource",
    409: "Conflicts with the resource's current state",
    413: "Request body larger than the configured limit (ODIN_MAX_BODY_BYTES)",
    416: "The Range asked for starts past the end; Content-Range: bytes */<size> gives the size",
    422: "Well-formed, but cannot be done as asked (invalid pipeline, parameters, path...)",
    429: "Too many attempts; retry after the number of seconds in Retry-After",
    502: "The git remote refused Odin (credentials, certificate, missing repository)",
    503: "A dependency (database, git remote) is unavailable, this server does not schedule runs, or it is busy "
    "(Retry-After); retry later",
}


def errors(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI responses for a route: the codes given plus those every route can answer (400, 401, 503)."""
    return {
        code: ResponseSpec(data_container=ErrorBody, description=_DESCRIPTIONS[code], generate_examples=False)
        for code in sorted({400, 401, 503, *codes})
    }


def _body(status: int, detail: str, extra: dict[str, Any] | list[Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status_code": status, "detail": detail}
    if extra is not None:
        body["extra"] = extra
    return body


def error_response(
    status: int, detail: str, extra: dict[str, Any] | list[Any] | None = None, headers: dict[str, str] | None = None
) -> Response[dict[str, Any]]:
    return Response(_body(status, detail, extra), status_code=status, headers=headers)


def _git_status(e: GitError) -> int:
    if isinstance(e, EditConflict):
        return 409
    if isinstance(e, RefNotFound | FileMissing | NotAPipeline):
        return 404
    if isinstance(e, AmbiguousRef | InvalidRef):
        return 400
    if isinstance(e, PathEscapes | UnsupportedEntry | FileTooLarge):
        return 422
    if isinstance(e, AuthenticationFailed | CertificateRejected | RepositoryNotFound):
        return 502
    return 503 if e.transient else 502


def _artifact_answer(e: ArtifactError) -> ErrorAnswer:
    """Artifact errors the services did not put in context themselves: missing is 404, a store that cannot be
    reached 503 (retry), anything else (bytes that do not match their digest) 502: the store let us down."""
    if isinstance(e, ArtifactNotFound):
        return ErrorAnswer(404, e.message)
    if isinstance(e, ArtifactStoreUnavailable):
        return ErrorAnswer(503, f"the artifact store is unavailable: {e.message}", headers={"Retry-After": "10"})
    return ErrorAnswer(502, f"the artifact store: {e.message}")


def _problems(problems: Any) -> list[dict[str, Any]]:
    return [p.to_dict() for p in problems]


_SIMPLE: dict[type[Exception], int] = {
    InvalidRequest: 400,
    NotFound: 404,
    PipelineMissing: 404,
    UserNotFound: 404,
    TokenNotFound: 404,
    UserExists: 409,
    RepoNotFound: 404,
    RepoExists: 409,
    RepoManagedBySettings: 409,
    InvalidRepoSpec: 422,
    LastAdmin: 409,
    WeakPassword: 422,
    InvalidUsername: 422,
}


@dataclass(frozen=True, slots=True)
class ErrorAnswer:
    """The HTTP answer to a domain error (not a task's `odin.controller.vocabulary.Failure` kind)."""

    status: int
    detail: str
    extra: dict[str, Any] | list[Any] | None = None
    headers: dict[str, str] | None = None


def classify(e: Exception) -> ErrorAnswer | None:
    """The answer for a domain error (HTTP routes and WebSocket commands alike); None for anything unexpected."""
    if isinstance(e, RunRejected):
        problems = {"problems": _problems(e.problems)} if isinstance(e, InvalidPipeline) else None
        return ErrorAnswer(e.status, e.message, problems)
    if isinstance(e, GitError):
        status = _git_status(e)
        return ErrorAnswer(status, e.message, headers={"Retry-After": "10"} if status == 503 else None)
    if is_unavailable(e):
        # Wherever it surfaces (a route's query, the login, an API token check in the middleware): same answer.
        return ErrorAnswer(503, "the database is unavailable; try again shortly", headers={"Retry-After": "5"})
    if isinstance(e, InvalidText):
        return ErrorAnswer(400, str(e))
    if isinstance(e, RangeNotSatisfiable):
        return ErrorAnswer(416, str(e), headers={"Content-Range": f"bytes */{e.size}"})
    if isinstance(e, ArtifactError):
        return _artifact_answer(e)
    if isinstance(e, NoScheduler):
        return ErrorAnswer(503, str(e))
    if isinstance(e, ValidationBusy):
        return ErrorAnswer(503, str(e), headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    if isinstance(e, InvalidContent):
        return ErrorAnswer(422, e.message, {"problems": _problems(e.problems)})
    if isinstance(e, HTTPException):  # Litestar's own (validation, auth, 404, 405, 413...): keep their answer
        extra = e.extra if isinstance(e.extra, dict | list) and e.extra else None
        detail = e.detail
        if e.status_code == 400 and _caused_by(e, msgspec.ValidationError) and isinstance(extra, list):
            detail = _invalid_input(extra) or detail  # well-formed JSON whose content does not fit
        elif e.status_code == 400 and _caused_by(e, msgspec.DecodeError) and "JSON" not in detail:
            detail = f"the request body is not valid JSON ({detail})"
        return ErrorAnswer(e.status_code, detail, extra, e.headers)
    for kind, status in _SIMPLE.items():
        if isinstance(e, kind):
            return ErrorAnswer(status, str(e))
    return None


_UNKNOWN_FIELD = re.compile(r"Object contains unknown field `(?P<name>[^`]*)`(?: - at `\$(?P<at>[^`]*)`)?")
_MISSING_FIELD = re.compile(r"Object missing required field `(?P<name>[^`]*)`(?: - at `\$(?P<at>[^`]*)`)?")


def _invalid_input(problems: list[Any]) -> str:
    """One line naming each field at fault, from Litestar's validation errors (`{message, key, source}` each, from
    msgspec): `unknown field "foo"` rather than Litestar's "Validation failed for POST /v1/runs". A client that
    reads only `detail` learns what to change; `extra` keeps the raw list."""
    said: list[str] = []
    for problem in problems:
        if not isinstance(problem, dict) or not isinstance(problem.get("message"), str):
            continue
        message, key, source = problem["message"], problem.get("key"), problem.get("source")
        where = "query parameter" if source == "query" else "header" if source == "header" else "field"
        if found := _UNKNOWN_FIELD.fullmatch(message):
            said.append(f'unknown field "{found["name"]}"' + (f" in {found['at'].lstrip('.')}" if found["at"] else ""))
        elif found := _MISSING_FIELD.fullmatch(message):
            said.append(
                f'missing {where} "{found["name"]}"' + (f" in {found['at'].lstrip('.')}" if found["at"] else "")
            )
        elif key and key != "data":
            said.append(f'{where} "{key}": {message}')
        else:
            said.append(f"the request body: {message}")
    return "; ".join(said)


def _caused_by(e: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = e
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def handle(request: Request[Any, Any, Any], e: Exception) -> Response[dict[str, Any]]:
    """The one exception handler: domain errors by `classify`, anything else a logged 500 that says nothing."""
    failure = classify(e)
    if failure is None:
        log.exception("%s %s failed unexpectedly", request.method, request.url.path)
        return error_response(500, "internal error; the server log has the details")
    if failure.status >= 500:
        log.warning("%s %s: %d %s", request.method, request.url.path, failure.status, failure.detail)
    headers = failure.headers
    if failure.status == 401 and not any(k.lower() == "www-authenticate" for k in headers or {}):
        headers = {**(headers or {}), "WWW-Authenticate": bearer_challenge()}  # RFC 9110: every 401 has one
    return error_response(failure.status, failure.detail, failure.extra, headers)


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {Exception: handle}
