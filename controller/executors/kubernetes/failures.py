"""What a pod's status means for its task: running, done, failed (and why, and whether a retry can help), or stuck.

This is the classification table of docs/kubernetes.md in code, kept free of I/O so it is tested line by line.

Failure kinds, and why:

* INFRA (retried with backoff, not counted against `retries`): the platform took the pod away -- evicted, preempted,
  its node lost or shut down, refused at admission by the kubelet, deleted by someone else. The same pod on another
  node would likely succeed.
* USER (retried as often as `retries` says): the task's own process failed -- a non-zero exit, a timeout, and
  OOMKilled. OOMKilled is USER because the memory limit is the task's own setting and the same limit fails the same
  way again; a retry only helps with nondeterministic peaks, which is exactly what `retries` is for.
* PERMANENT (never retried): nothing changes on a retry -- an image that cannot be pulled (after a grace period, since
  registries hiccup), an invalid image name, a command that does not exist (exit 127/126, StartError), a Secret,
  ConfigMap or PVC that is still missing after a deadline, a pod unschedulable past its deadline (the same pod asks the
  same scheduler again: wait longer by raising the deadline or use a queue instead).

A pod that is merely waiting -- for a node, a queue (`SchedulingGated`), a pull -- is not a failure until a deadline
passes; `recheck_at` says when to look again, so deadlines cost no API requests.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from odin.controller.executors.kubernetes.api import Json
from odin.controller.vocabulary import Failure

# Waiting reasons that can never resolve by themselves.
PERMANENT_WAITING = frozenset({"InvalidImageName", "ErrImageNeverPull"})
# Waiting reasons a registry or runtime hiccup can cause: failures only after a grace period.
PULL_WAITING = frozenset({"ImagePullBackOff", "ErrImagePull"})
START_WAITING = frozenset({"CreateContainerError", "RunContainerError"})
CONFIG_WAITING = frozenset({"CreateContainerConfigError"})
# Container termination reasons meaning the command could not be started at all.
CANNOT_START = frozenset({"ContainerCannotRun", "StartError"})

_DISRUPTIONS = {
    "PreemptionByScheduler": "Preempted",
    "PreemptionByKubeScheduler": "Preempted",
    "DeletionByTaintManager": "NodeLost",
    "DeletionByPodGC": "NodeLost",
    "TerminationByKubelet": "Evicted",
    "EvictionByEvictionAPI": "Evicted",
}
_INFRA_POD_REASONS = {
    "Evicted": "Evicted",
    "NodeLost": "NodeLost",
    "Shutdown": "NodeShutdown",
    "NodeShutdown": "NodeShutdown",
    "Terminated": "NodeShutdown",
    "UnexpectedAdmissionError": "AdmissionRejected",
    "NodeAffinity": "AdmissionRejected",
    "Preempting": "Preempted",
}
_MISSING_CLAIM = re.compile(r'persistentvolumeclaim "([^"]+)" not found')
_MOUNT_REASONS = frozenset({"FailedMount", "FailedAttachVolume"})


@dataclass(frozen=True, slots=True)
class Deadlines:
    """How long a pod may wait in each state before it counts as failed (seconds; 0 = forever)."""

    image_pull_grace: float = 120.0
    missing_volume: float = 120.0
    unschedulable: float = 1800.0


@dataclass(frozen=True, slots=True)
class PodState:
    """One pod, classified."""

    name: str
    running: bool = False
    succeeded: bool = False
    failed: bool = False  # terminal failure, or stuck past a deadline
    stuck: bool = False  # failed while still pending: the object must be deleted
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    failure: Failure | None = None
    recheck_at: float | None = None
    check_events: bool = False  # pending with volumes not mounting: the pod's events tell why
    node: str | None = None
    disruption: str | None = None  # Preempted/NodeLost/Evicted seen on a pod that is not (yet) terminal

    @property
    def terminal(self) -> bool:
        return self.succeeded or self.failed


FirstSeen = Callable[[str], float]  # (what was seen) -> when it was first seen, epoch seconds


def conditions(obj: Json) -> list[Json]:
    return [c for c in (obj.get("status") or {}).get("conditions") or [] if isinstance(c, dict)]


def condition(obj: Json, cond_type: str) -> Json | None:
    return next((c for c in conditions(obj) if c.get("type") == cond_type), None)


def condition_true(obj: Json, cond_type: str) -> bool:
    found = condition(obj, cond_type)
    return bool(found and found.get("status") == "True")


def parse_time(text: Any) -> float | None:
    """An RFC 3339 timestamp as epoch seconds."""
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _container_statuses(pod: Json) -> list[Json]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def _disruption(pod: Json) -> tuple[str, str] | None:
    found = condition(pod, "DisruptionTarget")
    if not found or found.get("status") != "True":
        return None
    reason = str(found.get("reason") or "")
    return _DISRUPTIONS.get(reason, "Disrupted"), str(found.get("message") or reason or "pod disrupted")


def _past(deadline: float, since: float, now: float) -> tuple[bool, float | None]:
    """(expired?, when to look again): a deadline of 0 never expires."""
    if deadline <= 0:
        return False, None
    due = since + deadline
    return now >= due, (None if now >= due else due)


def _fmt(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def classify_exit(code: int, reason: str | None, message: str | None) -> tuple[str, Failure, str]:
    """A terminated container's outcome: (reason, failure kind, message)."""
    detail = f": {message.strip()}" if message and message.strip() else ""
    if reason == "OOMKilled":
        return "OOMKilled", Failure.USER, f"the container exceeded its memory limit (exit {code}){detail}"
    if reason in CANNOT_START:
        return str(reason), Failure.PERMANENT, f"the container could not start{detail or f' (exit {code})'}"
    if code == 127:
        return "CommandNotFound", Failure.PERMANENT, f"exit code 127: the command was not found{detail}"
    if code == 126:
        return "NotExecutable", Failure.PERMANENT, f"exit code 126: the command is not executable{detail}"
    return "Error", Failure.USER, f"exit code {code}{detail}"


