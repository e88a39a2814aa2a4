"""The store's tables as SQLAlchemy Core: GENERATED from `models.py` by `odin.controller.store.tablegen`; do not edit.

The SQLModel classes in `models.py` declare the schema; this file is what the store's queries use, so that opening
the store imports neither SQLModel nor the ORM (issue 15 item 2). After changing a model:

    python -m odin.controller.store.tablegen > controller/store/tables.py

`tests/store/test_tables.py` fails while this file differs from what that writes. String columns are `sa.String`
here where SQLModel says `AutoString` (the same VARCHAR on SQLite and Postgres).
"""

from __future__ import annotations

import sqlalchemy as sa

from odin.controller.store.types import JSONColumn, UTCDateTime, utcnow
from odin.controller.vocabulary import RunStatus, TaskStatus

METADATA = sa.MetaData(naming_convention={"ix": "ix_%(column_0_label)s"})


REPOSITORIES = sa.Table(
    "repositories",
    METADATA,
    sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
    sa.Column("name", sa.String(length=100), nullable=False, unique=True),
    sa.Column("url", sa.String(length=2000), nullable=False),
    sa.Column("branch", sa.String(length=255), nullable=False),
    sa.Column("credentials_ref", sa.String(length=500), nullable=True),
    sa.Column("poll_interval", sa.Float(), nullable=False, default=30.0),
    sa.Column("run_policy", sa.String(length=16), nullable=False, default="latest"),
    sa.Column("namespace", sa.String(length=63), nullable=True),
    sa.Column("last_seen_sha", sa.String(length=40), nullable=True),
    sa.Column("conditions", JSONColumn, nullable=False, default=list),
    sa.Column("last_fetch_at", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    sa.Column("retention_keep_runs", sa.Integer(), nullable=True),
    sa.Column("retention_keep_days", sa.Float(), nullable=True),
    sa.Column("branches", JSONColumn, nullable=True),
    sa.Column("webhook_secret_ref", sa.String(length=500), nullable=True),
    sa.Column("enabled", sa.Boolean(), nullable=False, default=True, server_default=sa.true()),
    sa.Column("removed_at", UTCDateTime(), nullable=True),
    sa.Column("origin", sa.String(length=16), nullable=False, default="settings", server_default="settings"),
    sa.Column("tags", JSONColumn, nullable=True),
    sa.Column("tags_seen", JSONColumn, nullable=True),
    sa.Column("pull_requests", sa.String(length=16), nullable=False, default="off", server_default="off"),
    sa.Column("pr_approvers", JSONColumn, nullable=True),
)

REPO_BRANCHES = sa.Table(
    "repo_branches",
    METADATA,
    sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
    sa.Column("repo_id", sa.Integer(), sa.ForeignKey("repositories.id"), nullable=False),
    sa.Column("branch", sa.String(length=255), nullable=False),
    sa.Column("last_seen_sha", sa.String(length=40), nullable=True),
    sa.Column("conditions", JSONColumn, nullable=False, default=list),
    sa.Column("updated_at", UTCDateTime(), nullable=False, default=utcnow),
    sa.UniqueConstraint("repo_id", "branch", name="uq_repo_branches_repo_branch"),
)

COMMITS = sa.Table(
    "commits",
    METADATA,
    sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
    sa.Column("repo_id", sa.Integer(), sa.ForeignKey("repositories.id"), nullable=False, index=True),
    sa.Column("sha", sa.String(length=40), nullable=False, index=True),
    sa.Column("branch", sa.String(length=255), nullable=True),
    sa.Column("parents", JSONColumn, nullable=False, default=list),
    sa.Column("author_name", sa.String(length=500), nullable=False, default=""),
    sa.Column("author_email", sa.String(length=500), nullable=False, default=""),
    sa.Column("message", sa.Text(), nullable=False, default=""),
    sa.Column("committed_at", UTCDateTime(), nullable=True),
    sa.Column("seen_at", UTCDateTime(), nullable=False, default=utcnow),
    sa.Column("validation", sa.String(length=16), nullable=False, default="valid"),
    sa.Column("problems", JSONColumn, nullable=False, default=list),
    sa.Column("pipelines_changed", JSONColumn, nullable=False, default=list),
    sa.Column("absorbed_by", sa.String(length=40), nullable=True),
    sa.UniqueConstraint("repo_id", "sha", name="uq_commits_repo_sha"),
    sa.Index("ix_commits_seen_at_id", "seen_at", "id"),
)

RUNS = sa.Table(
    "runs",
    METADATA,
    sa.Column("id", sa.String(length=100), primary_key=True, nullable=False),
    sa.Column("repo_id", sa.Integer(), sa.ForeignKey("repositories.id"), nullable=True, index=True),
    sa.Column("pipeline", sa.String(length=500), nullable=False),
    sa.Column("commit_sha", sa.String(length=40), nullable=True, index=True),
    sa.Column("branch", sa.String(length=255), nullable=True),
    sa.Column("tag", sa.String(length=255), nullable=True),
    sa.Column("trigger", sa.String(length=16), nullable=False),
    sa.Column("triggered_by", sa.String(length=255), nullable=True),
    sa.Column("params", JSONColumn, nullable=False, default=dict),
    sa.Column("spec", JSONColumn, nullable=False, default=dict),
    sa.Column("work_tree", sa.String(length=64), nullable=True),
    sa.Column("work_path", sa.String(length=4096), nullable=True),
    sa.Column("status", sa.String(length=16), nullable=False, default=RunStatus.PENDING),
    sa.Column("reason", sa.String(length=100), nullable=True),
    sa.Column("message", sa.Text(), nullable=True),
    sa.Column("parallelism", sa.Integer(), nullable=True),
    sa.Column("cancel_requested", sa.Boolean(), nullable=False, default=False),
    sa.Column("no_cache", sa.Boolean(), nullable=False, default=False, server_default=sa.false()),
    sa.Column("parent_run", sa.String(length=100), nullable=True, index=True),
    sa.Column("run_path_id", sa.String(length=100), nullable=True),
    sa.Column("dedupe_key", sa.String(length=700), nullable=True, unique=True),
    sa.Column("absorbed_commits", JSONColumn, nullable=False, default=list),
    sa.Column("conditions", JSONColumn, nullable=False, default=list),
    sa.Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("mlflow_run_id", sa.String(length=64), nullable=True),
    sa.Column("mlflow_experiment_id", sa.String(length=64), nullable=True),
    sa.Column("mlflow_status", sa.String(length=16), nullable=True),
    sa.Column("artifacts_expired_at", UTCDateTime(), nullable=True),
    sa.Column("priority", sa.Integer(), nullable=False, default=0, server_default="0"),
    sa.Column("concurrency_limit", sa.Integer(), nullable=True),
    sa.Column("pull_request", sa.Integer(), nullable=True),
    sa.Column("pr_provider", sa.String(length=16), nullable=True),
    sa.Column("secrets_withheld", sa.Boolean(), nullable=False, default=False, server_default=sa.false()),
    sa.Column("events_pruned_at", UTCDateTime(), nullable=True),
    sa.Column("logs_pruned_at", UTCDateTime(), nullable=True),
    sa.Index("ix_runs_created", "created_at"),
    sa.Index("ix_runs_pipeline_created", "pipeline", "created_at"),
    sa.Index("ix_runs_status", "status"),
)

TASK_RUNS = sa.Table(
    "task_runs",
    METADATA,
    sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
    sa.Column("run_id", sa.String(length=100), sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("name", sa.String(length=63), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False, default=TaskStatus.PENDING),
    sa.Column("attempt", sa.Integer(), nullable=False, default=0),
    sa.Column("user_failures", sa.Integer(), nullable=False, default=0),
    sa.Column("infra_failures", sa.Integer(), nullable=False, default=0),
    sa.Column("resource_kind", sa.String(length=63), nullable=True),
    sa.Column("resource_name", sa.String(length=253), nullable=True),
    sa.Column("namespace", sa.String(length=63), nullable=True),
    sa.Column("pid", sa.Integer(), nullable=True),
    sa.Column("exit_code", sa.Integer(), nullable=True),
    sa.Column("reason", sa.String(length=100), nullable=True),
    sa.Column("message", sa.Text(), nullable=True),
    sa.Column("failure", sa.String(length=16), nullable=True),
    sa.Column("node", sa.String(length=253), nullable=True),
    sa.Column("gpus", JSONColumn, nullable=False, default=list),
    sa.Column("log_path", sa.String(length=4096), nullable=True),
    sa.Column("not_before", UTCDateTime(), nullable=True),
    sa.Column("started_at", UTCDateTime(), nullable=True),
    sa.Column("finished_at", UTCDateTime(), nullable=True),
    sa.Column("results", JSONColumn, nullable=True),
    sa.Column("artifacts", JSONColumn, nullable=True),
    sa.Column("cache_key", sa.String(length=64), nullable=True),
    sa.Column("mlflow_run_id", sa.String(length=64), nullable=True),
    sa.Column("gpu_usage", JSONColumn, nullable=True),
    sa.UniqueConstraint("run_id", "name", name="uq_task_runs_run_name"),
    sa.Index("ix_task_runs_cache_key_status", "cache_key", "status"),
    sa.Index("ix_task_runs_run_id_id", "run_id", "id"),
)

EVENTS = sa.Table(
    "events",
    METADATA,
    sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
    sa.Column("time", UTCDateTime(), nullable=False, default=utcnow),
    sa.Column("kind", sa.String(length=40), nullable=False),
    sa.Column("repo_id", sa.Integer(), nullable=True),
    sa.Column("commit_sha", sa.String(length=40), nullable=True, index=True),
    sa.Column("run_id", sa.String(length=100), nullable=True),
    sa.Column("task", sa.String(length=63), nullable=True),
    sa.Column("data", JSONColumn, nullable=False, default=dict),
    sa.Index("ix_events_run_id_id", "run_id", "id"),
)

WEBHOOK_DELIVERIES = sa.Table(
    "webhook_deliveries",
    METADATA,
    sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
    sa.Column("provider", sa.String(length=16), nullable=False),
    sa.Column("delivery_id", sa.String(length=200), nullable=False),
    sa.Column("repo_id", sa.Integer(), sa.ForeignKey("repositories.id"), nullable=True),
    sa.Column("event", sa.String(length=100), nullable=False),
    sa.Column("ref", sa.String(length=255), nullable=True),
    sa.Column("sha", sa.String(length=40), nullable=True),
    sa.Column("outcome", sa.String(length=16), nullable=False),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("sha_verified", sa.Boolean(), nullable=True),
    sa.Column("run_id", sa.String(length=100), nullable=True),
    sa.Column("received_at", UTCDateTime(), nullable=False, default=utcnow),
    sa.UniqueConstraint("provider", "delivery_id", name="uq_webhook_deliveries_provider_delivery"),
    sa.Index("ix_webhook_deliveries_received_at", "received_at"),
    sa.Index("ix_webhook_deliveries_repo_sha", "repo_id", "sha"),
)

USERS = sa.Table(
    "users",
    METADATA,
    sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
    sa.Column("username", sa.String(length=100), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(length=500), nullable=False),
    sa.Column("role", sa.String(length=16), nullable=False, default="viewer"),
    sa.Column("disabled", sa.Boolean(), nullable=False, default=False),
    sa.Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    sa.Column("email", sa.String(length=320), nullable=True),
    sa.Column("token_generation", sa.Integer(), nullable=False, default=0, server_default="0"),
)

API_TOKENS = sa.Table(
    "api_tokens",
    METADATA,
    sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
    sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("name", sa.String(length=100), nullable=False),
    sa.Column("token_hash", sa.String(length=64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(length=16), nullable=False),
    sa.Column("role", sa.String(length=16), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False, default=utcnow),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("last_used_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
)

REVOKED_SESSIONS = sa.Table(
    "revoked_sessions",
    METADATA,
    sa.Column("jti", sa.String(length=64), primary_key=True, nullable=False),
    sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id"), nullable=False, index=True),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
)

SCHEDULED_SLOTS = sa.Table(
    "scheduled_slots",
    METADATA,
    sa.Column("id", sa.Integer(), primary_key=True, nullable=False),
    sa.Column("repo_id", sa.Integer(), sa.ForeignKey("repositories.id"), nullable=False),
    sa.Column("branch", sa.String(length=255), nullable=False),
    sa.Column("pipeline", sa.String(length=500), nullable=False),
    sa.Column("slot", UTCDateTime(), nullable=False),
    sa.Column("schedule", sa.String(length=300), nullable=False),
    sa.Column("run_id", sa.String(length=100), nullable=True),
    sa.Column("fired_at", UTCDateTime(), nullable=False, default=utcnow),
    sa.UniqueConstraint("repo_id", "branch", "pipeline", "schedule", "slot", name="uq_scheduled_slots_schedule_slot"),
)

LEADERSHIP = sa.Table(
    "leadership",
    METADATA,
    sa.Column("name", sa.String(length=100), primary_key=True, nullable=False),
    sa.Column("epoch", sa.BigInteger(), nullable=False, default=0),
    sa.Column("holder", sa.String(length=300), nullable=True),
    sa.Column("backend_pid", sa.Integer(), nullable=True),
    sa.Column("acquired_at", UTCDateTime(), nullable=True),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
)

STORE_VERSIONS = sa.Table(
    "store_versions",
    METADATA,
    sa.Column("name", sa.String(length=100), primary_key=True, nullable=False),
    sa.Column("version", sa.BigInteger(), nullable=False, default=0),
)
