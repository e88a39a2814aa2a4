"""The words every layer shares: run and task statuses, triggers, failure kinds, and the values the engine and the
executors hand each other.

Why one plain module: these are passed between the store, the engine, the executors, the API and the webhooks. When
they lived where they were first needed (the statuses in the table module, `Failure` in the engine's state), every
executor imported the engine and the ORM only to name a status, and engine ⇄ executors was an import cycle. Here
they depend on nothing of Odin at run time (the standard library only; `TaskSpec` is named for type checkers), so any
module may import them without pulling in a layer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from odin.schema.model import TaskSpec


# -- statuses ---------------------------------------------------------------------------------------------------------
# Plain strings (StrEnum), so the API and SQL filters read naturally.


class RunStatus(StrEnum):
    QUEUED = "queued"  # waiting for a slot: its pipeline's `concurrency` limit or ODIN_MAX_ACTIVE_RUNS (`reason` says)
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ERROR = "error"  # Odin could not run it at all (e.g. the commit's files could not be materialised)
    SKIPPED = "skipped"  # never started: its pipeline already had `concurrency.limit` runs (`policy: skip`)

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_RUN


_TERMINAL_RUN = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.ERROR, RunStatus.SKIPPED}


class TaskStatus(StrEnum):
    PENDING = "pending"  # waiting for its dependencies or a free slot
    STARTING = "starting"  # handed to the executor, not yet seen running
    RUNNING = "running"
    RETRYING = "retrying"  # an attempt failed; the next one starts at `not_before`
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # an upstream task failed, or the run was cancelled before it started
    CANCELLED = "cancelled"  # killed while running because the run was cancelled

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL_TASK

    @property
    def active(self) -> bool:
        """Holds an execution slot."""
        return self in (TaskStatus.STARTING, TaskStatus.RUNNING)


_TERMINAL_TASK = {TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.CANCELLED}

REUSED = "Reused"
"""The reason of a task a rerun did not run again: it took the parent run's succeeded outcome (and its outputs)."""

CACHED = "Cached"
"""The reason of a task with `cache: true` that was not run: an earlier run's task with the same cache key succeeded
and its outputs still exist, so they were reused (the message says which run and commit)."""

WAITING_FOR_QUOTA = "WaitingForQuota"
"""The reason of a task still `starting` because the cluster refused its pod for now (an exhausted ResourceQuota): the
executor tries again with backoff, and the message says which quota. An executor reports it as an observation with
status STARTING, the one non-terminal note the engine records on a task that has not started yet."""


REPLACED = "Replaced"
"""The reason of a run cancelled because a newer run of its pipeline replaced it (`concurrency.policy: replace`); the
message names the newer run."""


class Trigger(StrEnum):
    """What started a run (or asked for a sync)."""

    POLL = "poll"
    WEBHOOK = "webhook"
    MANUAL = "manual"
    RERUN = "rerun"
    API = "api"
    SCHEDULE = "schedule"  # a slot of the pipeline's `schedule:` (controller/scheduler.py)
    TAG = "tag"  # a new or moved tag a repository's tag patterns match (controller/tags.py)
    PULL_REQUEST = "pull_request"  # a pull / merge request's head commit, or a `/retest` on it (controller/pulls.py)

    @property
    def automatic(self) -> bool:
        return self in (Trigger.POLL, Trigger.WEBHOOK)


class Failure(StrEnum):
    """Why an attempt failed, which decides whether it is retried.

    USER: the task's own fault (non-zero exit, timeout): retried only as often as `retries` says.
    INFRA: the platform's fault (node lost, evicted, preempted, controller restart): retried with backoff, bounded by
      `RetryPolicy.max_infra_retries`, without consuming the user's `retries`.
    PERMANENT: retrying cannot help (image cannot be pulled, command not found, invalid object): never retried.
    """

    USER = "user"
    INFRA = "infra"
    PERMANENT = "permanent"


# -- what the engine and the executors hand each other ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunContext:
    """What an executor needs to know about the run a task belongs to."""

    run_id: str
    pipeline: str
    commit_sha: str | None
    repo_url: str | None
    trigger: str
    work_tree: str | None  # git tree oid of the pipeline directory at the commit (content address)
    work_path: str | None  # host directory holding those files (local executor)
    namespace: str | None = None
    run_path_id: str | None = None  # the run whose ${RUN_PATH} this one uses (reruns reusing outputs); default: itself
    secrets_withheld: bool = False  # a fork's pull request: no secret the server holds or names reaches its tasks

    @property
    def storage_id(self) -> str:
        """The id naming this run's ${RUN_PATH}."""
        return self.run_path_id or self.run_id


@dataclass(frozen=True, slots=True)
class TaskPaths:
    """The values of ${WORK_PATH}, ${RUN_PATH} and ${ROOT_PATH} as the task will see them."""

    work_path: str
    run_path: str
    root_path: str


@dataclass(frozen=True, slots=True)
class InputArtifact:
    """An artifact of an earlier task that this attempt references (`${tasks.T.artifacts.A}`), as it was recorded:
    an executor whose tasks cannot read the producer's files (Kubernetes) fetches it into the task first."""

    task: str
    name: str
    path: str  # relative to the producer's ${OUTPUT_PATH}
    digest: str
    location: str  # as recorded: a local path, or a URI (s3://bucket/key)
    tree: bool = False  # a directory, stored as a tree


@dataclass(frozen=True, slots=True)
class TaskLaunch:
    """One attempt of one task, fully resolved: variables substituted, environment complete."""

    run: RunContext
    spec: TaskSpec
    attempt: int
    command: tuple[str, ...]
    args: tuple[str, ...]
    env: Mapping[str, str]
    paths: TaskPaths
    inputs: tuple[InputArtifact, ...] = ()

    @property
    def task(self) -> str:
        return self.spec.name


@dataclass(frozen=True, slots=True)
class ActiveAttempt:
    """What the store remembers of an attempt that was active when the controller stopped."""

    run: RunContext
    spec: TaskSpec
    attempt: int
    status: TaskStatus
    resource: Mapping[str, Any] = field(default_factory=dict)  # pid, resource_kind/name, namespace...
    # A STARTING attempt's launch, rebuilt from the store exactly as it was first built, for an executor that can
    # submit it again idempotently (`Executor.relaunches_starting`); None otherwise.
    launch: TaskLaunch | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """Something an executor saw happen to an attempt. `status` is RUNNING, SUCCEEDED or FAILED, or STARTING for a
    note on an attempt that is not running yet (`WAITING_FOR_QUOTA`: its reason and message go on the task)."""

    run_id: str
    task: str
    attempt: int
    status: TaskStatus
    time: float = field(default_factory=time.time)
    exit_code: int | None = None
    reason: str | None = None
    message: str | None = None
    failure: Failure | None = None  # for FAILED
    resource: Mapping[str, Any] = field(default_factory=dict)  # fields to record on the task run