def _failed(pod: Json, name: str, node: str | None) -> PodState:
    status = pod.get("status") or {}
    pod_reason = str(status.get("reason") or "")
    pod_message = str(status.get("message") or "")
    disruption = _disruption(pod)
    if pod_reason in _INFRA_POD_REASONS:
        return PodState(
            name, failed=True, reason=_INFRA_POD_REASONS[pod_reason], message=pod_message or pod_reason,
            failure=Failure.INFRA, node=node, exit_code=_first_exit(pod),
        )  # fmt: skip
    if pod_reason.startswith("OutOf"):  # kubelet admission: OutOfcpu, OutOfnvidia.com/gpu ...
        return PodState(name, failed=True, reason="AdmissionRejected", message=pod_message or pod_reason,
                        failure=Failure.INFRA, node=node)  # fmt: skip
    if disruption is not None:
        reason, message = disruption
        return PodState(name, failed=True, reason=reason, message=message, failure=Failure.INFRA, node=node,
                        exit_code=_first_exit(pod))  # fmt: skip
    if pod_reason == "DeadlineExceeded":
        return PodState(name, failed=True, reason="DeadlineExceeded", message=pod_message or "active deadline reached",
                        failure=Failure.USER, node=node)  # fmt: skip
    for cs in _container_statuses(pod):
        terminated = (cs.get("state") or {}).get("terminated") or {}
        code = terminated.get("exitCode")
        if isinstance(code, int) and (code != 0 or terminated.get("reason") in ("OOMKilled", *CANNOT_START)):
            reason, failure, message = classify_exit(code, terminated.get("reason"), terminated.get("message"))
            if len(_container_statuses(pod)) > 1:
                message = f"container {cs.get('name')}: {message}"
            return PodState(name, failed=True, reason=reason, message=message, exit_code=code, failure=failure,
                            node=node)  # fmt: skip
    return PodState(name, failed=True, reason=pod_reason or "Failed", message=pod_message or "the pod failed",
                    failure=Failure.USER, node=node, exit_code=_first_exit(pod))  # fmt: skip


def _first_exit(pod: Json) -> int | None:
    for cs in _container_statuses(pod):
        code = ((cs.get("state") or {}).get("terminated") or {}).get("exitCode")
        if isinstance(code, int) and code != 0:
            return code
    return None


def _uid(pod: Json) -> str:
    meta = pod.get("metadata") or {}
    return str(meta.get("uid") or meta.get("name") or "")


def classify_pod(
    pod: Json,
    *,
    now: float,
    deadlines: Deadlines,
    first_seen: FirstSeen,
    missing_volume_event: str | None = None,
) -> PodState:
    """Classify one pod. `first_seen(key)` remembers when a waiting state was first seen (the API gives no time for
    it); `missing_volume_event` is the message of a FailedMount event saying a volume source was not found.

    In order: an ended pod is done or failed; a container that cannot start fails the pod (at once, or past its grace
    period); a running pod runs; a pending one waits -- for a node, or for its volumes -- until a deadline."""
    name = str((pod.get("metadata") or {}).get("name") or "")
    phase = str((pod.get("status") or {}).get("phase") or "Pending")
    node = (pod.get("spec") or {}).get("nodeName") or None
    if phase == "Succeeded":
        return PodState(name, succeeded=True, reason="Completed", exit_code=0, node=node)
    if phase == "Failed":
        return _failed(pod, name, node)
    disruption = _disruption(pod)
    disrupted = disruption[0] if disruption else None
    recheck: list[float] = []
    stuck = _containers_stuck(pod, name, node, now=now, deadlines=deadlines, first_seen=first_seen, recheck=recheck)
    if stuck is not None:
        return stuck
    if phase == "Running":
        return PodState(name, running=True, node=node, disruption=disrupted, recheck_at=min(recheck, default=None))
    waiting = _pending(
        pod, name, node, disrupted, now=now, deadlines=deadlines, first_seen=first_seen, recheck=recheck,
        missing_volume_event=missing_volume_event,
    )  # fmt: skip
    if waiting is not None:
        return waiting
    return PodState(name, node=node, disruption=disrupted, recheck_at=min(recheck, default=None))


