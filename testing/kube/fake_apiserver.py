"""An HTTP-level fake Kubernetes API server for tests, spoken to by the official ``kubernetes`` client unchanged.

Why HTTP and not mocks: Odin's Kubernetes executor talks to the cluster only through the official client
(``CoreV1Api``, ``BatchV1Api``, ``CustomObjectsApi``, ``CoordinationV1Api``, ``kubernetes.watch.Watch``).  Mocking
that client tests our assumptions about it, not the client; a fake *server* lets the real client build real URLs,
query strings, patch content types and DELETE bodies, and parse real JSON (v37 validates responses with pydantic, so
a response missing a required field fails the test exactly as a real apiserver's never would).  Every behaviour that
matters to a controller is modelled on the real apiserver: ``Status`` error bodies, a single global resourceVersion,
watch replay from a resourceVersion, ``410 Gone`` in-stream when it is too old, chunked watch streams, bookmarks,
pagination, label/field selectors, garbage collection, and ``pods/log`` with ``follow``.

Usage::

    with FakeApiServer() as server, server.api_client() as api_client:
        core = kubernetes.client.CoreV1Api(api_client)
        core.create_namespaced_pod("default", pod)
        server.faults.throttle(times=2, retry_after=1, verb="create", resource="pods")
        assert server.requests.count(verb="create", resource="pods") == 1

Fidelity and simplifications (see also ``fake_store``, ``fake_patch``, ``fake_controllers``):

* watch: ``?watch=true`` on any list path (namespaced or all-namespaces), legacy ``/watch/`` prefixes too.
  No ``resourceVersion`` (or ``"0"``) sends the current objects as ``ADDED`` first, like the apiserver; ``N`` replays
  every change after ``N``.  A ``resourceVersion`` older than the retained history gets an ``ERROR`` event carrying a
  410 ``Expired`` ``Status`` on an HTTP 200 stream, then the stream ends -- the official ``Watch.stream`` retries
  once from the same version and then raises ``ApiException(status=410)`` (immediately when ``timeout_seconds`` is
  given).  Selectors apply to events with the watch cache's semantics: an object that stops matching arrives as
  ``DELETED``, one that starts matching as ``ADDED``.  ``timeoutSeconds`` ends the stream cleanly; ``BOOKMARK``
  events are sent every ``bookmark_interval`` seconds (or on ``send_bookmarks()``) when ``allowWatchBookmarks=true``,
  and after the initial events when ``sendInitialEvents=true``.  Idle watches block on a condition variable.
* ``pods/{name}/log``: ``container`` (required when the pod has several), ``follow``, ``tailLines``, ``timestamps``,
  ``sinceSeconds``, ``limitBytes``, ``previous``.  As on a real cluster, a pod not bound to a node returns an empty
  body, and a bound pod whose container has not started returns 400 ``... is waiting to start: ContainerCreating``.
  ``follow=true`` streams until the container terminates, the pod reaches a terminal phase or is deleted.  Log text
  is set by the test (``set_log``/``append_log``, or ``Kubelet.set_log``).
* discovery: ``/version``, ``/api``, ``/api/v1``, ``/apis``, ``/apis/{group}``, ``/apis/{group}/{version}``.
* lists: ``resourceVersionMatch`` (``NotOlderThan``/``Exact``) with a version older than the retained history gets 410
  ``Expired``, one the server has not reached 504; within the history the latest state is served.
* custom objects of the kinds whose CRDs ship in ``crds/`` (or come from ``register_crd``) are pruned and validated
  against the CRD's structural schema, ``fieldValidation`` honoured (``fake_schema``).
* not modelled: authentication/authorization (everything is allowed unless a fault says otherwise), most admission,
  ``exec``/``attach``/``portforward``/``proxy``, ``scale`` subresources, protobuf/CBOR, table output, HTTP/2.

The controllers that act like kube-controller-manager and the Kubeflow operator run inside the fake, synchronously,
as store listeners (``server.controllers.job`` / ``.kubeflow`` switch them) -- see ``fake_controllers``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import select
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import kubernetes.client
import yaml

from odin.testing.kube.crd_schemas import crd_versions, structural_schemas
from odin.testing.kube.fake_controllers import JobController, KubeflowController
from odin.testing.kube.fake_faults import Fault, Faults, RecordedRequest, RequestInfo, RequestLog, reason_for
from odin.testing.kube.fake_resources import BUILTIN_KINDS, JOBS, NAMESPACES, NODES, PODS, ResourceKind, custom_kind
from odin.testing.kube.fake_selectors import FieldSelector, LabelSelector, SelectorError
from odin.testing.kube.fake_store import (
    TERMINAL_POD_PHASES,
    ApiError,
    JsonObj,
    Store,
    StoredEvent,
    bad_request,
    expired,
    status_body,
    success_status,
)

__all__ = [
    "ApiError",
    "Controllers",
    "FakeApiServer",
    "Fault",
    "Faults",
    "RecordedRequest",
    "RequestInfo",
    "RequestLog",
    "ResourceKind",
    "custom_kind",
]

DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_JOB_ORPHAN_WARNING = (
    '299 - "child pods are preserved by default when jobs are deleted; set propagationPolicy=Background to remove '
    'them or set propagationPolicy=Orphan to suppress this warning"'
)
_FORBIDDEN_USER = "system:serviceaccount:odin-system:odin-controller"


class Controllers:
    """Switches for the simulated controllers (both on by default)."""

    def __init__(self, job: JobController, kubeflow: KubeflowController) -> None:
        self.job_controller = job
        self.kubeflow_controller = kubeflow

    @property
    def job(self) -> bool:
        return self.job_controller.enabled

    @job.setter
    def job(self, enabled: bool) -> None:
        self.job_controller.enabled = enabled

    @property
    def kubeflow(self) -> bool:
        return self.kubeflow_controller.enabled

    @kubeflow.setter
    def kubeflow(self, enabled: bool) -> None:
        self.kubeflow_controller.enabled = enabled


@dataclass
class _Route:
    kind: ResourceKind | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    discovery: tuple[str, ...] | None = None
    error: ApiError | None = None


@dataclass
class _WatchState:
    cursor: int
    generation: int
    deadline: float
    bookmarks: bool
    last_bookmark: float
    bookmark_generation: int


@dataclass
class _WatchStep:
    events: list[StoredEvent] = field(default_factory=list)
    bookmark_rv: int | None = None
    stop: str | None = None  # "end": finish the stream cleanly; "abort": cut the connection
    error: ApiError | None = None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True

    def __init__(self, address: tuple[str, int], api: FakeApiServer) -> None:
        self.api = api
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # Tracked here, in the accept loop, so that stop() sees every accepted connection (a handler thread that has
        # not run yet would otherwise miss the shutdown and block server_close()).
        with self.connections_lock:
            self.connections.add(request)
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle + delayed ACK add ~40 ms to
        # every keep-alive request.
        with contextlib.suppress(OSError):
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-response is normal (Watch.stop(), test teardown); anything else is a fake bug.
        exc = traceback.format_exc()
        if "ConnectionResetError" in exc or "BrokenPipeError" in exc or "ConnectionAbortedError" in exc:
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        self.server.api._handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve


class _Responder:
    """Writes one HTTP response (plain or chunked) and remembers what status went out."""

    def __init__(self, handler: _Handler, record: Callable[[int], None]) -> None:
        self.handler = handler
        self.status = 0
        self.started = False
        self.aborted = False
        self.recorded = False
        self._record = record

    def record(self, code: int) -> None:
        """Log the request *before* the client can see the answer, so a test that checks ``server.requests``
        right after a call never races the server thread."""
        if not self.recorded:
            self.recorded = True
            self._record(code)

    def _headers(self, code: int, headers: Mapping[str, str]) -> None:
        self.status = code
        self.started = True
        self.record(code)
        self.handler.send_response(code)
        for key, value in headers.items():
            self.handler.send_header(key, value)
        self.handler.end_headers()

    def send(self, code: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
        self._headers(code, {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})})
        if self.handler.command != "HEAD":
            self.write_raw(body)

    def send_json(self, code: int, obj: Any, headers: Mapping[str, str] | None = None) -> None:
        self.send(code, json.dumps(obj, separators=(",", ":")).encode(), "application/json", headers)

    def start_stream(self, content_type: str) -> None:
        self._headers(200, {"Content-Type": content_type, "Transfer-Encoding": "chunked", "Cache-Control": "no-cache"})

    def write_raw(self, data: bytes) -> bool:
        try:
            self.handler.wfile.write(data)
            return True
        except OSError:
            self.abort()
            return False

    def chunk(self, data: bytes) -> bool:
        if not data:
            return True
        return self.write_raw(b"%X\r\n%s\r\n" % (len(data), data))

    def end_stream(self) -> None:
        if not self.aborted:
            self.write_raw(b"0\r\n\r\n")

    def abort(self) -> None:
        """Drop the connection without finishing the response (what a network failure looks like)."""
        self.record(self.status if self.started else 0)
        self.aborted = True
        self.handler.close_connection = True
        with contextlib.suppress(OSError):
            self.handler.connection.shutdown(socket.SHUT_RDWR)

    def client_gone(self) -> bool:
        try:
            waiting = select.poll()  # not select(): it refuses descriptors numbered 1024 or more
            waiting.register(self.handler.connection.fileno(), select.POLLIN)
            if not waiting.poll(0):
                return False
            return bool(self.handler.connection.recv(1, socket.MSG_PEEK) == b"")
        except OSError:
            return True


def _event_line(event_type: str, obj: Mapping[str, Any]) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _labels(obj: Mapping[str, Any] | None) -> Mapping[str, str] | None:
    if obj is None:
        return None
    labels: Mapping[str, str] | None = (obj.get("metadata") or {}).get("labels")
    return labels


class FakeApiServer:
    """The fake apiserver: ``start()``/``stop()`` (or ``with``), then point the official client at ``configuration()``.

    ``history_limit``: watch events retained (older resourceVersions get 410).  ``bookmark_interval``: seconds between
    BOOKMARK events on watches that allow them.  ``watch_timeout``: server-side watch duration when the client sends
    no ``timeoutSeconds``.  ``job_controller``/``kubeflow_controller``: start the simulated controllers enabled.
    """

    def __init__(
        self,
        *,
        history_limit: int = 10_000,
        bookmark_interval: float = 60.0,
        watch_timeout: float = 1800.0,
        job_controller: bool = True,
        kubeflow_controller: bool = True,
        kinds: Iterable[ResourceKind] = (),
        namespaces: Iterable[str] = DEFAULT_NAMESPACES,
        host: str = "127.0.0.1",
        port: int = 0,
        git_version: str = "v1.33.0-odin-fake",
        validate_custom_objects: bool = True,
    ) -> None:
        self.store = Store(history_limit=history_limit)
        for kind in (*BUILTIN_KINDS, *kinds):
            self.store.register(kind)
        if validate_custom_objects:
            self.store.schema_loader = _packaged_crd_schema
        self.faults = Faults()
        self.requests = RequestLog()
        self.controllers = Controllers(JobController(self.store), KubeflowController(self.store))
        self.controllers.job = job_controller
        self.controllers.kubeflow = kubeflow_controller
        self.store.add_listener(self.controllers.job_controller)
        self.store.add_listener(self.controllers.kubeflow_controller)
        for namespace in namespaces:
            self.store.create(NAMESPACES, None, {"metadata": {"name": namespace}})
        self.bookmark_interval = bookmark_interval
        self.watch_timeout = watch_timeout
        self.git_version = git_version
        self._address = (host, port)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._watch_generation = 0
        self._abrupt_drop = False
        self._bookmark_generation = 0
        self._active_watches = 0

    # ---------------------------------------------------------------------------------------------- lifecycle
    def start(self) -> FakeApiServer:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer(self._address, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-apiserver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        with self.store.lock:
            self.store.changed.notify_all()
        httpd.shutdown()
        with httpd.connections_lock:
            connections = list(httpd.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        httpd.server_close()  # joins the handler threads
        if thread is not None:
            thread.join()
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the fake API server is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    def configuration(self) -> kubernetes.client.Configuration:
        """A client ``Configuration`` for this server: plain HTTP, no auth, environment proxies ignored."""
        config = kubernetes.client.Configuration(host=self.url)
        config.proxy = None  # the setter also stops the client from re-reading HTTP(S)_PROXY for this host
        config.no_proxy = "*"
        return config

    def api_client(self) -> kubernetes.client.ApiClient:
        """A new ``ApiClient`` for this server; close it (or use it as a context manager) when done."""
        return kubernetes.client.ApiClient(self.configuration())

    def write_kubeconfig(self, path: Path, *, namespace: str | None = None) -> Path:
        """Write a kubeconfig for this server to ``path`` (for code that loads one: a subprocess, a CLI) and return it.

        Plain HTTP and a token the fake never checks.  Clients that read it honour ``HTTP(S)_PROXY``/``NO_PROXY``
        from their environment, unlike ``configuration()``: give such a subprocess ``NO_PROXY=*`` (or 127.0.0.1).
        """
        context: dict[str, str] = {"cluster": "odin-fake", "user": "odin-fake"}
        if namespace is not None:
            context["namespace"] = namespace
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "odin-fake", "cluster": {"server": self.url}}],
            "users": [{"name": "odin-fake", "user": {"token": "not-checked"}}],
            "contexts": [{"name": "odin-fake", "context": context}],
            "current-context": "odin-fake",
        }
        path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML: any kubeconfig loader reads it
        return path

    # --------------------------------------------------------------------------------------------- test hooks
    def register_kind(self, kind: ResourceKind) -> ResourceKind:
        """Serve another resource kind (e.g. ``custom_kind("ray.io", "v1", "rayjobs", "RayJob")``)."""
        self.store.register(kind)
        return kind

    def register_custom_kind(
        self, group: str, version: str, plural: str, kind: str, *, namespaced: bool = True, status: bool = True
    ) -> ResourceKind:
        return self.register_kind(custom_kind(group, version, plural, kind, namespaced=namespaced, status=status))

    def register_crd(self, crd: Mapping[str, Any] | Path) -> list[ResourceKind]:
        """Serve the kinds of a CustomResourceDefinition (a parsed CRD, or its YAML file), each version validated
        against its ``openAPIV3Schema`` as a real apiserver does (``fake_schema``); returns the kinds registered."""
        document: Mapping[str, Any] = yaml.safe_load(crd.read_text()) if isinstance(crd, Path) else crd
        spec = document["spec"]
        names = spec["names"]
        registered = []
        for (api_version, _), schema in crd_versions(document).items():
            version = api_version.partition("/")[2]
            served: Mapping[str, Any] = next((v for v in spec.get("versions") or [] if v.get("name") == version), {})
            status = "status" in (served.get("subresources") or spec.get("subresources") or {})
            kind = custom_kind(
                spec["group"], version, names["plural"], names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced", status=status,
                short_names=tuple(names.get("shortNames") or ()),
            )  # fmt: skip
            self.store.register(kind, schema)
            registered.append(kind)
        return registered

    def kind(self, group: str, version: str, plural: str) -> ResourceKind:
        found = self.store.kind_for(group, version, plural)
        if found is None:
            raise KeyError(f"no such kind: {group}/{version} {plural}")
        return found

    def add_node(
        self,
        name: str,
        *,
        gpus: int = 0,
        labels: Mapping[str, str] | None = None,
        cpu: str = "16",
        memory: str = "64Gi",
    ) -> JsonObj:
        """Register a Node as a kubelet does (its standard labels, capacity, a Ready condition), with `gpus`
        advertised as the NVIDIA device plugin does (``nvidia.com/gpu`` in capacity; allocatable is defaulted from
        capacity by the store, as the apiserver does). `labels` add to the kubelet's, e.g. GPU feature discovery's
        ``nvidia.com/gpu.product``."""
        capacity = {"cpu": cpu, "memory": memory, "pods": "110"}
        if gpus:
            capacity["nvidia.com/gpu"] = str(gpus)
        node = {
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                    **(labels or {}),
                },
            },
            "spec": {},
            "status": {
                "capacity": capacity,
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                "nodeInfo": {
                    "architecture": "amd64", "bootID": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"boot.{name}")),
                    "containerRuntimeVersion": "containerd://2.0.0", "kernelVersion": "6.8.0",
                    "kubeProxyVersion": "", "kubeletVersion": self.git_version,
                    "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, name).hex, "operatingSystem": "linux",
                    "osImage": "Ubuntu 24.04 LTS", "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"system.{name}")),
                },
            },
        }  # fmt: skip
        return self.store.create(NODES, None, node)

    def get_object(self, kind: ResourceKind, namespace: str | None, name: str) -> JsonObj | None:
        """Peek at the stored object (no request recorded); prefer the API in tests that could run on a cluster."""
        return self.store.get_or_none(kind, namespace, name)

    def objects(self, kind: ResourceKind, namespace: str | None = None) -> list[JsonObj]:
        return self.store.objects(kind, namespace)

    @property
    def resource_version(self) -> int:
        with self.store.lock:
            return self.store.rv

    def _log_container(self, namespace: str, pod: str, container: str | None) -> str:
        obj = self.store.get(PODS, namespace, pod)
        if container:
            return container
        names = [c["name"] for c in (obj.get("spec") or {}).get("containers") or []]
        if len(names) != 1:
            raise ValueError(f"pod {namespace}/{pod} has containers {names}; name one")
        return str(names[0])

    def set_log(self, namespace: str, pod: str, text: str, container: str | None = None) -> None:
        """Replace the log of a container (``container`` may be omitted for single-container pods)."""
        self.store.append_log(namespace, pod, self._log_container(namespace, pod, container), text, replace=True)

    def append_log(self, namespace: str, pod: str, text: str, container: str | None = None) -> None:
        """Append log text (``follow=true`` readers receive it immediately)."""
        self.store.append_log(namespace, pod, self._log_container(namespace, pod, container), text)

    def drop_watches(self, *, abrupt: bool = False) -> int:
        """End every open watch/log-follow stream.  ``abrupt=False``: a clean end of stream (what an apiserver
        restart or watch timeout looks like; ``Watch.stream`` reconnects from its last resourceVersion).
        ``abrupt=True``: the TCP connection is cut mid-stream (the client sees a protocol error).  Returns the number
        of streams that were open."""
        with self.store.lock:
            self._watch_generation += 1
            self._abrupt_drop = abrupt
            self.store.changed.notify_all()
            return self._active_watches

    def expire_history(self) -> None:
        """Simulate compaction: every resourceVersion handed out so far becomes too old to watch from (410); a new
        list returns a usable one."""
        self.store.compact(keep_last=0, bump=True)

    def compact(self, keep_last: int) -> None:
        """Keep only the last ``keep_last`` history events (watches from before them get 410)."""
        self.store.compact(keep_last=keep_last, bump=False)

    def send_bookmarks(self) -> None:
        """Make every watch that allows bookmarks send a BOOKMARK now."""
        with self.store.lock:
            self._bookmark_generation += 1
            self.store.changed.notify_all()

    @property
    def active_watches(self) -> int:
        with self.store.lock:
            return self._active_watches

    def wait_for_watches(self, count: int, timeout: float = 5.0) -> bool:
        """Block until at least ``count`` watch/follow streams are open (no polling: a condition variable)."""
        with self.store.lock:
            return self.store.changed.wait_for(lambda: self._active_watches >= count, timeout)

    # ------------------------------------------------------------------------------------------------ routing
    def _parse(
        self, method: str, path: str, query: Mapping[str, str], content_type: str | None
    ) -> tuple[RequestInfo, _Route]:
        segments = [unquote(s) for s in path.split("/") if s]
        route = _Route()
        not_found = ApiError(404, "the server could not find the requested resource", details={})

        def info(verb: str, group: str | None = None, version: str | None = None) -> RequestInfo:
            return RequestInfo(
                method=method,
                path=path,
                query=dict(query),
                verb=verb,
                group=group,
                version=version,
                resource=route.kind.plural if route.kind else None,
                subresource=route.subresource,
                namespace=route.namespace,
                name=route.name,
                content_type=content_type,
            )

        plain_verb = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch"}.get(
            method, method.lower()
        )
        if segments in (["healthz"], ["readyz"], ["livez"]):
            route.discovery = ("health",)
            return info(plain_verb), route
        if segments == ["version"] or segments in (["api"], ["apis"]):
            route.discovery = tuple(segments)
            return info(plain_verb), route
        if not segments or segments[0] not in ("api", "apis"):
            route.error = not_found
            return info(plain_verb), route
        if segments[0] == "api":
            group, rest = "", segments[1:]
        else:
            group, rest = segments[1], segments[2:]
            if not rest:
                route.discovery = ("apis", group)
                return info(plain_verb, group), route
        version, rest = rest[0], rest[1:]
        if not rest:
            route.discovery = (segments[0], group, version)
            return info(plain_verb, group, version), route
        watch_prefix = rest[0] == "watch"
        if watch_prefix:
            rest = rest[1:]
        if len(rest) >= 3 and rest[0] == "namespaces" and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            route.namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            route.error = not_found
            return info(plain_verb, group, version), route
        kind = self.store.kind_for(group, version, rest[0])
        route.name = rest[1] if len(rest) > 1 else None
        route.subresource = rest[2] if len(rest) > 2 else None
        if kind is None:
            route.error = not_found
            return info(plain_verb, group, version), route
        route.kind = kind
        if (kind.namespaced and route.namespace is None and route.name is not None) or (
            not kind.namespaced and route.namespace is not None
        ):
            route.error = not_found
        if route.subresource and route.subresource not in kind.subresources:
            route.error = not_found
        if route.name is None:
            if method in ("PUT", "PATCH") and route.error is None:
                route.error = ApiError(405, "the server does not allow this method on the requested resource")
            verb = {"GET": "list", "POST": "create", "DELETE": "deletecollection"}.get(method, plain_verb)
            if verb == "list" and (watch_prefix or query.get("watch") in ("true", "1")):
                verb = "watch"
        else:
            verb = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}.get(
                method, plain_verb
            )
            if watch_prefix:
                verb = "watch"
        if route.error is None and verb not in (
            "get",
            "list",
            "watch",
            "create",
            "update",
            "patch",
            "delete",
            "deletecollection",
        ):
            route.error = ApiError(405, "the server does not allow this method on the requested resource")
        return info(verb, group, version), route

    def _fault_error(self, fault: Fault, info: RequestInfo) -> ApiError:
        code = int(fault.status or 500)
        headers = dict(fault.headers)
        details: JsonObj | None = None
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
            details = {"retryAfterSeconds": fault.retry_after}
        default_messages = {
            429: "Too many requests, please try again later.",
            500: "Internal error occurred: injected fault",
            503: "the server is currently unable to handle the request",
            504: "Timeout: request did not complete within requested timeout - context deadline exceeded",
            410: "The resourceVersion for the provided list is too old.",
        }
        message = fault.message
        if message is None and code == 403:
            resource = info.resource or "resource"
            where = f' in the namespace "{info.namespace}"' if info.namespace else " at the cluster scope"
            message = (
                f'{resource} is forbidden: User "{_FORBIDDEN_USER}" cannot {info.verb} resource "{resource}" in API '
                f'group "{info.group or ""}"{where}'
            )
            details = {"kind": resource, **({"name": info.name} if info.name else {})}
        if message is None:
            message = default_messages.get(code, f"injected fault ({code})")
        return ApiError(code, message, reason=fault.reason or reason_for(code), details=details, headers=headers)

    def _handle(self, handler: _Handler) -> None:
        started, wall = time.monotonic(), time.time()
        split = urlsplit(handler.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        content_type = handler.headers.get("Content-Type")
        info, route = self._parse(handler.command, split.path, query, content_type)

        def record(status: int) -> None:
            self.requests.append(
                RecordedRequest(
                    method=info.method,
                    path=info.path,
                    query=info.query,
                    verb=info.verb,
                    group=info.group,
                    version=info.version,
                    resource=info.resource,
                    subresource=info.subresource,
                    namespace=info.namespace,
                    name=info.name,
                    content_type=info.content_type,
                    status=status,
                    time=wall,
                    duration=time.monotonic() - started,
                )
            )

        responder = _Responder(handler, record)
        try:
            fault = self.faults.take(info)
            if fault is not None:
                if fault.delay:
                    self._stopping.wait(fault.delay)
                if fault.drop_connection:
                    responder.abort()
                    return
                if fault.status is not None:
                    raise self._fault_error(fault, info)
            if route.error is not None:
                raise route.error
            self._dispatch(info, route, body, responder)
        except ApiError as exc:
            if not responder.started:
                responder.send_json(exc.code, exc.status(), exc.headers)
            else:
                responder.abort()
        except SelectorError as exc:
            if not responder.started:
                responder.send_json(400, status_body(400, "BadRequest", str(exc)))
        except Exception as exc:  # a bug in the fake: answer 500 with the traceback so the test shows it
            if not responder.started:
                message = f"fake apiserver error: {exc!r}\n{traceback.format_exc()}"
                responder.send_json(500, status_body(500, "InternalError", message))
            else:
                responder.abort()
        finally:
            responder.record(responder.status if responder.started else 0)

    def _check_version_match(self, query: Mapping[str, str]) -> None:
        """``resourceVersionMatch`` on a list, answered as kube-apiserver v1.36 does where the fake can tell.

        ``NotOlderThan``/``Exact`` with a version older than the retained history: 410 ``Expired``; a version the
        server has not reached: 504 ``Too large resource version``.  Within the history the fake serves the latest
        state for both (a real server serves ``Exact`` at that version).
        """
        match = query.get("resourceVersionMatch")
        if not match:
            return
        rv_text = query.get("resourceVersion") or ""
        if match not in ("NotOlderThan", "Exact"):
            raise ApiError(
                422,
                f'resourceVersionMatch: Unsupported value: "{match}": supported values: "Exact", "NotOlderThan"',
                reason="Invalid",
            )
        if not rv_text:
            raise ApiError(
                422, "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion "
                "is provided", reason="Invalid",
            )  # fmt: skip
        try:
            wanted = int(rv_text)
        except ValueError:
            raise bad_request(f'invalid resource version "{rv_text}"') from None
        if match == "Exact" and wanted == 0:
            message = 'resourceVersionMatch: Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion '
            message += '"0"'
            raise ApiError(422, message, reason="Invalid")
        if 0 < wanted < self.store.compacted_rv:
            raise expired(f"too old resource version: {wanted} ({self.store.compacted_rv + 1})")
        if wanted > self.store.rv:
            raise ApiError(
                504, f"Too large resource version: {wanted}, current: {self.store.rv}", reason="Timeout",
                details={"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                         "retryAfterSeconds": 1},
            )  # fmt: skip

    def _dispatch(self, info: RequestInfo, route: _Route, body: bytes, responder: _Responder) -> None:
        if route.discovery == ("health",):
            responder.send(200, b"ok", "text/plain")
            return
        if route.discovery is not None:
            responder.send_json(200, self._discovery(route.discovery))
            return
        kind = route.kind
        assert kind is not None
        store, query, ns, name, sub = self.store, info.query, route.namespace, route.name, route.subresource
        dry_run = "dryRun" in query
        verb = info.verb
        warnings: list[str] = []
        field_validation = query.get("fieldValidation") or None
        if field_validation not in (None, "Ignore", "Warn", "Strict"):
            raise bad_request(
                f'fieldValidation "{field_validation}" is invalid: must be one of "Ignore", "Warn", "Strict"'
            )
        checks: dict[str, Any] = {"field_validation": field_validation, "warnings": warnings}
        if sub == "log" and verb == "get":
            assert name is not None and ns is not None
            self._serve_log(ns, name, query, responder)
            return
        if verb == "get":
            assert name is not None
            responder.send_json(200, store.get(kind, ns, name))
        elif verb == "list":
            labels = LabelSelector.parse(query.get("labelSelector"))
            fields = FieldSelector.parse(query.get("fieldSelector"), kind.all_field_labels)
            limit = int(query["limit"]) if query.get("limit") else None
            self._check_version_match(query)
            page = store.list_objects(
                kind, ns, labels, fields, limit=limit, continue_token=query.get("continue") or None
            )
            meta: JsonObj = {"resourceVersion": str(page.resource_version)}
            if page.continue_token:
                meta["continue"] = page.continue_token
            if page.remaining is not None:
                meta["remainingItemCount"] = page.remaining
            items = page.items if kind.custom else [_strip_type(o) for o in page.items]
            responder.send_json(
                200, {"kind": kind.list_kind, "apiVersion": kind.api_version, "metadata": meta, "items": items}
            )
        elif verb == "watch":
            self._serve_watch(kind, ns, name, query, responder)
        elif verb == "create":
            document = _json_body(body)
            if sub == "binding":
                assert ns is not None and name is not None
                responder.send_json(201, store.bind(ns, name, document))
            elif sub == "eviction":
                assert name is not None
                pod = store.get(kind, ns, name)
                store.delete(kind, ns, name, propagation="Background")
                responder.send_json(201, success_status(kind, name, pod["metadata"]["uid"], code=201))
            elif sub is not None or name is not None:
                raise ApiError(405, "the server does not allow this method on the requested resource")
            else:
                obj = store.create(kind, ns, document, dry_run=dry_run, **checks)
                responder.send_json(201, obj, _warning_headers(warnings))
        elif verb == "update":
            assert name is not None
            obj = store.update(kind, ns, name, _json_body(body), subresource=sub, dry_run=dry_run, **checks)
            responder.send_json(200, obj, _warning_headers(warnings))
        elif verb == "patch":
            assert name is not None
            obj, created = store.patch(
                kind,
                ns,
                name,
                body,
                info.content_type or "",
                subresource=sub,
                field_manager=query.get("fieldManager"),
                dry_run=dry_run,
                **checks,
            )
            responder.send_json(201 if created else 200, obj, _warning_headers(warnings))
        elif verb in ("delete", "deletecollection"):
            options = _json_body(body) if body else {}
            if not isinstance(options, dict):
                raise bad_request("DeleteOptions must be a JSON object")
            propagation = options.get("propagationPolicy") or query.get("propagationPolicy")
            orphan = options.get("orphanDependents", query.get("orphanDependents"))
            if propagation is None and orphan is not None:
                propagation = "Orphan" if str(orphan).lower() == "true" else "Background"
            headers = {"Warning": _JOB_ORPHAN_WARNING} if kind.key == JOBS.key and propagation is None else {}
            dry_run = dry_run or bool(options.get("dryRun"))
            if verb == "delete":
                assert name is not None
                preconditions = options.get("preconditions") or {}
                result, code = store.delete(
                    kind,
                    ns,
                    name,
                    propagation=propagation,
                    precondition_uid=preconditions.get("uid"),
                    precondition_rv=preconditions.get("resourceVersion"),
                    dry_run=dry_run,
                )
                responder.send_json(code, result, headers)
            else:
                labels = LabelSelector.parse(query.get("labelSelector"))
                fields = FieldSelector.parse(query.get("fieldSelector"), kind.all_field_labels)
                result = store.delete_collection(kind, ns, labels, fields, propagation=propagation, dry_run=dry_run)
                responder.send_json(200, result, headers)
        else:
            raise ApiError(405, "the server does not allow this method on the requested resource")

    # ------------------------------------------------------------------------------------------------- watch
    def _serve_watch(
        self, kind: ResourceKind, namespace: str | None, name: str | None, query: Mapping[str, str], out: _Responder
    ) -> None:
        labels = LabelSelector.parse(query.get("labelSelector"))
        field_text = query.get("fieldSelector") or ""
        if name is not None:  # legacy /watch/.../{name}
            field_text = ",".join(filter(None, [field_text, f"metadata.name={name}"]))
        fields = FieldSelector.parse(field_text, kind.all_field_labels)
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else self.watch_timeout
        deadline = time.monotonic() + timeout
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        send_initial = query.get("sendInitialEvents") in ("true", "1")
        rv_text = query.get("resourceVersion") or ""
        store = self.store
        initial: list[JsonObj] = []
        error: ApiError | None = None
        with store.lock:
            generation = self._watch_generation
            bookmark_generation = self._bookmark_generation
            if rv_text in ("", "0") or send_initial:
                initial = store.list_objects(kind, namespace, labels, fields).items
                cursor = store.rv
            else:
                try:
                    cursor = int(rv_text)
                except ValueError:
                    raise bad_request(f'invalid resource version "{rv_text}"') from None
                if cursor < store.compacted_rv:
                    error = expired(f"too old resource version: {cursor} ({store.compacted_rv + 1})")
            self._active_watches += 1
            store.changed.notify_all()
        try:
            out.start_stream("application/json")
            if error is not None:
                out.chunk(_event_line("ERROR", error.status()))
                return
            for obj in initial:
                if not out.chunk(_event_line("ADDED", obj)):
                    return
            if send_initial and bookmarks:
                marker = self._bookmark(kind, cursor, initial_end=True)
                if not out.chunk(_event_line("BOOKMARK", marker)):
                    return
            state = _WatchState(
                cursor=cursor,
                generation=generation,
                deadline=deadline,
                bookmarks=bookmarks,
                last_bookmark=time.monotonic(),
                bookmark_generation=bookmark_generation,
            )
            while True:
                step = self._next_watch_step(state, out)
                for event in step.events:
                    translated = _translate(event, kind, namespace, labels, fields)
                    if translated is not None and not out.chunk(_event_line(*translated)):
                        return
                if step.error is not None:
                    out.chunk(_event_line("ERROR", step.error.status()))
                    return
                if step.bookmark_rv is not None:
                    state.last_bookmark = time.monotonic()
                    if not out.chunk(_event_line("BOOKMARK", self._bookmark(kind, step.bookmark_rv))):
                        return
                if step.stop == "abort":
                    out.abort()
                    return
                if step.stop == "end":
                    return
        finally:
            with store.lock:
                self._active_watches -= 1
                store.changed.notify_all()
            out.end_stream()

    def _next_watch_step(self, state: _WatchState, out: _Responder) -> _WatchStep:
        """Block (on the store's condition) until this watch has something to do, and say what."""
        store = self.store
        with store.lock:
            while True:
                now = time.monotonic()
                if self._stopping.is_set():
                    return _WatchStep(stop="abort")
                if self._watch_generation != state.generation:
                    return _WatchStep(stop="abort" if self._abrupt_drop else "end")
                if state.cursor < store.compacted_rv:
                    return _WatchStep(
                        error=expired(f"too old resource version: {state.cursor} ({store.compacted_rv + 1})")
                    )
                events = store.events_after(state.cursor)
                if events:
                    state.cursor = events[-1].rv
                    return _WatchStep(events=events)
                bookmark_due = self._bookmark_generation != state.bookmark_generation or (
                    now - state.last_bookmark >= self.bookmark_interval
                )
                if state.bookmarks and bookmark_due:
                    state.cursor = store.rv
                    state.bookmark_generation = self._bookmark_generation
                    return _WatchStep(bookmark_rv=store.rv)
                if now >= state.deadline:
                    return _WatchStep(stop="end")
                wait = min(state.deadline - now, 1.0)
                if state.bookmarks:
                    wait = min(wait, max(0.0, state.last_bookmark + self.bookmark_interval - now))
                if not store.changed.wait(wait) and out.client_gone():
                    return _WatchStep(stop="abort")

    @staticmethod
    def _bookmark(kind: ResourceKind, rv: int, *, initial_end: bool = False) -> JsonObj:
        meta: JsonObj = {"resourceVersion": str(rv)}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": meta}

    # -------------------------------------------------------------------------------------------------- logs
    def _serve_log(self, namespace: str, name: str, query: Mapping[str, str], out: _Responder) -> None:
        store = self.store
        with store.lock:
            pod = store.get(PODS, namespace, name)
            spec = pod.get("spec") or {}
            containers = [str(c.get("name")) for c in spec.get("containers") or []]
            init_containers = [str(c.get("name")) for c in spec.get("initContainers") or []]
            container = query.get("container") or ""
            if not container:
                if len(containers) != 1:
                    names = " ".join(containers)
                    choices = f"a container name must be specified for pod {name}, choose one of: [{names}]"
                    if init_containers:
                        choices += f" or one of the init containers: [{' '.join(init_containers)}]"
                    raise bad_request(choices)
                container = containers[0]
            elif container not in containers + init_containers:
                raise bad_request(f"container {container} is not valid for pod {name}")
            uid = pod["metadata"]["uid"]
            if not spec.get("nodeName"):
                out.send(200, b"", "text/plain")
                return
            status = _container_status(pod, container)
            restarts = int((status or {}).get("restartCount") or 0)
            if query.get("previous") in ("true", "1") and not ((status or {}).get("lastState") or {}).get("terminated"):
                raise bad_request(f'previous terminated container "{container}" in pod "{name}" not found')
            state = (status or {}).get("state") or {}
            if status is None or ("waiting" in state and restarts == 0) or not state:
                reason = (state.get("waiting") or {}).get("reason") or "ContainerCreating"
                raise bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
            lines = list(store.logs.get((namespace, name, container), []))
            sent = len(lines)
        follow = query.get("follow") in ("true", "1")
        timestamps = query.get("timestamps") in ("true", "1")
        if query.get("sinceSeconds"):
            cutoff = time.time() - float(query["sinceSeconds"])
            lines = [entry for entry in lines if _parse_timestamp(entry[0]) >= cutoff]
        if query.get("tailLines"):
            tail = int(query["tailLines"])
            lines = lines[-tail:] if tail > 0 else []
        limit = int(query["limitBytes"]) if query.get("limitBytes") else None

        def render(entries: list[tuple[str, str]]) -> bytes:
            return "".join(f"{ts} {line}" if timestamps else line for ts, line in entries).encode()

        payload = render(lines)
        if limit is not None:
            payload = payload[:limit]
        if not follow:
            out.send(200, payload, "text/plain")
            return
        with store.lock:
            self._active_watches += 1
            generation = self._watch_generation
            store.changed.notify_all()
        written = len(payload)
        try:
            out.start_stream("text/plain")
            if not out.chunk(payload):
                return
            while True:
                with store.lock:
                    while True:
                        current = store.get_or_none(PODS, namespace, name)
                        entries = store.logs.get((namespace, name, container), [])
                        finished = (
                            current is None
                            or current["metadata"]["uid"] != uid
                            or _container_finished(current, container)
                            or self._stopping.is_set()
                            or self._watch_generation != generation
                        )
                        if len(entries) > sent or finished:
                            new, sent = entries[sent:], len(entries)
                            break
                        if not store.changed.wait(1.0) and out.client_gone():
                            out.abort()
                            return
                chunk = render(new)
                if limit is not None:
                    chunk = chunk[: max(0, limit - written)]
                written += len(chunk)
                if not out.chunk(chunk):
                    return
                if finished or (limit is not None and written >= limit):
                    if self._watch_generation != generation and self._abrupt_drop:
                        out.abort()
                    return
        finally:
            with store.lock:
                self._active_watches -= 1
                store.changed.notify_all()
            out.end_stream()

    # --------------------------------------------------------------------------------------------- discovery
    def _discovery(self, what: tuple[str, ...]) -> JsonObj:
        kinds = list(self.store.kinds.values())
        if what == ("version",):
            major, minor = self.git_version.lstrip("v").split(".")[:2]
            return {
                "major": major,
                "minor": minor,
                "emulationMajor": major,
                "emulationMinor": minor,
                "minCompatibilityMajor": major,
                "minCompatibilityMinor": str(max(0, int(minor) - 1)),
                "gitVersion": self.git_version,
                "gitCommit": "0" * 40,
                "gitTreeState": "clean",
                "buildDate": "2025-01-01T00:00:00Z",
                "goVersion": "go1.24.0",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        if what == ("api",):
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{self.port}"}],
            }
        groups: dict[str, list[str]] = {}
        for kind in kinds:
            if kind.group and kind.version not in groups.setdefault(kind.group, []):
                groups[kind.group].append(kind.version)

        def group_body(group: str) -> JsonObj:
            versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in groups[group]]
            return {"name": group, "versions": versions, "preferredVersion": versions[0]}

        if what == ("apis",):
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group_body(g) for g in sorted(groups)]}
        if len(what) == 2:
            if what[1] not in groups:
                raise ApiError(404, "the server could not find the requested resource", details={})
            return {"kind": "APIGroup", "apiVersion": "v1", **group_body(what[1])}
        _, group, version = what
        served = [k for k in kinds if k.group == group and k.version == version]
        if not served:
            raise ApiError(404, "the server could not find the requested resource", details={})
        resources: list[JsonObj] = []
        for kind in sorted(served, key=lambda k: k.plural):
            entry: JsonObj = {
                "name": kind.plural,
                "singularName": kind.singular,
                "namespaced": kind.namespaced,
                "kind": kind.kind,
                "verbs": kind.verbs(),
            }
            if kind.short_names:
                entry["shortNames"] = list(kind.short_names)
            resources.append(entry)
            for sub in sorted(kind.subresources):
                verbs = {"status": ["get", "patch", "update"], "log": ["get"]}.get(sub, ["create"])
                resources.append(
                    {
                        "name": f"{kind.plural}/{sub}",
                        "singularName": "",
                        "namespaced": kind.namespaced,
                        "kind": kind.kind if sub == "status" else ("Pod" if sub == "log" else sub.capitalize()),
                        "verbs": verbs,
                    }
                )
        group_version = f"{group}/{version}" if group else version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}


