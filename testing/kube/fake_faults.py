"""Request recording and fault injection for the fake Kubernetes API server.

Why both live here: a test that injects a fault almost always asserts on what the client did about it (how many
retries, whether it backed off, whether it relisted), so the same parsed request description (``RequestInfo``) is
what fault predicates receive and what the log records.

Faults are evaluated in the order they were added, before the request reaches the store; the first active fault whose
predicate matches is applied (its latency, then its status).  A fault with ``status=None`` only adds latency and lets
the request through.  Recording happens after the response status is known, so ``RecordedRequest.status`` is the
status the client saw (200 for a watch that was opened, whatever happened in the stream later).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

_REASONS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def reason_for(code: int) -> str:
    """The ``Status.reason`` the apiserver uses for an HTTP code (``Unknown`` for codes it has no name for)."""
    return _REASONS.get(code, "Unknown")


@dataclass(frozen=True)
class RequestInfo:
    """One parsed API request, as fault predicates and the request log see it.

    ``verb`` follows the apiserver's authorization verbs: ``get``, ``list``, ``watch``, ``create``, ``update``,
    ``patch``, ``delete``, ``deletecollection``; non-resource requests (discovery) have verb ``get`` and
    ``resource=None``.  ``group`` is ``""`` for the core group.
    """

    method: str
    path: str
    query: Mapping[str, str]
    verb: str
    group: str | None = None
    version: str | None = None
    resource: str | None = None
    subresource: str | None = None
    namespace: str | None = None
    name: str | None = None
    content_type: str | None = None

    @property
    def watch(self) -> bool:
        return self.verb == "watch" or (self.subresource == "log" and self.query.get("follow") == "true")


@dataclass(frozen=True)
class RecordedRequest(RequestInfo):
    """A request the server answered: ``status`` is the HTTP status sent, ``time`` the wall-clock arrival
    (``time.time()``), ``duration`` seconds until the response headers went out."""

    status: int = 0
    time: float = 0.0
    duration: float = 0.0


def _matches(req: RequestInfo, criteria: Mapping[str, Any]) -> bool:
    return all(value is None or getattr(req, key) == value for key, value in criteria.items())


class RequestLog:
    """Thread-safe log of every request the fake answered (``server.requests``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RecordedRequest] = []

    def append(self, request: RecordedRequest) -> None:
        with self._lock:
            self._items.append(request)

    def snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._items)

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __getitem__(self, index: int) -> RecordedRequest:
        with self._lock:
            return self._items[index]

    def reset(self) -> None:
        with self._lock:
            self._items.clear()

    def filter(
        self,
        *,
        method: str | None = None,
        verb: str | None = None,
        resource: str | None = None,
        subresource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        group: str | None = None,
        status: int | None = None,
        path: str | None = None,
        predicate: Callable[[RecordedRequest], bool] | None = None,
    ) -> list[RecordedRequest]:
        """Recorded requests matching every criterion given (``None`` = any); ``path`` is a prefix match."""
        criteria = {
            "method": method,
            "verb": verb,
            "resource": resource,
            "subresource": subresource,
            "namespace": namespace,
            "name": name,
            "group": group,
            "status": status,
        }
        return [
            r
            for r in self.snapshot()
            if _matches(r, criteria)
            and (path is None or r.path.startswith(path))
            and (predicate is None or predicate(r))
        ]

    def count(self, **criteria: Any) -> int:
        """``len(filter(**criteria))``."""
        return len(self.filter(**criteria))

    def per_second(self, **criteria: Any) -> list[int]:
        """Requests matching ``criteria`` (as ``filter``) per wall-clock second, from the first one's second to the
        last one's: what an apiserver's ``apiserver_request_total`` rate would show for this client."""
        times = sorted(r.time for r in self.filter(**criteria))
        if not times:
            return []
        first = int(times[0])
        counts = [0] * (int(times[-1]) - first + 1)
        for t in times:
            counts[int(t) - first] += 1
        return counts

    def max_in_window(self, window: float = 1.0, **criteria: Any) -> int:
        """The most requests matching ``criteria`` that arrived within any ``window`` seconds (a sliding window,
        so a burst split across two wall-clock seconds is still seen whole)."""
        return most_within([r.time for r in self.filter(**criteria)], window)


