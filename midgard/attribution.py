"""Who a GPU process belongs to: its pod (from its cgroup) and its Odin run, task and commit (from its environment).

NVML names processes by host PID only. What Odin wants to show is "run r-42, task train, commit abc123, pod
odin/r-42-train". Everything here reads files under a proc root (`/proc`, or the host's `/proc` mounted elsewhere in a
container), so it works the same on a laptop, a bare GPU box and a Kubernetes node, and tests point it at real
processes or at a directory they wrote:

- **Odin**: the engine gives every task `ODIN_RUN`, `ODIN_TASK`, `ODIN_TASK_ID`, `ODIN_ATTEMPT`, `ODIN_PIPELINE` and
  `ODIN_COMMIT_SHA` (controller/engine/loop.py), locally and in pods alike. A task's own child (python spawning
  workers, torchrun) usually inherits them; where it does not, the nearest ancestor that has them answers
  (`parent-environ`). Reading another user's `/proc/PID/environ` needs the same user or root (CAP_SYS_PTRACE).
- **Kubernetes**: `/proc/PID/cgroup` names the pod UID in the kubepods hierarchy, in all four layouts (cgroup v1 and
  v2, systemd and cgroupfs drivers) -- see `pod_from_cgroup`. The UID becomes namespace and name through
  `/var/log/pods/<namespace>_<name>_<uid>` when that directory is visible. The kubelet's pod-resources API
  (`podresources.py`) is more direct and wins where its socket is mounted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .report import Attribution, AttributionSource

# `pod<uid>` in a kubepods cgroup path: dashes under cgroupfs (`/kubepods/burstable/pod1234-...`), underscores in
# systemd slice names (`kubepods-burstable-pod1234_....slice`).
_POD_UID = re.compile(
    r"(?:^|[/-])pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?(?:/|$)"
)
# The container's scope under the pod: `cri-containerd-<id>.scope`, `crio-<id>.scope`, `docker-<id>.scope` (systemd)
# or the bare 64-hex ID (cgroupfs).
_CONTAINER_ID = re.compile(r"(?:^|/)(?:[a-z-]+-)?([0-9a-f]{64})(?:\.scope)?$")

_ODIN_VARS = {
    b"ODIN_RUN": "odin_run",
    b"ODIN_TASK": "odin_task",
    b"ODIN_TASK_ID": "odin_task_id",
    b"ODIN_ATTEMPT": "odin_attempt",
    b"ODIN_COMMIT_SHA": "odin_commit",
    b"ODIN_PIPELINE": "odin_pipeline",
}
_MAX_ANCESTORS = 64


@dataclass(frozen=True)
class PodRef:
    """A pod as a cgroup path names it: its UID and (when the path shows it) the container runtime's ID."""

    uid: str
    container_id: str | None = None


def pod_from_cgroup(text: str) -> PodRef | None:
    """The pod of a `/proc/PID/cgroup` file, or `None` outside Kubernetes.

    Lines are `hierarchy-ID:controllers:path`; under cgroup v2 there is one, `0::/path`. Examples of `path`:
    - v1 or v2, cgroupfs driver: `/kubepods/burstable/pod<uid>/<64-hex container ID>`
    - v1 or v2, systemd driver: `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_with_underscores>
      .slice/cri-containerd-<64-hex>.scope`
    Guaranteed-QoS pods have no QoS level (`/kubepods/pod<uid>/...`, `kubepods-pod<uid>.slice`).
    """
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        if "kubepods" not in path:
            continue
        match = _POD_UID.search(path)
        if match is None:
            continue
        uid = match.group(1).replace("_", "-")
        container = _CONTAINER_ID.search(path)
        return PodRef(uid=uid, container_id=container.group(1) if container else None)
    return None


def odin_from_environ(data: bytes) -> dict[str, str]:
    """The `ODIN_*` variables of a NUL-separated `/proc/PID/environ`, by `Attribution` field name."""
    found: dict[str, str] = {}
    for entry in data.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep and key in _ODIN_VARS:
            found[_ODIN_VARS[key]] = value.decode("utf-8", "replace")
    return found


class ProcAttributor:
    """Attribution from a proc root (and optionally the kubelet's pod log directory for names).

    `proc_root`: `/proc`, or where the host's `/proc` is mounted when the agent runs in a container without hostPID.
    `pod_log_root`: `/var/log/pods`, whose entries are `<namespace>_<name>_<uid>`; missing is fine (no names).
    """

    def __init__(self, proc_root: str | os.PathLike[str] = "/proc", pod_log_root: str | None = "/var/log/pods"):
        self.proc_root = Path(proc_root)
        self.pod_log_root = Path(pod_log_root) if pod_log_root else None

    def attribute(self, pids: Iterable[int]) -> dict[int, Attribution]:
        """Attribution for each PID that has any; PIDs that are gone or unreadable are left out."""
        pods = self._pod_names()
        out: dict[int, Attribution] = {}
        for pid in pids:
            found = self.attribute_one(pid, pods)
            if found is not None:
                out[pid] = found
        return out

    def attribute_one(self, pid: int, pods: Mapping[str, tuple[str, str]] | None = None) -> Attribution | None:
        pods = self._pod_names() if pods is None else pods
        pod = self._pod(pid)
        odin, source = self._odin(pid)
        if pod is None and not odin:
            return None
        fields: dict[str, Any] = {}
        if pod is not None:
            fields["pod_uid"] = pod.uid
            if pod.uid in pods:
                fields["pod_namespace"], fields["pod_name"] = pods[pod.uid]
        for key, value in odin.items():
            fields[key] = _int_or_none(value) if key == "odin_attempt" else value or None
        return Attribution(source="cgroup" if pod is not None else source, **fields)

    def _read(self, pid: int, name: str) -> bytes | None:
        try:
            return (self.proc_root / str(pid) / name).read_bytes()
        except OSError:  # gone, or not ours to read
            return None

    def _pod(self, pid: int) -> PodRef | None:
        data = self._read(pid, "cgroup")
        return pod_from_cgroup(data.decode("utf-8", "replace")) if data else None

    def _odin(self, pid: int) -> tuple[dict[str, str], AttributionSource]:
        """ODIN_* of the process, else of its nearest ancestor that has them."""
        current: int = pid
        source: AttributionSource = "environ"
        for _ in range(_MAX_ANCESTORS):
            environ = self._read(current, "environ")
            if environ:
                found = odin_from_environ(environ)
                if "odin_run" in found:
                    return found, source
            parent = self._parent(current)
            if parent is None or parent <= 1:
                break
            current, source = parent, "parent-environ"
        return {}, "environ"

    def _parent(self, pid: int) -> int | None:
        status = self._read(pid, "status")
        if status is None:
            return None
        for line in status.split(b"\n"):
            if line.startswith(b"PPid:"):
                return _int_or_none(line[5:].strip().decode())
        return None

    def _pod_names(self) -> dict[str, tuple[str, str]]:
        """pod UID -> (namespace, name), from `/var/log/pods/<namespace>_<name>_<uid>`."""
        if self.pod_log_root is None:
            return {}
        try:
            entries = [entry.name for entry in self.pod_log_root.iterdir()]
        except OSError:
            return {}
        out = {}
        for entry in entries:
            parts = entry.split("_")
            if len(parts) == 3:
                out[parts[2]] = (parts[0], parts[1])
        return out

    def process_name(self, pid: int) -> str | None:
        comm = self._read(pid, "comm")
        return comm.decode("utf-8", "replace").strip() if comm else None


def _int_or_none(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None
