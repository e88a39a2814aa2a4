"""Watches: one stream per (namespace, kind, label selector), feeding the executor every change as it happens.

The informer pattern, kept small: list (paginated) to learn the current objects and a resourceVersion, then watch
from that resourceVersion; every ADDED/MODIFIED/DELETED updates a local cache and is handed to the executor. The
cache is what makes a re-list safe: after `410 Gone` (the resourceVersion was compacted away) or a reconnect that
needs one, the new list is diffed against it, and objects that vanished meanwhile are reported DELETED, so no
transition is ever missed. Bookmarks keep the resourceVersion fresh on quiet streams.

Failures: a dropped connection or a 5xx reconnects with jittered exponential backoff from the last resourceVersion;
410 re-lists; 403 is reported to the executor (tasks in that namespace cannot be observed: they fail with the
reason) and retried slowly, in case RBAC is fixed. Nothing here polls: an idle watch is one open HTTP stream.

Threads: one per watch (a handful: namespaces x kinds). Callbacks run on the watch's thread.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import urllib3

from odin.controller.backoff import Backoff
from odin.controller.executors.kubernetes.api import Json, Kind, KubeApi, iter_lines
from odin.controller.executors.kubernetes.errors import Expired, Forbidden, KubeApiError, NotFound, translate

log = logging.getLogger(__name__)

EventCallback = Callable[[str, Kind, Json], None]  # (ADDED | MODIFIED | DELETED, kind, object)
ErrorCallback = Callable[["WatchKey", KubeApiError], None]


@dataclass(frozen=True, slots=True)
class WatchKey:
    namespace: str
    kind: Kind
    selector: str

    def __str__(self) -> str:
        return f"{self.kind.plural} in {self.namespace} ({self.selector})"


class ResourceWatch:
    """List-then-watch for one key, on its own thread, until `stop()`."""

    def __init__(
        self,
        api: KubeApi,
        key: WatchKey,
        on_event: EventCallback,
        on_error: ErrorCallback,
        *,
        timeout: int = 300,
        backoff_max: float = 30.0,
    ) -> None:
        self.api = api
        self.key = key
        self.on_event = on_event
        self.on_error = on_error
        self.timeout = timeout
        self.backoff_max = backoff_max
        # Reconnects: 1 s after the first failure, doubling up to `backoff_max`, between half and all of it.
        self.backoff = Backoff(initial=0.5, maximum=backoff_max)
        self.cache: dict[str, Json] = {}
        self.resource_version: str | None = None
        self.synced = threading.Event()
        self.relists = 0
        self._stopping = threading.Event()
        self._response: Any = None
        self._lock = threading.Lock()
        self._failures = 0
        self._thread = threading.Thread(target=self._run, name=f"odin-watch-{key.kind.plural}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            response = self._response
        if response is not None:
            try:
                response.shutdown()
            except Exception:
                log.debug("closing the %s watch failed", self.key, exc_info=True)
        self._thread.join(5)

    def objects(self) -> list[Json]:
        with self._lock:
            return list(self.cache.values())

    # -- the loop -----------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if self.resource_version is None:
                    self._relist()
                self._watch_once()
                self._failures = 0
            except Expired:
                log.info("watch %s: resourceVersion expired (410); listing again", self.key)
                self.resource_version = None
            except (Forbidden, NotFound) as e:
                log.error("watch %s: %s", self.key, e.message)
                self.on_error(self.key, e)
                self._pause(max(self.backoff_max, 60.0))
            except (KubeApiError, urllib3.exceptions.HTTPError, OSError, ValueError) as e:
                if self._stopping.is_set():
                    return
                self._failures += 1
                delay = self._delay()
                level = logging.WARNING if self._failures in (1, 5) or self._failures % 20 == 0 else logging.DEBUG
                log.log(level, "watch %s failed (%s); reconnecting in %.1fs", self.key, _describe(e), delay)
                self._pause(delay)
            except Exception:  # a bug must not end the watch silently: log it and start over from a fresh list
                log.exception("watch %s: unexpected error; listing again", self.key)
                self.resource_version = None
                self._pause(self._delay())

    def _delay(self) -> float:
        return self.backoff.delay(self._failures)

    def _pause(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def _relist(self) -> None:
        items, version = self.api.list_objects(
            self.key.kind, self.key.namespace, label_selector=self.key.selector, retry=False
        )
        fresh = {str(o["metadata"]["name"]): o for o in items}
        with self._lock:
            old = self.cache
            self.cache = dict(fresh)
            self.resource_version = version
        self.relists += 1
        for name, obj in old.items():
            if name not in fresh:
                self._emit("DELETED", obj)
        for name, obj in fresh.items():
            before = old.get(name)
            if before is None:
                self._emit("ADDED", obj)
            elif (before.get("metadata") or {}).get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._emit("MODIFIED", obj)
        self.synced.set()

    def _watch_once(self) -> None:
        assert self.resource_version is not None
        response = self.api.watch(
            self.key.kind,
            self.key.namespace,
            label_selector=self.key.selector,
            resource_version=self.resource_version,
            timeout=self.timeout,
        )
        with self._lock:
            self._response = response
        try:
            for line in iter_lines(response):
                if self._stopping.is_set():
                    return
                if not line.strip():
                    continue
                event = json.loads(line)
                self._handle(event)
        finally:
            with self._lock:
                self._response = None
            response.release_conn()

    def _handle(self, event: Json) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            raise translate(int(obj.get("code") or 500), json.dumps(obj), f"watch {self.key}")
        meta = obj.get("metadata") or {}
        version = meta.get("resourceVersion")
        if kind == "BOOKMARK":
            if version:
                self.resource_version = str(version)
            return
        name = str(meta.get("name") or "")
        with self._lock:
            if kind == "DELETED":
                self.cache.pop(name, None)
            else:
                self.cache[name] = obj
            if version:
                self.resource_version = str(version)
        self._emit(str(kind), obj)

    def _emit(self, kind: str, obj: Json) -> None:
        try:
            self.on_event(kind, self.key.kind, obj)
        except Exception:  # the executor's bug must not kill the watch
            log.exception("watch %s: handling a %s event failed", self.key, kind)


def _describe(e: BaseException) -> str:
    return e.message if isinstance(e, KubeApiError) else f"{type(e).__name__}: {e}"


class WatchManager:
    """Starts watches lazily, one per key, and stops them all."""

    def __init__(self, api: KubeApi, on_event: EventCallback, on_error: ErrorCallback, *, timeout: int = 300) -> None:
        self.api = api
        self.on_event = on_event
        self.on_error = on_error
        self.timeout = timeout
        self._watches: dict[WatchKey, ResourceWatch] = {}
        self._lock = threading.Lock()
        self._stopped = False

    def ensure(self, namespace: str, kind: Kind, selector: str) -> ResourceWatch:
        key = WatchKey(namespace, kind, selector)
        with self._lock:
            watch = self._watches.get(key)
            if watch is None:
                watch = ResourceWatch(self.api, key, self.on_event, self.on_error, timeout=self.timeout)
                self._watches[key] = watch
                if not self._stopped:
                    watch.start()
            return watch

    def watches(self, namespace: str | None = None) -> list[ResourceWatch]:
        with self._lock:
            return [w for k, w in self._watches.items() if namespace is None or k.namespace == namespace]

    @property
    def namespaces(self) -> set[str]:
        with self._lock:
            return {k.namespace for k in self._watches}

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            watches = list(self._watches.values())
        for watch in watches:
            watch._stopping.set()
        for watch in watches:
            watch.stop()
