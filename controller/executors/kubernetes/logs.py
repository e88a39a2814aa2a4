"""Task logs: read live from the pods while they exist, kept on disk once the attempt has ended -- and, with an
artifact store, in the store too.

Saved logs use the local executor's layout, so the API serves them the same way whichever executor ran the task,
and after the TTL clean-up has deleted the pods: `<data>/tasks/<run>/<task>.<attempt>.log` holds the primary replica
(the master, launcher, chief, or the only pod), and `<task>.<attempt>.<replica>.log` every other replica of a
distributed job (`worker-1`...), with `.<container>` added for extra containers.

The data directory is one replica's own disk (an emptyDir in deploy/): the replica that saved a log is not the only
one serving the API, and a restart empties it. So with an artifact store every saved log is also written to the store
as the record `logs/<run>/<file>` (`artifacts/log_records.py`; retention deletes them with the local copies once
`ODIN_LOGS_KEEP_DAYS` has passed), and a log missing on disk is fetched from there (and kept on disk as a cache).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from odin.controller.artifacts import log_records
from odin.controller.artifacts.errors import ArtifactError
from odin.controller.artifacts.settings import MissingCredential
from odin.controller.artifacts.store import ArtifactStore
from odin.controller.executors.kubernetes.api import Json, KubeApi, iter_lines
from odin.controller.executors.kubernetes.errors import KubeApiError

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

MAX_STORED_LOG = 1024 * 1024 * 1024
"""The largest log read back from the store (1 GiB): a record is read whole, so a bound keeps one request from
exhausting the API's memory; the store's copy of a larger log is refused and the log reported unavailable."""


class LogStore:
    """Where saved logs live: `tasks_dir` on this replica's disk, and the artifact store when `remote` gives one."""

    def __init__(self, data_dir: Path, remote: Callable[[], ArtifactStore] | None = None) -> None:
        self.tasks_dir = data_dir / "tasks"
        self._remote = remote

    def path(
        self, run_id: str, task: str, attempt: int, replica: str | None = None, container: str | None = None
    ) -> Path:
        parts = [task, str(attempt)]
        if replica:
            parts.append(_UNSAFE.sub("_", replica))
        if container:
            parts.append(_UNSAFE.sub("_", container))
        return self.tasks_dir / run_id / (".".join(parts) + ".log")

    def record_key(self, path: Path) -> str:
        """The store's record of the saved log at `path`: `logs/<run>/<file>`."""
        return log_records.record_key(path.parent.name, path.name)

    def attempts(self, run_id: str, task: str) -> list[int]:
        """The attempts with a log on this replica's disk (the store cannot be listed: callers that know the attempt
        from the database pass it instead)."""
        found: set[int] = set()
        for p in (self.tasks_dir / run_id).glob(f"{task}.*.log"):
            parts = p.name.split(".")
            if len(parts) >= 3 and parts[0] == task and parts[1].isdigit():
                found.add(int(parts[1]))
        return sorted(found)

    def save(self, path: Path, data: bytes) -> None:
        """Keep a log on disk, whole or not at all, then in the store. A store that fails is logged, not raised:
        the log is still served by this replica, and losing the store's copy must not fail the attempt."""
        _write_whole(path, data)
        if self._remote is None:
            return
        try:
            self._remote().put_record(self.record_key(path), data)
        except (ArtifactError, MissingCredential) as e:
            log.warning("log %s kept on this replica only: the artifact store refused it: %s", path.name, e)

    def exists(self, path: Path) -> bool:
        """True when the log is on disk, or in the store (then fetched onto disk)."""
        return path.exists() or self._fetch(path)

    def read(self, path: Path, *, tail: int | None) -> Iterator[str]:
        if not self.exists(path):
            return iter(())
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        return iter(lines)

    def _fetch(self, path: Path) -> bool:
        """Copy the store's record of the log at `path` onto disk; False when there is none or the store fails."""
        if self._remote is None:
            return False
        try:
            data = self._remote().get_record(self.record_key(path), MAX_STORED_LOG)
        except (ArtifactError, MissingCredential) as e:
            log.warning("log %s: cannot read it from the artifact store: %s", path.name, e)
            return False
        if data is None:
            return False
        _write_whole(path, data)
        return True


def _write_whole(path: Path, data: bytes) -> None:
    """Whole or not at all: a reader that finds the file (the API, a test) never sees it half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    partial.write_bytes(data)
    partial.replace(path)


def containers(pod: Json) -> list[str]:
    return [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name")]


def fetch(api: KubeApi, namespace: str, pod: str, container: str | None) -> bytes:
    """A container's whole log (empty when it never started or is not bound to a node)."""
    try:
        response = api.pod_log(namespace, pod, container=container)
    except KubeApiError as e:
        if e.status in (400, 404):  # waiting to start, or gone: nothing to save
            return b""
        raise
    data: bytes = response.data
    response.release_conn()
    return data


def stream(
    api: KubeApi, namespace: str, pod: str, *, container: str | None, follow: bool, tail: int | None
) -> Iterator[str]:
    """Lines of a live container log; with `follow`, until the container ends."""
    response = api.pod_log(namespace, pod, container=container, follow=follow, tail=tail, retry=not follow)
    try:
        for line in iter_lines(response):
            yield line.decode("utf-8", errors="replace") + "\n"
    finally:
        response.release_conn()
