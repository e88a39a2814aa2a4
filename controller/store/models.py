"""The tables: repositories, commits, runs, task runs, append-only events, users and their API tokens.

Design decisions worth knowing:
- A run's `dedupe_key` is `<repo_id>:<sha>:<pipeline>` for automatic triggers (poll, webhook) and NULL otherwise.
  A UNIQUE constraint on it is what makes "one automatic run per commit and pipeline" true even when a poll and a
  webhook race, or two replicas do: NULLs never collide, so manual runs and reruns are unconstrained.
- A run stores its frozen `spec` (the normalised pipeline) and `work_tree` (git tree oid of the pipeline directory),
  so it can be inspected and rerun exactly without git.
- Statuses are plain strings (`RunStatus`/`TaskStatus`, in `odin.controller.vocabulary` with the other words every
  layer shares) so the API and SQL filters read naturally.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

# The Core tables the store's queries use are `tables.py`'s, generated from the classes below
# (`python -m odin.controller.store.tablegen`), so that opening the store needs neither SQLModel nor the ORM. The
# names are here too, for code that imports them from the models: the same objects, not a second set of tables
# (the classes' own `__table__`s, on `SQLModel.metadata`, are what Alembic's autogenerate compares with).
from odin.controller.store.tables import (
    API_TOKENS,
    COMMITS,
    EVENTS,
    LEADERSHIP,
    REPO_BRANCHES,
    REPOSITORIES,
    REVOKED_SESSIONS,
    RUNS,
    SCHEDULED_SLOTS,
    STORE_VERSIONS,
    TASK_RUNS,
    USERS,
    WEBHOOK_DELIVERIES,
)
from odin.controller.store.types import JSONColumn, UTCDateTime, utcnow
from odin.controller.vocabulary import RunStatus, TaskStatus


class Repository(SQLModel, table=True):
    __tablename__ = "repositories"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    url: str = Field(max_length=2000, description="Redacted URL: never carries credentials.")
    branch: str = Field(max_length=255)
    credentials_ref: str | None = Field(
        default=None, max_length=500, description="env:NAME or file:/path, never a secret"
    )
    poll_interval: float = 30.0
    run_policy: str = Field(default="latest", max_length=16)
    namespace: str | None = Field(default=None, max_length=63)
    last_seen_sha: str | None = Field(default=None, max_length=40)
    conditions: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONColumn)
    last_fetch_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Artifact retention (docs/artifacts.md): keep the last N runs of each pipeline / runs younger than N days; NULL
    # turns a rule off, both NULL keep everything.
    retention_keep_runs: int | None = None
    retention_keep_days: float | None = None
    # Repositories as data (issue 13, migration 0011; docs/repositories.md): the branch patterns followed (NULL: the
    # one `branch`), the webhook secret by reference, whether it is followed now, when it was removed (its row and
    # history stay), and where it came from (`settings`: ODIN_REPO, imported at start; `api`: /v1/repos).
    branches: list[str] | None = Field(default=None, sa_type=JSONColumn)
    webhook_secret_ref: str | None = Field(
        default=None, max_length=500, description="env:NAME or file:/path, never a secret"
    )
    enabled: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    removed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    origin: str = Field(default="settings", max_length=16, sa_column_kwargs={"server_default": "settings"})
    # Tag patterns (issue 13 item 2, migration 0015): the tags followed (NULL: none), and every tag of the remote at
    # the last listing, name -> commit (NULL: never listed; the next listing is the baseline).
    tags: list[str] | None = Field(default=None, sa_type=JSONColumn)
    tags_seen: dict[str, str] | None = Field(default=None, sa_type=JSONColumn)
    # Pull requests (issue 13 item 3, migration 0016; docs/repositories.md): which run (`off`, `same-repo`, `all`),
    # and the provider logins whose `/retest` comments are obeyed besides the provider's own roles (NULL: none).
    pull_requests: str = Field(default="off", max_length=16, sa_column_kwargs={"server_default": "off"})
    pr_approvers: list[str] | None = Field(default=None, sa_type=JSONColumn)


class RepoBranch(SQLModel, table=True):
    """Where sync left off on a further branch a repository's patterns match (its own `branch` uses the
    repository's `last_seen_sha`), and that branch's Ready condition."""

    __tablename__ = "repo_branches"
    __table_args__ = (sa.UniqueConstraint("repo_id", "branch", name="uq_repo_branches_repo_branch"),)

    id: int | None = Field(default=None, primary_key=True)
    repo_id: int = Field(foreign_key="repositories.id")
    branch: str = Field(max_length=255)
    last_seen_sha: str | None = Field(default=None, max_length=40)
    conditions: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONColumn)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Commit(SQLModel, table=True):
    __tablename__ = "commits"
    __table_args__ = (
        sa.UniqueConstraint("repo_id", "sha", name="uq_commits_repo_sha"),
        # The timeline's order and keyset (migration 0023).
        sa.Index("ix_commits_seen_at_id", "seen_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    repo_id: int = Field(foreign_key="repositories.id", index=True)
    sha: str = Field(max_length=40, index=True)
    branch: str | None = Field(default=None, max_length=255)
    parents: list[str] = Field(default_factory=list, sa_type=JSONColumn)
    author_name: str = Field(default="", max_length=500)
    author_email: str = Field(default="", max_length=500)
    message: str = Field(default="", sa_type=sa.Text)
    committed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # valid | invalid | skipped ([skip ci]) | absorbed (part of a push whose tip ran, policy=latest) | baseline
    validation: str = Field(default="valid", max_length=16)
    problems: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONColumn)
    pipelines_changed: list[str] = Field(default_factory=list, sa_type=JSONColumn)
    absorbed_by: str | None = Field(default=None, max_length=40, description="Tip sha whose runs cover this commit.")


class Run(SQLModel, table=True):
    __tablename__ = "runs"
    __table_args__ = (
        sa.Index("ix_runs_pipeline_created", "pipeline", "created_at"),
        sa.Index("ix_runs_status", "status"),
        sa.Index("ix_runs_created", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=100)
    repo_id: int | None = Field(default=None, foreign_key="repositories.id", index=True)
    pipeline: str = Field(max_length=500, description="Directory of the pipeline, repository-relative.")
    commit_sha: str | None = Field(default=None, max_length=40, index=True)
    branch: str | None = Field(default=None, max_length=255)
    tag: str | None = Field(default=None, max_length=255, description="The tag a tag-triggered run ran for.")
    trigger: str = Field(max_length=16)
    triggered_by: str | None = Field(default=None, max_length=255)
    params: dict[str, str] = Field(default_factory=dict, sa_type=JSONColumn)
    spec: dict[str, Any] = Field(default_factory=dict, sa_type=JSONColumn)
    work_tree: str | None = Field(default=None, max_length=64, description="Git tree oid of the pipeline directory.")
    work_path: str | None = Field(default=None, max_length=4096, description="Host path of the files (local runs).")
    status: str = Field(default=RunStatus.PENDING, max_length=16)
    reason: str | None = Field(default=None, max_length=100)
    message: str | None = Field(default=None, sa_type=sa.Text)
    parallelism: int | None = None
    cancel_requested: bool = False
    no_cache: bool = Field(
        default=False,
        description="Started with --no-cache: cached tasks run, no lookup.",
        sa_column_kwargs={"server_default": sa.false()},  # as migration 0007 made it (rows that predate the column)
    )
    parent_run: str | None = Field(default=None, max_length=100, index=True)
    run_path_id: str | None = Field(
        default=None,
        max_length=100,
        description="Run whose ${RUN_PATH} this run uses: itself (None), or the run it reuses outputs from (reruns).",
    )
    dedupe_key: str | None = Field(default=None, max_length=700, unique=True)
    absorbed_commits: list[str] = Field(default_factory=list, sa_type=JSONColumn)
    conditions: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONColumn)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Its MLflow run (issue 11, item 7; migration 0008): ids kept so a restart finishes what it opened, and
    # `mlflow_status` the status mirrored to MLflow once the run ended (NULL: not closed there yet).
    mlflow_run_id: str | None = Field(default=None, max_length=64)
    mlflow_experiment_id: str | None = Field(default=None, max_length=64)
    mlflow_status: str | None = Field(default=None, max_length=16)
    artifacts_expired_at: datetime | None = Field(
        default=None, sa_type=UTCDateTime, description="When retention let this run's artifacts go."
    )
    # Queueing (issue 13 item 5; migration 0012): copied from the frozen spec, so the queue is ordered and limited
    # in SQL without reading specs. NULL `concurrency_limit`: the pipeline has no `concurrency:`.
    priority: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    concurrency_limit: int | None = None
    # Pull requests (issue 13 item 3; migration 0016): the pull request a `pull_request` run ran for (its number at
    # `pr_provider`), and whether it came from a fork: then none of the repository's secrets reach its tasks.
    pull_request: int | None = None
    pr_provider: str | None = Field(default=None, max_length=16)
    secrets_withheld: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    # Retention of events and logs (issue 15 item 5; migration 0022): when the sweep last deleted events of this run
    # (`ODIN_EVENTS_KEEP_DAYS`) and when it deleted its task logs (`ODIN_LOGS_KEEP_DAYS`). NULL: nothing removed.
    events_pruned_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    logs_pruned_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class TaskRun(SQLModel, table=True):
    __tablename__ = "task_runs"
    __table_args__ = (
        sa.UniqueConstraint("run_id", "name", name="uq_task_runs_run_name"),
        sa.Index("ix_task_runs_cache_key_status", "cache_key", "status"),
        # A run's tasks in creation order, a page at a time (migration 0023; replaced the run_id index).
        sa.Index("ix_task_runs_run_id_id", "run_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(foreign_key="runs.id", max_length=100)
    name: str = Field(max_length=63)
    status: str = Field(default=TaskStatus.PENDING, max_length=16)
    attempt: int = 0
    user_failures: int = Field(default=0, description="Attempts that failed by the task's own fault.")
    infra_failures: int = Field(default=0, description="Attempts lost to the platform (not counted against retries).")
    resource_kind: str | None = Field(default=None, max_length=63)
    resource_name: str | None = Field(default=None, max_length=253)
    namespace: str | None = Field(default=None, max_length=63)
    pid: int | None = None
    exit_code: int | None = None
    reason: str | None = Field(default=None, max_length=100)
    message: str | None = Field(default=None, sa_type=sa.Text)
    failure: str | None = Field(default=None, max_length=16, description="user | infra | permanent")
    node: str | None = Field(default=None, max_length=253)
    gpus: list[str] = Field(default_factory=list, sa_type=JSONColumn)
    log_path: str | None = Field(default=None, max_length=4096)
    not_before: datetime | None = Field(default=None, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # What the succeeded attempt produced (issue 11), recorded with its status in the same row update: `results` maps
    # a declared result to its JSON value; `artifacts` maps a declared artifact to {path, location, type, size,
    # digest}. NULL until a task with declared outputs succeeds; cleared when a new attempt starts.
    results: dict[str, Any] | None = Field(default=None, sa_type=JSONColumn)
    artifacts: dict[str, dict[str, Any]] | None = Field(default=None, sa_type=JSONColumn)
    # The task's cache key (sha256 hex, `engine/cache.py`) when it has `cache: true`: recorded hit or miss, looked up
    # by (cache_key, status = succeeded) to reuse an earlier run's outputs (migration 0007).
    cache_key: str | None = Field(default=None, max_length=64)
    mlflow_run_id: str | None = Field(default=None, max_length=64, description="The task's nested MLflow run.")
    # What the attempt used of its GPUs (issue 10 item 4; controller/gpu_usage.py): GPUs, GPU-seconds, utilisation
    # mean and peak, peak memory, the idle flag. Written by the GPU usage sampler while the attempt runs and once
    # more when it ends; NULL for tasks that never had a GPU sampled.
    gpu_usage: dict[str, Any] | None = Field(default=None, sa_type=JSONColumn)


class Event(SQLModel, table=True):
    """Append-only record of every state change: the audit trail and the source of live streams."""

    __tablename__ = "events"
    __table_args__ = (sa.Index("ix_events_run_id_id", "run_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    time: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    kind: str = Field(max_length=40, description="e.g. run.status, task.status, commit.seen, repo.condition")
    repo_id: int | None = Field(default=None)
    commit_sha: str | None = Field(default=None, max_length=40, index=True)
    run_id: str | None = Field(default=None, max_length=100)
    task: str | None = Field(default=None, max_length=63)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONColumn)


class WebhookDelivery(SQLModel, table=True):
    """A webhook delivery that passed its signature check: the audit trail of what providers told Odin.

    UNIQUE (provider, delivery_id) is what turns a redelivery into a no-op, even when copies arrive at once on several
    replicas: the database, not a check-then-insert, decides which copy is first. Unauthenticated requests are never
    written (that would let anyone fill the table); they only reach the log and the metrics.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("provider", "delivery_id", name="uq_webhook_deliveries_provider_delivery"),
        sa.Index("ix_webhook_deliveries_received_at", "received_at"),
        sa.Index("ix_webhook_deliveries_repo_sha", "repo_id", "sha"),
    )

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=16, description="github | gitlab | gitea | bitbucket | generic")
    delivery_id: str = Field(max_length=200, description="The provider's id of the delivery (or a digest of the body).")
    repo_id: int | None = Field(default=None, foreign_key="repositories.id")
    event: str = Field(max_length=100, description="The provider's event name, e.g. push, Tag Push Hook, repo:push.")
    ref: str | None = Field(default=None, max_length=255)
    sha: str | None = Field(default=None, max_length=40, description="The commit the payload names (never trusted).")
    outcome: str = Field(max_length=16, description="accepted | ignored | rejected")
    reason: str | None = Field(default=None, sa_type=sa.Text)
    sha_verified: bool | None = Field(
        default=None, description="After the sync it caused: was `sha` on the remote? None: not checked (yet)."
    )
    run_id: str | None = Field(default=None, max_length=100, description="The run a generic run request started.")
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=100, unique=True)
    password_hash: str = Field(max_length=500)
    role: str = Field(default="viewer", max_length=16, description="admin | member | viewer")
    disabled: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    email: str | None = Field(default=None, max_length=320, description="Author e-mail of commits made via the API.")
    token_generation: int = Field(
        default=0,
        sa_column_kwargs={"server_default": "0"},
        description="Copied into each access token at login; raised by logging out everywhere, a password change or "
        "disabling, which ends every session issued before (see odin.api.auth.standing).",
    )


