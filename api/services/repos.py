"""Followed repositories as the API manages them: checked by the controller's rules, stored and audited by the
store, and picked up by this replica's controller at once (the others within `REPOS_REFRESH` seconds)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from odin.api.context import AppContext
from odin.api.schemas.repos import RepoCreate, RepoOut, RepoUpdate
from odin.controller.facade import check_repo_name, check_repo_spec
from odin.controller.store import repo_records
from odin.controller.store.repo_records import RepoRecord
from odin.controller.store.repositories import branch_conditions


def _out(ctx: AppContext, record: RepoRecord) -> RepoOut:
    followed: list[str] = []
    if ctx.controller is not None and record.followed:
        live = next((r for r in ctx.controller.repos.values() if r.id == record.id), None)
        if live is not None:
            followed = [live.branch, *(live.followers.branches if live.followers is not None else [])]
    ready = next((c for c in record.conditions if c.get("type") == "Ready"), None)
    return RepoOut(
        name=record.name,
        url=record.url,
        default_branch=record.branch,
        branches=list(record.branches),
        followed_branches=followed,
        tags=list(record.tags),
        pull_requests=record.pull_requests,
        pr_approvers=list(record.pr_approvers),
        poll_interval=record.poll_interval,
        run_policy=record.run_policy,
        namespace=record.namespace,
        credentials_ref=record.credentials_ref,
        webhook_secret_ref=record.webhook_secret_ref,
        enabled=record.enabled,
        keep_runs=record.retention_keep_runs,
        keep_days=record.retention_keep_days,
        removed_at=record.removed_at,
        origin=record.origin,
        ready=None if ready is None else ready.get("status") == "True",
        conditions=[dict(c) for c in record.conditions],
        branch_conditions=branch_conditions(ctx.db, record.id),
        last_seen_sha=record.last_seen_sha,
        last_fetch_at=record.last_fetch_at,
        created_at=record.created_at,
    )


def list_repos(ctx: AppContext, *, include_removed: bool) -> list[RepoOut]:
    return [_out(ctx, r) for r in repo_records.list_records(ctx.db, include_removed=include_removed)]


def get_repo(ctx: AppContext, name: str) -> RepoOut:
    return _out(ctx, repo_records.get_record(ctx.db, name))


def add_repo(ctx: AppContext, data: RepoCreate, *, by: str) -> RepoOut:
    name = check_repo_name(data.name)
    values = check_repo_spec(
        _given(data) | {"branches": data.branches, "branch": data.default_branch}, allow_http=_allow_http(ctx)
    )
    record = repo_records.insert_record(ctx.db, name, values, by=by)
    _refresh(ctx, record)
    return _out(ctx, record)


def update_repo(ctx: AppContext, name: str, data: RepoUpdate, *, by: str) -> RepoOut:
    current = repo_records.get_record(ctx.db, name)
    given = _given(data)
    if "branches" in given or "default_branch" in given:
        given["branches"] = given.get("branches", list(current.branches))
        given["branch"] = given.pop("default_branch", None)
        if "branch" in given and given["branch"] is None and current.branch in given["branches"]:
            given["branch"] = current.branch  # new patterns keep the own branch they still name
    values = check_repo_spec(given, current={"branches": list(current.branches)}, allow_http=_allow_http(ctx))
    record = repo_records.update_record(ctx.db, name, values, by=by)
    _refresh(ctx, record)
    return _out(ctx, record)


def remove_repo(ctx: AppContext, name: str, *, by: str) -> RepoOut:
    record = repo_records.remove_record(ctx.db, name, by=by)
    _refresh(ctx, record)
    return _out(ctx, record)


def _given(data: msgspec.Struct) -> dict[str, Any]:
    """The fields the client sent (UNSET left out)."""
    fields: Mapping[str, Any] = msgspec.structs.asdict(data)
    given = {k: v for k, v in fields.items() if v is not msgspec.UNSET and k not in ("name",)}
    for field in ("keep_runs", "keep_days"):  # the store's names for retention's two settings
        if field in given:
            given[f"retention_{field}"] = given.pop(field)
    return given


def _refresh(ctx: AppContext, record: RepoRecord) -> None:
    """Follow the change on this replica now (the leader, if it is another one, picks it up at its next refresh):
    that repository only, so a request costs the same however many repositories are followed."""
    if ctx.controller is not None:
        ctx.controller.refresh_repository(record.name)


def _allow_http(ctx: AppContext) -> bool:
    """Plain http:// repository URLs are accepted only where `ODIN_GIT_ALLOW_HTTP` says the network is trusted."""
    return ctx.settings.git_allow_http
