"""Every request Odin makes to the Kubernetes API, through the official client, as plain JSON dicts.

Why dicts (`_preload_content=False` and `json.loads`) rather than the client's models: custom resources (PyTorchJob,
TrainJob, ...) only exist as dicts, so one representation serves every kind and every handler reads status the same
way; lists and watch events also decode about twice as fast. Requests still go through the official typed APIs
(`CoreV1Api`, `BatchV1Api`, `CustomObjectsApi`), so paths, query parameters and bodies are the client's own.

Why the retry loop lives here and not in urllib3: urllib3 retries 429/503 only for GET/PUT/DELETE and sleeps inside
the client, while POST and PATCH surface the raw 429. `config.py` turns urllib3's status retries off, and `call()`
retries every verb the same way: 429 honours `Retry-After` (capped), 5xx and dropped connections back off with
jitter, all within one deadline, after which the failure is an INFRA `Unavailable` the engine retries later. Retrying
a create is safe because names are deterministic: a create that did happen answers 409 the second time, and the
executor adopts the object.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import kubernetes.client
import urllib3
from kubernetes.client.exceptions import ApiException

from odin.controller.backoff import Backoff
from odin.controller.executors.kubernetes.errors import (
    RETRYABLE_STATUSES,
    KubeApiError,
    NotFound,
    Unavailable,
    translate,
)
from odin.controller.executors.kubernetes.ratelimit import RateLimiterStopped, TokenBucket

log = logging.getLogger(__name__)

T = TypeVar("T")
Json = dict[str, Any]

REQUEST_TIMEOUT = (10.0, 60.0)  # (connect, read) seconds for ordinary requests


@dataclass(frozen=True, slots=True)
class Kind:
    """A REST resource: where it lives and what it is called."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.group, self.version, self.plural)

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}/{self.version}" if self.group else f"{self.plural}/{self.version}"


PODS = Kind("", "v1", "pods", "Pod")
CONFIGMAPS = Kind("", "v1", "configmaps", "ConfigMap")
EVENTS = Kind("", "v1", "events", "Event")
JOBS = Kind("batch", "v1", "jobs", "Job")

# Built-in kinds go through their typed API (method suffix); everything else is a custom object.
_TYPED: dict[tuple[str, str, str], tuple[str, str]] = {
    PODS.key: ("core", "pod"),
    CONFIGMAPS.key: ("core", "config_map"),
    EVENTS.key: ("core", "event"),
    JOBS.key: ("batch", "job"),
}


# First backoff 0.25 s, doubled each time up to 15 s, jittered between half and all of it; a Retry-After longer than
# a minute is capped.
API_BACKOFF = Backoff(initial=0.25, maximum=15.0, max_retry_after=60.0)


@dataclass(frozen=True, slots=True)
class ApiRetry:
    """How long and how often a failing call is retried (429, 5xx, dropped connections).

    Named apart from the engine's task `RetryPolicy`: this one retries one HTTP call within seconds, that one reruns
    a task attempt within minutes."""

    deadline: float = 120.0  # seconds from the first try; then the call fails (INFRA)
    backoff: Backoff = API_BACKOFF


def _retry_after(e: ApiException) -> float | None:
    headers = e.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _json(response: Any) -> Json:
    data = response.data
    response.release_conn()
    decoded: Any = json.loads(data) if data else {}
    if not isinstance(decoded, dict):
        raise KubeApiError(f"the API answered {type(decoded).__name__}, not an object")
    return decoded