class ApiToken(SQLModel, table=True):
    """A long-lived token for CI and tools, acting as its user with at most the user's role.

    Only a SHA-256 of the token is stored: tokens are 256 random bits, so a fast hash is as safe as a slow one
    against guessing, and it can be looked up by equality on every request (a salted argon2 hash could not).
    """

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    name: str = Field(max_length=100)
    token_hash: str = Field(max_length=64, unique=True)
    prefix: str = Field(max_length=16, description="The token's first characters, to recognise it in lists.")
    role: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RevokedSession(SQLModel, table=True):
    """A login session (an access token's `jti`) ended by its user's logout, kept until the token expires anyway.

    Logging out everywhere needs no row per token: it raises the user's `token_generation` instead.
    """

    __tablename__ = "revoked_sessions"

    jti: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="users.id", index=True)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class ScheduledSlot(SQLModel, table=True):
    """A slot of a pipeline's schedule that was started: the record that makes "once per slot" true.

    UNIQUE (repo_id, branch, pipeline, schedule, slot) is the slot's key, as `runs.dedupe_key` is a commit's: two
    replicas, or a leader restarted mid-tick, racing to start one slot insert one row, and only the one that inserted
    it creates the run (in the same transaction). `schedule` says which of the pipeline's schedules it was (its cron,
    zone and a digest of its parameters), so two schedules of one pipeline due at one instant each start their run,
    and each schedule's catch-up starts from its own last slot.
    """

    __tablename__ = "scheduled_slots"
    __table_args__ = (
        sa.UniqueConstraint(
            "repo_id", "branch", "pipeline", "schedule", "slot", name="uq_scheduled_slots_schedule_slot"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    repo_id: int = Field(foreign_key="repositories.id")
    branch: str = Field(max_length=255)
    pipeline: str = Field(max_length=500)
    slot: datetime = Field(sa_type=UTCDateTime, description="The slot's instant, as its cron expression names it.")
    schedule: str = Field(
        max_length=300,
        description="`<cron>@<time zone>` (and `#<digest of its params>`) of the schedule that named the slot.",
    )
    run_id: str | None = Field(default=None, max_length=100, description="The run started for the slot.")
    fired_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Leadership(SQLModel, table=True):
    """Who schedules, and since which leadership: the row the leader's writes are fenced on.

    Every acquisition adds one to `epoch`; the engine's writes that start or change work check, in their own
    transaction, that the epoch they were decided under is still the row's (`store.leadership.Fence`). A leader
    paused past `expires_at` (SIGSTOP, a long GC, a partition) finds on waking that another replica moved the epoch
    on, and its writes are refused. `backend_pid` is the Postgres backend of the leader's lease connection: when it
    is gone (the leader died), a follower need not wait for `expires_at`.
    """

    __tablename__ = "leadership"

    name: str = Field(primary_key=True, max_length=100)
    epoch: int = Field(default=0, sa_type=sa.BigInteger)
    holder: str | None = Field(default=None, max_length=300, description="host:pid of the leader, for people.")
    backend_pid: int | None = Field(default=None)
    acquired_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class StoreVersion(SQLModel, table=True):
    """A counter that a kind of change moves on, so that a replica can tell whether it changed by reading one row.

    `registrations` (`store.versions.REGISTRATIONS`): every write that changes what the controller follows of a
    registered repository (its URL, branches, credentials, poll interval... whether it is enabled or removed) adds
    one in its own transaction, and each replica's periodic refresh reads the whole `repositories` table only when
    the number moved (`Controller.refresh_if_changed`). No row until the first such write (version 0).
    """

    __tablename__ = "store_versions"

    name: str = Field(primary_key=True, max_length=100)
    version: int = Field(default=0, sa_type=sa.BigInteger)


__all__ = [
    "API_TOKENS",
    "COMMITS",
    "EVENTS",
    "LEADERSHIP",
    "REPOSITORIES",
    "REPO_BRANCHES",
    "REVOKED_SESSIONS",
    "RUNS",
    "SCHEDULED_SLOTS",
    "STORE_VERSIONS",
    "TASK_RUNS",
    "USERS",
    "WEBHOOK_DELIVERIES",
    "ApiToken",
    "Commit",
    "Event",
    "Leadership",
    "RepoBranch",
    "Repository",
    "RevokedSession",
    "Run",
    "ScheduledSlot",
    "StoreVersion",
    "TaskRun",
    "User",
    "WebhookDelivery",
]