def _warning_headers(warnings: list[str]) -> dict[str, str]:
    """RFC 7234 ``Warning`` values (code 299), comma-joined, as the apiserver sends them."""
    if not warnings:
        return {}
    return {"Warning": ", ".join("299 - " + json.dumps(w) for w in warnings)}


def _packaged_crd_schema(kind: ResourceKind) -> Mapping[str, Any] | None:
    """The schema of ``kind`` among the CRDs shipped in ``crds/`` (the Kubeflow and Trainer kinds), or None."""
    return structural_schemas().get((kind.api_version, kind.kind))


def _json_body(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError as exc:
        raise bad_request(f"the request body is not valid JSON: {exc}") from None


def _strip_type(obj: JsonObj) -> JsonObj:
    """List items of built-in kinds carry no ``apiVersion``/``kind`` in apiserver JSON (custom resources do)."""
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}


def _translate(
    event: StoredEvent, kind: ResourceKind, namespace: str | None, labels: LabelSelector, fields: FieldSelector
) -> tuple[str, JsonObj] | None:
    """The watch cache's view of one change for one watcher (ADDED/MODIFIED/DELETED or nothing)."""
    if event.kind.key != kind.key or (namespace is not None and event.namespace != namespace):
        return None

    def passes(obj: JsonObj | None) -> bool:
        return obj is not None and labels.matches(_labels(obj)) and fields.matches(obj)

    current = event.type != "DELETED" and passes(event.obj)
    previous = passes(event.prev)
    if current:
        return ("MODIFIED" if previous else "ADDED"), event.obj
    if previous:
        if event.type == "DELETED":
            return "DELETED", event.obj
        assert event.prev is not None
        gone = dict(event.prev)
        gone["metadata"] = {**event.prev["metadata"], "resourceVersion": str(event.rv)}
        return "DELETED", gone
    return None


def _container_status(pod: Mapping[str, Any], container: str) -> JsonObj | None:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses"):
        for entry in status.get(key) or []:
            if entry.get("name") == container:
                return dict(entry)
    return None


def _container_finished(pod: Mapping[str, Any], container: str) -> bool:
    if (pod.get("status") or {}).get("phase") in TERMINAL_POD_PHASES:
        return True
    status = _container_status(pod, container) or {}
    return "terminated" in (status.get("state") or {})


def _parse_timestamp(text: str) -> float:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()