def iter_lines(response: Any) -> Iterator[bytes]:
    """The lines of a streamed (chunked) response as they arrive; ends when the server ends the stream."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                break
            line, buffer = buffer[:newline], buffer[newline + 1 :]
            yield line
    if buffer:
        yield buffer


class KubeApi:
    """Typed access to the few verbs Odin uses, returning JSON dicts and raising `KubeApiError`s."""

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        *,
        retry: ApiRetry | None = None,
        stopping: threading.Event | None = None,
        limiter: TokenBucket | None = None,
    ) -> None:
        self.api_client = api_client
        self.retry = retry or ApiRetry()
        self.stopping = stopping or threading.Event()
        # Every request, retries included, takes a token first (`ratelimit.py`); none given: no limit.
        self.limiter = limiter or TokenBucket(0.0, 1, stopping=self.stopping)
        # Typed as Any on purpose: v37's signatures demand model objects, while Odin sends and receives JSON dicts.
        self.core: Any = kubernetes.client.CoreV1Api(api_client)
        self.batch: Any = kubernetes.client.BatchV1Api(api_client)
        self.custom: Any = kubernetes.client.CustomObjectsApi(api_client)

    # -- retries ------------------------------------------------------------------------------------------------
    def call(self, what: str, fn: Callable[[], T], *, retry: bool = True) -> T:
        """Run one request; retry 429/5xx/connection failures until the policy's deadline. `what` names the
        request in errors and logs ("create Pod ns/name")."""
        started = time.monotonic()
        attempt = 0
        while True:
            self._take_token(what)
            try:
                return fn()
            except ApiException as e:
                if not retry or e.status not in RETRYABLE_STATUSES:
                    raise translate(e.status, e.body, what) from e
                error: KubeApiError = translate(e.status, e.body, what)
                # APF's Retry-After is the apiserver's own schedule for this client: wait exactly that (capped).
                retry_after = _retry_after(e) if e.status == 429 else None
                backoff = self.retry.backoff
                delay = backoff.delay(attempt) if retry_after is None else backoff.retry_after(retry_after)
                cause: Exception = e
            except (urllib3.exceptions.HTTPError, OSError) as e:
                if not retry:
                    raise Unavailable(f"{what}: {e}", reason="ApiUnreachable") from e
                error = Unavailable(f"{what}: cannot reach the Kubernetes API ({e})", reason="ApiUnreachable")
                delay = self.retry.backoff.delay(attempt)
                cause = e
            elapsed = time.monotonic() - started
            if elapsed + delay > self.retry.deadline:
                raise Unavailable(
                    f"{error.message} (still failing after {elapsed:.0f}s of retries)",
                    status=error.status,
                    reason=error.reason,
                ) from cause
            if attempt == 0 or attempt % 10 == 0:
                log.warning("%s failed (%s); retrying in %.1fs", what, error.message, delay)
            if self.stopping.wait(delay):
                raise Unavailable(f"{what}: the executor is shutting down", reason="Shutdown") from cause
            attempt += 1

    def _take_token(self, what: str) -> None:
        try:
            self.limiter.acquire()
        except RateLimiterStopped as e:
            raise Unavailable(f"{what}: the executor is shutting down", reason="Shutdown") from e

    # -- verbs --------------------------------------------------------------------------------------------------
    def _typed(self, kind: Kind) -> tuple[Any, str] | None:
        entry = _TYPED.get(kind.key)
        if entry is None:
            return None
        api_name, suffix = entry
        return (self.core if api_name == "core" else self.batch), suffix

    def create(self, kind: Kind, namespace: str, body: Json) -> Json:
        name = body.get("metadata", {}).get("name", "")
        typed = self._typed(kind)

        def request() -> Json:
            if typed is not None:
                api, suffix = typed
                fn = getattr(api, f"create_namespaced_{suffix}")
                return _json(fn(namespace, body, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))
            return _json(
                self.custom.create_namespaced_custom_object(
                    kind.group,
                    kind.version,
                    namespace,
                    kind.plural,
                    body,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            )

        return self.call(f"create {kind.kind} {namespace}/{name}", request)

    def get(self, kind: Kind, namespace: str, name: str) -> Json:
        typed = self._typed(kind)

        def request() -> Json:
            if typed is not None:
                api, suffix = typed
                fn = getattr(api, f"read_namespaced_{suffix}")
                return _json(fn(name, namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT))
            return _json(
                self.custom.get_namespaced_custom_object(
                    kind.group,
                    kind.version,
                    namespace,
                    kind.plural,
                    name,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            )

        return self.call(f"get {kind.kind} {namespace}/{name}", request)

    def list_objects(
        self,
        kind: Kind,
        namespace: str,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = 500,
        retry: bool = True,
    ) -> tuple[list[Json], str]:
        """All matching objects (paginated) and the list's resourceVersion (to watch from)."""
        typed = self._typed(kind)
        items: list[Json] = []
        token: str | None = None
        version = ""
        while True:
            kwargs: dict[str, Any] = {
                "limit": page_size,
                "_preload_content": False,
                "_request_timeout": REQUEST_TIMEOUT,
            }
            if label_selector:
                kwargs["label_selector"] = label_selector
            if field_selector:
                kwargs["field_selector"] = field_selector
            if token:
                kwargs["_continue"] = token

            def request(kw: dict[str, Any] = kwargs) -> Json:
                if typed is not None:
                    api, suffix = typed
                    return _json(getattr(api, f"list_namespaced_{suffix}")(namespace, **kw))
                return _json(
                    self.custom.list_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, **kw)
                )

            page = self.call(f"list {kind.plural} in {namespace}", request, retry=retry)
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            version = str(meta.get("resourceVersion") or version)
            token = meta.get("continue") or None
            if not token:
                return items, version

    def list_nodes(self, *, timeout: float, page_size: int = 500) -> list[Json]:
        """Every Node of the cluster (admission's inventory), within `timeout` seconds in all and never retried:
        a run's creation waits on this, so a slow or failing API is the caller's cue to admit, not to wait."""
        deadline = time.monotonic() + timeout
        items: list[Json] = []
        token: str | None = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Unavailable(f"list nodes: no answer within {timeout:g}s", reason="Timeout")
            kwargs: dict[str, Any] = {"limit": page_size, "_preload_content": False, "_request_timeout": (left, left)}
            if token:
                kwargs["_continue"] = token

            def request(kw: dict[str, Any] = kwargs) -> Json:
                return _json(self.core.list_node(**kw))

            page = self.call("list nodes", request, retry=False)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue") or None
            if not token:
                return items

    def delete(self, kind: Kind, namespace: str, name: str, *, propagation: str = "Background") -> bool:
        """Delete one object and its dependents; False if it was already gone."""
        typed = self._typed(kind)

        def request() -> None:
            if typed is not None:
                api, suffix = typed
                fn = getattr(api, f"delete_namespaced_{suffix}")
                response = fn(
                    name,
                    namespace,
                    propagation_policy=propagation,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            else:
                response = self.custom.delete_namespaced_custom_object(
                    kind.group,
                    kind.version,
                    namespace,
                    kind.plural,
                    name,
                    propagation_policy=propagation,
                    _preload_content=False,
                    _request_timeout=REQUEST_TIMEOUT,
                )
            response.release_conn()

        try:
            self.call(f"delete {kind.kind} {namespace}/{name}", request)
        except NotFound:
            return False
        return True

    def delete_collection(
        self, kind: Kind, namespace: str, *, label_selector: str, propagation: str = "Background"
    ) -> None:
        """Delete every object of `kind` in `namespace` matching `label_selector`, in one request (`deletecollection`
        verb): how clean-up removes a run's objects, or a batch of ended attempts, without a DELETE each. The server
        deletes them one by one as if each had been deleted alone (watchers see each go; propagation applies)."""
        typed = self._typed(kind)

        def request() -> None:
            kwargs: dict[str, Any] = {
                "label_selector": label_selector,
                "propagation_policy": propagation,
                "_preload_content": False,
                "_request_timeout": REQUEST_TIMEOUT,
            }
            if typed is not None:
                api, suffix = typed
                response = getattr(api, f"delete_collection_namespaced_{suffix}")(namespace, **kwargs)
            else:
                response = self.custom.delete_collection_namespaced_custom_object(
                    kind.group, kind.version, namespace, kind.plural, **kwargs
                )
            response.release_conn()

        self.call(f"delete {kind.plural} in {namespace} ({label_selector})", request)

    def watch(self, kind: Kind, namespace: str, *, label_selector: str, resource_version: str, timeout: int) -> Any:
        """Open one watch stream (no retries: the watch manager decides what a failure means). The caller
        iterates `iter_lines(response)` and must `close()` the response."""
        typed = self._typed(kind)
        kwargs: dict[str, Any] = {
            "watch": True,
            "label_selector": label_selector,
            "resource_version": resource_version,
            "timeout_seconds": timeout,
            "allow_watch_bookmarks": True,
            "_preload_content": False,
            "_request_timeout": (REQUEST_TIMEOUT[0], timeout + 30),
        }
        self._take_token(f"watch {kind.plural} in {namespace}")
        try:
            if typed is not None:
                api, suffix = typed
                return getattr(api, f"list_namespaced_{suffix}")(namespace, **kwargs)
            return self.custom.list_namespaced_custom_object(kind.group, kind.version, namespace, kind.plural, **kwargs)
        except ApiException as e:
            raise translate(e.status, e.body, f"watch {kind.plural} in {namespace}") from e

    def pod_log(
        self,
        namespace: str,
        pod: str,
        *,
        container: str | None = None,
        follow: bool = False,
        tail: int | None = None,
        retry: bool = True,
    ) -> Any:
        """The raw log response of one container (stream it with `iter_lines`; close it when done)."""
        kwargs: dict[str, Any] = {"follow": follow, "_preload_content": False}
        if container:
            kwargs["container"] = container
        if tail is not None:
            kwargs["tail_lines"] = tail
        if not follow:
            kwargs["_request_timeout"] = REQUEST_TIMEOUT
        return self.call(
            f"read log of pod {namespace}/{pod}",
            lambda: self.core.read_namespaced_pod_log(pod, namespace, **kwargs),
            retry=retry,
        )

    def events_for(self, namespace: str, name: str, *, retry: bool = True) -> list[Json]:
        """Core events about the object called `name` in `namespace`, oldest first."""
        items, _ = self.list_objects(EVENTS, namespace, field_selector=f"involvedObject.name={name}", retry=retry)
        return items
