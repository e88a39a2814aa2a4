"""What the Kubernetes executor knows about attempts and runs, shared by the submitter, the tracker and the log reader.

One table, one lock: the submitter registers an attempt before it creates the object, the watches fill in the object
and its pods, and the log reader looks pods up, all from different threads. Keeping the records here (and not in
whichever part touches them first) is what lets those three parts stay separate classes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from odin.controller.executors.kubernetes import names
from odin.controller.executors.kubernetes.api import Json
from odin.controller.executors.kubernetes.handlers.base import ResourceHandler, Verdict
from odin.controller.executors.kubernetes.workdir import WorkTree
from odin.controller.vocabulary import Failure, RunContext, TaskLaunch, TaskStatus
from odin.schema.model import TaskSpec

AttemptKey = tuple[str, str, int]  # (run id, task, attempt)
OwnerKey = tuple[str, tuple[str, str, str], str]  # (namespace, kind key, object name)


@dataclass(frozen=True, slots=True)
class Blocker:
    """Why a run's tasks cannot start (its namespace or files could not be prepared), as a task status will say it.

    Not `odin.schema.problems.Problem`, which locates a mistake in a pipeline file."""

    reason: str
    message: str
    failure: Failure


@dataclass
class RunRecord:
    """A run this executor prepares: its `${WORK_PATH}` ConfigMaps, or why they could not be made."""

    ctx: RunContext
    namespace: str
    ready: threading.Event = field(default_factory=threading.Event)
    work: WorkTree | None = None
    work_digest: str | None = None  # the directory as a tree in the artifact store, when too large for ConfigMaps
    problem: Blocker | None = None


@dataclass
class Attempt:
    """Everything known about one attempt's objects. `tracked`: the engine expects observations about it."""

    key: AttemptKey
    namespace: str
    name: str
    handler: ResourceHandler | None = None
    tracked: bool = False
    run: RunContext | None = None
    spec: TaskSpec | None = None
    launch: TaskLaunch | None = None
    obj: Json | None = None
    deleted: bool = False
    submitted: bool = False  # the create was acknowledged (or the object was seen)
    pods: dict[str, Json] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    reported: TaskStatus | None = None
    killed: str | None = None
    disruption: str | None = None
    missing_volume: dict[str, str] = field(default_factory=dict)
    events_checked: dict[str, float] = field(default_factory=dict)
    terminal_at: float | None = None
    verdict: Verdict | None = None
    quota_waits: int = 0  # creates refused so far by an exhausted ResourceQuota (the submitter's backoff)
    pods_refreshed: bool = False  # pods re-listed once because the top-level object ended before their events

    @property
    def run_id(self) -> str:
        return self.key[0]

    @property
    def task(self) -> str:
        return self.key[1]

    @property
    def attempt(self) -> int:
        return self.key[2]

    @property
    def exists(self) -> bool:
        return self.obj is not None or bool(self.pods)

    @property
    def reported_terminal(self) -> bool:
        return self.reported is not None and self.reported.terminal


CLEANED_MEMORY = 600.0  # seconds a cleaned-up attempt's late watch events are ignored


class AttemptTable:
    """The attempts and runs, by key, behind one re-entrant lock. Methods ending in `_locked` expect it held."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.attempts: dict[AttemptKey, Attempt] = {}
        self.owners: dict[OwnerKey, AttemptKey] = {}
        self.runs: dict[str, RunRecord] = {}
        self._seen: dict[str, dict[str, float]] = {}  # pod uid -> state -> first seen
        # Attempts whose objects clean-up deleted, and when: the watch events of that deletion (a pod's MODIFIED with
        # its deletionTimestamp, then DELETED) may arrive after the record is dropped, and must not bring it back.
        self._cleaned: dict[AttemptKey, float] = {}

    def get(self, key: AttemptKey) -> Attempt | None:
        with self.lock:
            return self.attempts.get(key)

    def record_locked(self, key: AttemptKey, namespace: str, name: str, *, create: bool = True) -> Attempt | None:
        """The attempt's record; a new one (with `create`) the first time anything is heard of it."""
        record = self.attempts.get(key)
        if record is None and create and key not in self._cleaned:
            record = Attempt(key, namespace, name)
            self.attempts[key] = record
        return record

    def claim(
        self,
        key: AttemptKey,
        namespace: str,
        name: str,
        handler: ResourceHandler,
        run: RunContext,
        spec: TaskSpec,
        *,
        rename: bool,
    ) -> Attempt:
        """The engine asks about this attempt (start, or recover): track it. With `rename`, a record the watches made
        first takes the object's name and namespace (recovery keeps what the watches saw)."""
        with self.lock:
            self._cleaned.pop(key, None)
            record = self.record_locked(key, namespace, name)
            assert record is not None
            record.handler, record.tracked, record.run, record.spec = handler, True, run, spec
            if rename:
                record.name, record.namespace = name, namespace
            self.owners[(namespace, handler.kind.key, name)] = key
            return record

    def forget_locked(self, record: Attempt) -> None:
        self.attempts.pop(record.key, None)
        for pod in record.pods.values():
            self._seen.pop(str((pod.get("metadata") or {}).get("uid") or ""), None)
        if record.handler is not None:
            owner = (record.namespace, record.handler.kind.key, record.name)
            if self.owners.get(owner) == record.key:
                del self.owners[owner]

    def forget(self, record: Attempt) -> None:
        """Drop an attempt whose objects are gone (clean-up done); late watch events about them are ignored for
        `CLEANED_MEMORY` seconds."""
        now = time.time()
        with self.lock:
            self.forget_locked(record)
            self._cleaned[record.key] = now
            while self._cleaned:  # oldest first (insertion order)
                oldest, at = next(iter(self._cleaned.items()))
                if now - at < CLEANED_MEMORY:
                    break
                del self._cleaned[oldest]

    def snapshot(self) -> list[Attempt]:
        with self.lock:
            return list(self.attempts.values())

    def known_attempts(self, run_id: str, task: str) -> list[int]:
        with self.lock:
            return [k[2] for k in self.attempts if k[0] == run_id and k[1] == task]

    def first_seen(self, what: str) -> float:
        """When a pod was first seen in a state (`<pod uid>:<what>`): the API does not say how long it waited."""
        uid, _, state = what.partition(":")
        with self.lock:
            return self._seen.setdefault(uid, {}).setdefault(state, time.time())


def key_from_labels(labels: Mapping[str, str]) -> AttemptKey | None:
    run, task, attempt = labels.get(names.LABEL_RUN), labels.get(names.LABEL_TASK), labels.get(names.LABEL_ATTEMPT)
    if not run or not task or not attempt or not attempt.isdigit():
        return None
    return (run, task, int(attempt))


def controller_owner(obj: Json) -> Json | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None
