"""Task logs: read live from the pods while they exist, kept on disk once the attempt has ended.

Saved logs use the local executor's layout, so the API serves them the same way whichever executor ran the task,
and after the TTL clean-up has deleted the pods: `<data>/tasks/<run>/<task>.<attempt>.log` holds the primary replica
(the master, launcher, chief, or the only pod), and `<task>.<attempt>.<replica>.log` every other replica of a
distributed job (`worker-1`...), with `.<container>` added for extra containers.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

from odin.controller.executors.kubernetes.api import Json, KubeApi, iter_lines
from odin.controller.executors.kubernetes.errors import KubeApiError

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class LogStore:
    """Where saved logs live."""

    def __init__(self, data_dir: Path) -> None:
        self.tasks_dir = data_dir / "tasks"

    def path(
        self, run_id: str, task: str, attempt: int, replica: str | None = None, container: str | None = None
    ) -> Path:
        parts = [task, str(attempt)]
        if replica:
            parts.append(_UNSAFE.sub("_", replica))
        if container:
            parts.append(_UNSAFE.sub("_", container))
        return self.tasks_dir / run_id / (".".join(parts) + ".log")

    def attempts(self, run_id: str, task: str) -> list[int]:
        found: set[int] = set()
        for p in (self.tasks_dir / run_id).glob(f"{task}.*.log"):
            parts = p.name.split(".")
            if len(parts) >= 3 and parts[0] == task and parts[1].isdigit():
                found.add(int(parts[1]))
        return sorted(found)

    def read(self, path: Path, *, tail: int | None) -> Iterator[str]:
        if not path.exists():
            return iter(())
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        return iter(lines)


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
