"""Request and response bodies of the API: the contract the OpenAPI document publishes.

Read models are separate from the tables on purpose: the API shows what a client needs (e.g. `duration_seconds`),
never internal columns (`dedupe_key`, `pid` paths on the server), and can evolve without a migration.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class TokenRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: str = msgspec.field()
    password: str = msgspec.field()


class TokenResponse(msgspec.Struct, kw_only=True):
    access_token: str
    token_type: str
    expires_in: int
    role: str


class TaskOut(msgspec.Struct, kw_only=True):
    name: str
    status: str
    attempt: int
    reason: str | None
    message: str | None
    exit_code: int | None
    resource_kind: str | None
    resource_name: str | None
    namespace: str | None
    node: str | None
    started_at: datetime | None
    finished_at: datetime | None


class RunSummary(msgspec.Struct, kw_only=True):
    id: str
    pipeline: str
    commit_sha: str | None
    branch: str | None
    trigger: str
    triggered_by: str | None
    status: str
    message: str | None
    parent_run: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class RunDetail(RunSummary, kw_only=True):
    params: dict[str, str]
    spec: dict[str, Any]
    work_tree: str | None
    absorbed_commits: list[str]
    conditions: list[dict[str, Any]]
    tasks: list[TaskOut]


class RunPage(msgspec.Struct, kw_only=True):
    items: list[RunSummary]
    next_cursor: str | None


class Health(msgspec.Struct, kw_only=True):
    status: str
    checks: dict[str, str] = msgspec.field(default_factory=dict)
