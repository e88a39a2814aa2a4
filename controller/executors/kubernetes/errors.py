"""The Kubernetes adapter's own error tree: API failures translated once, into what a task status needs.

    KubeApiError                 a call failed for good; carries `reason`, `failure` (USER/INFRA/PERMANENT), `status`
     ├── NotFound                404: the object, its namespace, or the resource itself (a CRD not installed)
     ├── AlreadyExists           409 on create: the caller adopts the existing object
     ├── Forbidden               403: RBAC does not allow it (PERMANENT: retrying cannot grant a permission), or
     │                           admission refused a pod naming a missing ServiceAccount (`ServiceAccountNotFound`)
     ├── QuotaExceeded           403 "exceeded quota" (or not counted yet): a ResourceQuota is full for now (INFRA:
     │                           the submitter waits and tries again, as a slot frees when another pod ends)
     ├── Invalid                 400/422: the apiserver rejected the object (PERMANENT)
     ├── Expired                 410: a watch's resourceVersion is too old; list again
     └── Unavailable             429/5xx/connection failures that outlasted the retry deadline (INFRA)

Why a tree of our own: the engine knows nothing of Kubernetes, and the executor must turn every failure into an
observation with a reason a user can act on. Messages come from the apiserver's `Status.message` (never the HTTP
headers, which may carry tokens).
"""

from __future__ import annotations

import json
from typing import Any

from odin.controller.vocabulary import Failure


class KubeApiError(Exception):
    """A Kubernetes API call that failed for good."""

    default_reason = "ApiError"
    default_failure = Failure.INFRA

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        failure: Failure | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason or self.default_reason
        self.failure = failure or self.default_failure


class NotFound(KubeApiError):
    default_reason = "NotFound"
    default_failure = Failure.PERMANENT


class AlreadyExists(KubeApiError):
    default_reason = "AlreadyExists"


class Forbidden(KubeApiError):
    default_reason = "Forbidden"
    default_failure = Failure.PERMANENT


class QuotaExceeded(KubeApiError):
    """A create refused because a ResourceQuota is used up: routine, and temporary (unlike an RBAC denial)."""

    default_reason = "QuotaExceeded"
    default_failure = Failure.INFRA


class Invalid(KubeApiError):
    default_reason = "Invalid"
    default_failure = Failure.PERMANENT


class Expired(KubeApiError):
    default_reason = "Expired"


class Unavailable(KubeApiError):
    default_reason = "ApiUnavailable"
    default_failure = Failure.INFRA


RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def status_message(body: str | bytes | None, fallback: str) -> str:
    """The `message` of a `metav1.Status` body, or `fallback` when the body is not one."""
    if not body:
        return fallback
    try:
        data: Any = json.loads(body)
    except (ValueError, TypeError):
        return fallback
    if isinstance(data, dict) and isinstance(data.get("message"), str) and data["message"]:
        return str(data["message"])
    return fallback


def status_reason(body: str | bytes | None) -> str | None:
    """The `reason` of a `metav1.Status` body (`AlreadyExists`, `Conflict`, ...), if any."""
    if not body:
        return None
    try:
        data: Any = json.loads(body)
    except (ValueError, TypeError):
        return None
    reason = data.get("reason") if isinstance(data, dict) else None
    return reason if isinstance(reason, str) and reason else None


# What kube-apiserver's admission plugins write into a 403's message (plugin/pkg/admission/resourcequota and
# serviceaccount): `pods "x" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=1, limited: pods=1`,
# and `pods "x" is forbidden: error looking up service account ns/name: serviceaccount "name" not found`. A quota
# whose usage the quota controller has not counted yet ("status unknown for quota", just after it is created) is a
# wait too; a "failed quota" (a quota that demands limits the pod lacks) is a permanent mistake.
_QUOTA_WAITS = ("exceeded quota: ", "status unknown for quota: ")
_SERVICE_ACCOUNT_MISSING = "error looking up service account "


def _forbidden(text: str, message: str, status: int) -> KubeApiError:
    """A 403, told apart by what admission said: a quota used up, a missing ServiceAccount, or RBAC."""
    if any(wait in message for wait in _QUOTA_WAITS):
        return QuotaExceeded(text, status=status)
    if _SERVICE_ACCOUNT_MISSING in message:
        return Forbidden(text, status=status, reason="ServiceAccountNotFound")
    return Forbidden(text, status=status)


def translate(status: int | None, body: str | bytes | None, what: str) -> KubeApiError:
    """A final (non-retried) API answer as an error of the tree; `what` says what was attempted."""
    message = status_message(body, f"HTTP {status}")
    text = f"{what}: {message}"
    if status == 404:
        return NotFound(text, status=status)
    if status == 409:
        if status_reason(body) == "AlreadyExists":
            return AlreadyExists(text, status=status)
        return KubeApiError(text, status=status, reason="Conflict", failure=Failure.INFRA)
    if status == 403:
        return _forbidden(text, message, status)
    if status in (400, 422):
        return Invalid(text, status=status, reason="Invalid" if status == 422 else "BadRequest")
    if status == 410:
        return Expired(text, status=status)
    if status == 401:
        return KubeApiError(text, status=status, reason="Unauthorized", failure=Failure.INFRA)
    if status in RETRYABLE_STATUSES:
        return Unavailable(text, status=status, reason="TooManyRequests" if status == 429 else "ApiUnavailable")
    return KubeApiError(text, status=status)