@dataclass
class Fault:
    """One injected fault.  ``hits`` counts the requests it was applied to; it stops applying after ``times`` hits
    or once ``until`` (``time.monotonic()``) has passed, whichever comes first."""

    match: Callable[[RequestInfo], bool]
    status: int | None
    times: int | None
    until: float | None
    retry_after: int | None
    delay: float
    message: str | None
    reason: str | None
    drop_connection: bool
    hits: int = 0
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def exhausted(self) -> bool:
        if self.times is not None and self.hits >= self.times:
            return True
        return self.until is not None and time.monotonic() >= self.until


class Faults:
    """Fault injection directed by the test (``server.faults``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(
        self,
        status: int | None = None,
        *,
        match: Callable[[RequestInfo], bool] | None = None,
        method: str | None = None,
        verb: str | None = None,
        resource: str | None = None,
        subresource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        times: int | None = None,
        duration: float | None = None,
        retry_after: int | None = None,
        delay: float = 0.0,
        message: str | None = None,
        reason: str | None = None,
        drop_connection: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Inject a fault for requests matching ``match`` and every keyword criterion given.

        ``status``: the HTTP status to answer with (a proper ``Status`` body is sent); ``None`` = let the request
        through after ``delay`` seconds.  ``times``: apply at most this many times; ``duration``: apply for this many
        seconds from now.  ``retry_after``: send ``Retry-After`` (and ``details.retryAfterSeconds``).
        ``drop_connection``: close the TCP connection without answering.
        """
        criteria = {
            "method": method,
            "verb": verb,
            "resource": resource,
            "subresource": subresource,
            "namespace": namespace,
            "name": name,
        }

        def predicate(req: RequestInfo) -> bool:
            return _matches(req, criteria) and (match is None or match(req))

        fault = Fault(
            match=predicate,
            status=status,
            times=times,
            until=None if duration is None else time.monotonic() + duration,
            retry_after=retry_after,
            delay=delay,
            message=message,
            reason=reason,
            drop_connection=drop_connection,
            headers=dict(headers or {}),
        )
        with self._lock:
            self._faults.append(fault)
        return fault

    def throttle(self, *, times: int | None = 1, retry_after: int = 1, **criteria: Any) -> Fault:
        """429 TooManyRequests with ``Retry-After``, as API Priority and Fairness answers an overloaded server."""
        return self.add(429, times=times, retry_after=retry_after, **criteria)

    def server_errors(
        self, *, status: int = 500, duration: float | None = None, times: int | None = None, **criteria: Any
    ) -> Fault:
        """5xx answers for ``duration`` seconds or ``times`` requests."""
        return self.add(status, duration=duration, times=times, **criteria)

    def forbid_namespace(self, namespace: str, **criteria: Any) -> Fault:
        """403 Forbidden for every request into ``namespace`` (RBAC missing there)."""
        return self.add(403, namespace=namespace, **criteria)

    def latency(self, seconds: float, **criteria: Any) -> Fault:
        """Delay matching requests by ``seconds`` and then serve them normally."""
        return self.add(None, delay=seconds, **criteria)

    def remove(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def active(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if not f.exhausted]

    def take(self, req: RequestInfo) -> Fault | None:
        """The first active fault matching ``req``, counted as hit (server internal)."""
        with self._lock:
            for fault in self._faults:
                if not fault.exhausted and fault.match(req):
                    fault.hits += 1
                    return fault
        return None


def most_within(times: list[float], window: float) -> int:
    """The most of ``times`` that fall within any ``window`` seconds (a sliding window)."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best