def _containers_stuck(
    pod: Json, name: str, node: str | None, *, now: float, deadlines: Deadlines, first_seen: FirstSeen,
    recheck: list[float],
) -> PodState | None:  # fmt: skip
    """A container that cannot start: failed at once (a bad image name), or past its grace period (a pull, a missing
    ConfigMap key); `recheck` gets when each grace period ends."""
    uid = _uid(pod)
    for cs in _container_statuses(pod):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if not reason:
            continue
        text = f"container {cs.get('name')}: {reason}: {waiting.get('message') or reason}"
        if reason in PERMANENT_WAITING:
            return PodState(name, failed=True, stuck=True, reason=str(reason), message=text,
                            failure=Failure.PERMANENT, node=node)  # fmt: skip
        grace = (
            deadlines.image_pull_grace
            if reason in PULL_WAITING or reason in START_WAITING
            else deadlines.missing_volume
            if reason in CONFIG_WAITING
            else None
        )
        if grace is None:
            continue
        expired, again = _past(grace, first_seen(f"{uid}:{cs.get('name')}:{reason}"), now)
        if expired:
            return PodState(name, failed=True, stuck=True, reason=str(reason),
                            message=f"{text} (for more than {_fmt(grace)})", failure=Failure.PERMANENT,
                            node=node)  # fmt: skip
        if again is not None:
            recheck.append(again)
    return None


def _pending(
    pod: Json, name: str, node: str | None, disrupted: str | None, *, now: float, deadlines: Deadlines,
    first_seen: FirstSeen, recheck: list[float], missing_volume_event: str | None,
) -> PodState | None:  # fmt: skip
    """A pending pod waiting for a node (unschedulable) or for its volumes to mount: failed or worth a look at its
    events past the deadline, else None (`recheck` gets when the deadline ends)."""
    uid = _uid(pod)
    scheduled = condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        message = str(scheduled.get("message") or "no node can run the pod")
        since = parse_time(scheduled.get("lastTransitionTime")) or first_seen(f"{uid}:Unschedulable")
        claim = _MISSING_CLAIM.search(message)
        deadline = deadlines.missing_volume if claim else deadlines.unschedulable
        expired, again = _past(deadline, since, now)
        if expired:
            reason = "MissingVolume" if claim else "Unschedulable"
            return PodState(name, failed=True, stuck=True, reason=reason,
                            message=f"unschedulable for more than {_fmt(deadline)}: {message}",
                            failure=Failure.PERMANENT, node=node)  # fmt: skip
        if again is not None:
            recheck.append(again)
    elif scheduled is not None and scheduled.get("status") == "True" and _creating(pod):
        if missing_volume_event:
            return PodState(name, failed=True, stuck=True, reason="MissingVolume", message=missing_volume_event,
                            failure=Failure.PERMANENT, node=node)  # fmt: skip
        since = parse_time(scheduled.get("lastTransitionTime")) or first_seen(f"{uid}:Creating")
        expired, again = _past(deadlines.missing_volume, since, now)
        if again is not None:
            recheck.append(again)
        if expired:
            return PodState(name, node=node, check_events=True, disruption=disrupted,
                            recheck_at=now + max(deadlines.missing_volume, 1.0))  # fmt: skip
    return None


def _creating(pod: Json) -> bool:
    """Scheduled, and some container still `ContainerCreating` (volumes not mounted yet) or not reported at all."""
    statuses = _container_statuses(pod)
    if not statuses:
        return True
    return any(((cs.get("state") or {}).get("waiting") or {}).get("reason") == "ContainerCreating" for cs in statuses)


def missing_volume_message(events: Iterable[Json]) -> str | None:
    """The newest event saying a volume's source (Secret, ConfigMap, PVC) does not exist, if any."""
    found: str | None = None
    for event in events:
        if event.get("reason") in _MOUNT_REASONS and "not found" in str(event.get("message") or ""):
            found = f"{event.get('reason')}: {event.get('message')}"
    return found
