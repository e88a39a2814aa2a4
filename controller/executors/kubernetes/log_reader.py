"""Reading what an attempt left: its logs (live from the pod while it exists, else the saved copy) and its events.

Separate from tracking because it only reads: the records tell it which pods an attempt has, `logs.py` says where
saved logs live and how a pod's log is streamed or fetched, and nothing here changes what the engine is told.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from odin.controller.executors.kubernetes.api import PODS, Json, KubeApi
from odin.controller.executors.kubernetes.attempts import Attempt, AttemptKey, AttemptTable
from odin.controller.executors.kubernetes.errors import KubeApiError
from odin.controller.executors.kubernetes.handlers.base import PRIMARY_REPLICAS
from odin.controller.executors.kubernetes.logs import LogStore, containers, fetch, stream

log = logging.getLogger(__name__)


class LogReader:
    """Logs and events of attempts, by (run, task, attempt); `save_logs` keeps an ended attempt's logs (on disk, and
    in the artifact store when there is one: `logs.py`)."""

    def __init__(
        self, table: AttemptTable, api: KubeApi, log_store: LogStore, *, pod_selector: Callable[[Attempt], str]
    ) -> None:
        self.table, self.api, self.log_store = table, api, log_store
        self._pod_selector = pod_selector

    def latest_attempt(self, run_id: str, task: str) -> int | None:
        known = self.table.known_attempts(run_id, task) + self.log_store.attempts(run_id, task)
        return max(known) if known else None

    def logs(
        self,
        run_id: str,
        task: str,
        *,
        follow: bool = False,
        tail: int | None = None,
        attempt: int | None = None,
        container: str | None = None,
        replica: str | None = None,
    ) -> Iterator[str]:
        if attempt is None:
            attempt = self.latest_attempt(run_id, task)
            if attempt is None:
                return iter(())
        key = (run_id, task, attempt)
        with self.table.lock:
            record = self.table.attempts.get(key)
            pods = list(record.pods.values()) if record is not None else []
            handler = record.handler if record is not None else None
            namespace = record.namespace if record is not None else ""
        pod = None
        if handler is not None and pods:
            if replica:
                pod = next((p for p in pods if replica in (handler.replica(p), p["metadata"]["name"])), None)
            else:
                pod = handler.primary(pods)
        if pod is not None and handler is not None:
            # The saved copy is chosen by what was asked, never by which pods are still known: while pods are being
            # deleted, "the primary among the remaining pods" can be a worker, whose log is not the task's log.
            saved = self._saved_log(key, replica, container)
            return self._live_log(namespace, pod, saved, container=container, follow=follow, tail=tail)
        return self.log_store.read(self._saved_log(key, replica, container), tail=tail)

    def _saved_log(self, key: AttemptKey, replica: str | None, container: str | None) -> Path:
        """The saved log of a replica's container. The primary replica's log is saved as the task's log (no replica
        in its name), and a pod's first container's without the container's name."""
        if replica is not None and replica in PRIMARY_REPLICAS:
            own = self.log_store.path(*key, replica=replica)
            replica = replica if self.log_store.exists(own) else None
        named = self.log_store.path(*key, replica=replica, container=container)
        return (
            named if container is None or self.log_store.exists(named) else self.log_store.path(*key, replica=replica)
        )

    def _live_log(
        self, namespace: str, pod: Json, saved: Path, *, container: str | None, follow: bool, tail: int | None
    ) -> Iterator[str]:
        """A pod's log from the API; its saved copy when the pod is gone or the API cannot answer."""
        name = str(pod["metadata"]["name"])
        chosen = container or next(iter(containers(pod)), None)
        try:
            yield from stream(self.api, namespace, name, container=chosen, follow=follow, tail=tail)
        except KubeApiError as e:
            if e.status == 400:  # not started yet (ContainerCreating, ImagePullBackOff): no log
                return
            if not self.log_store.exists(saved):
                raise
            log.info("log of pod %s/%s from its saved copy (%s)", namespace, name, e.message)
            yield from self.log_store.read(saved, tail=tail)

    def events(self, run_id: str, task: str) -> list[dict[str, Any]]:
        attempt = self.latest_attempt(run_id, task)
        if attempt is None:
            return []
        with self.table.lock:
            record = self.table.attempts.get((run_id, task, attempt))
            if record is None:
                return []
            objects = [record.name, *[n for n in record.pods if n != record.name]]
            namespace = record.namespace
        out: list[dict[str, Any]] = []
        for name in objects:  # interactive: fail fast (KubeApiError) rather than retry for minutes
            for e in self.api.events_for(namespace, name, retry=False):
                involved = e.get("involvedObject") or {}
                out.append(
                    {
                        "time": e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp")
                        or (e.get("metadata") or {}).get("creationTimestamp"),
                        "type": e.get("type"),
                        "reason": e.get("reason"),
                        "message": e.get("message"),
                        "object": f"{involved.get('kind')}/{involved.get('name')}",
                        "count": e.get("count") or 1,
                    }
                )  # fmt: skip
        out.sort(key=lambda e: str(e["time"] or ""))
        return out

    def save_logs(self, record: Attempt) -> None:
        """Write every container log of the attempt's pods to the log store (primary replica: the task's log)."""
        handler = record.handler
        if handler is not None and handler.kind.key != PODS.key:
            # A job's pods may end after (or be reported later than) the job itself: read them as they are now.
            try:
                listed, _ = self.api.list_objects(PODS, record.namespace, label_selector=self._pod_selector(record))
                with self.table.lock:
                    record.pods.update({str(p["metadata"]["name"]): p for p in listed})
            except KubeApiError as e:
                log.warning("run %s task %s attempt %d: cannot list its pods: %s", *record.key, e.message)
        with self.table.lock:
            pods = list(record.pods.values())
        if handler is None or not pods:
            return
        primary = handler.primary(pods)
        for pod in pods:
            pod_name = str(pod["metadata"]["name"])
            replica = None if pod is primary else handler.replica(pod)
            for i, container in enumerate(containers(pod)):
                path = self.log_store.path(*record.key, replica=replica, container=container if i else None)
                try:
                    data = fetch(self.api, record.namespace, pod_name, container)
                except KubeApiError as e:
                    log.warning("run %s task %s attempt %d: cannot save the log of %s/%s: %s", *record.key,
                                pod_name, container, e.message)  # fmt: skip
                    continue
                self.log_store.save(path, data)
