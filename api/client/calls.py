"""Every API call described once, as data: method, path, query, body and the type of the answer.

The sync and async clients only differ in how they send a `Call`, so an endpoint is added (or fixed) in one place
and both clients get it. Nothing here does I/O.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from odin.api.schemas import (
    ApiTokenCreated,
    ApiTokenList,
    ApiTokenOut,
    ArtifactList,
    CommitDetail,
    CommitPage,
    DirectoryListing,
    EventPage,
    FileOut,
    FileWritten,
    Health,
    PipelineDetail,
    PipelineList,
    ResultsPage,
    RunDetail,
    RunPage,
    RunSummary,
    TaskEvents,
    TaskPage,
    TokenResponse,
    UserList,
    UserOut,
    ValidateResponse,
    WhoAmI,
)
from odin.api.schemas.gpus import GpuList, NodeList
from odin.api.schemas.repos import RepoList, RepoOut

T = TypeVar("T")

Params = Mapping[str, str | int | float | bool]


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    into: type[T]
    query: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    ok: tuple[int, ...] = (200, 201, 202)


def _q(**values: Any) -> dict[str, Any]:
    """Query parameters without the unset ones; datetimes as ISO 8601, booleans as true/false."""
    out: dict[str, Any] = {}
    for k, v in values.items():
        if v is None or (isinstance(v, list | tuple) and not v):
            continue
        if isinstance(v, datetime):
            out[k] = v.isoformat()
        elif isinstance(v, bool):
            out[k] = "true" if v else "false"
        else:
            out[k] = v
    return out


def seg(value: str) -> str:
    """One URL path segment (a run id, a user name...)."""
    return quote(value, safe="")


def pipeline_seg(name: str) -> str:
    """Nested pipeline directories travel with ':' for '/' (one URL segment)."""
    return quote(name.strip("/").replace("/", ":"), safe=":")


def login(username: str, password: str) -> Call[TokenResponse]:
    return Call("POST", "/v1/auth/token", TokenResponse, json={"username": username, "password": password})


def whoami() -> Call[WhoAmI]:
    return Call("GET", "/v1/auth/whoami", WhoAmI)


def logout(everywhere: bool = False) -> Call[str]:
    return Call("POST", "/v1/auth/logout", str, query=_q(everywhere=everywhere or None), ok=(204,))


def create_token(name: str, role: str | None = None, expires_in_days: int | None = None) -> Call[ApiTokenCreated]:
    body: dict[str, Any] = {"name": name}
    if role is not None:
        body["role"] = role
    if expires_in_days is not None:
        body["expires_in_days"] = expires_in_days
    return Call("POST", "/v1/auth/tokens", ApiTokenCreated, json=body)


def tokens(all_users: bool = False) -> Call[ApiTokenList]:
    return Call("GET", "/v1/auth/tokens", ApiTokenList, query=_q(all=all_users or None))


def revoke_token(token_id: int) -> Call[ApiTokenOut]:
    return Call("DELETE", f"/v1/auth/tokens/{int(token_id)}", ApiTokenOut)


def repos(removed: bool = False) -> Call[RepoList]:
    return Call("GET", "/v1/repos", RepoList, query=_q(removed=removed or None))


def repo(name: str) -> Call[RepoOut]:
    return Call("GET", f"/v1/repos/{seg(name)}", RepoOut)


def add_repo(name: str, url: str, **fields: Any) -> Call[RepoOut]:
    """`fields`: those of `RepoCreate` besides name and url; None ones are left to the server's defaults."""
    body = {"name": name, "url": url, **{k: v for k, v in fields.items() if v is not None}}
    return Call("POST", "/v1/repos", RepoOut, json=body)


def update_repo(name: str, **changes: Any) -> Call[RepoOut]:
    """`changes`: the `RepoUpdate` fields to change (a None value clears a reference or the namespace)."""
    return Call("PATCH", f"/v1/repos/{seg(name)}", RepoOut, json=dict(changes))


def remove_repo(name: str) -> Call[RepoOut]:
    return Call("DELETE", f"/v1/repos/{seg(name)}", RepoOut)


def users() -> Call[UserList]:
    return Call("GET", "/v1/users", UserList)


def user(username: str) -> Call[UserOut]:
    return Call("GET", f"/v1/users/{seg(username)}", UserOut)


def create_user(username: str, password: str, role: str = "viewer", email: str | None = None) -> Call[UserOut]:
    body: dict[str, Any] = {"username": username, "password": password, "role": role}
    if email is not None:
        body["email"] = email
    return Call("POST", "/v1/users", UserOut, json=body)


def update_user(
    username: str,
    *,
    role: str | None = None,
    disabled: bool | None = None,
    password: str | None = None,
    email: str | None = None,
) -> Call[UserOut]:
    body = {k: v for k, v in {"role": role, "disabled": disabled, "password": password, "email": email}.items()}
    return Call("PATCH", f"/v1/users/{seg(username)}", UserOut, json={k: v for k, v in body.items() if v is not None})


def runs(
    *,
    commit: str | None = None,
    pipeline: str | None = None,
    branch: str | None = None,
    status: list[str] | None = None,
    trigger: list[str] | None = None,
    triggered_by: str | None = None,
    parent_run: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Call[RunPage]:
    return Call(
        "GET",
        "/v1/runs",
        RunPage,
        query=_q(
            commit=commit,
            pipeline=pipeline,
            branch=branch,
            status=status,
            trigger=trigger,
            triggered_by=triggered_by,
            parent_run=parent_run,
            created_after=created_after,
            created_before=created_before,
            limit=limit,
            cursor=cursor,
        ),
    )


def run(run_id: str) -> Call[RunDetail]:
    return Call("GET", f"/v1/runs/{seg(run_id)}", RunDetail)


def artifacts(run_id: str) -> Call[ArtifactList]:
    return Call("GET", f"/v1/runs/{seg(run_id)}/artifacts", ArtifactList)


def artifact_path(run_id: str, task: str, name: str, file: str | None = None) -> str:
    """Where one artifact downloads (a file of a directory artifact with `file`); bytes, so not a `Call`."""
    path = f"/v1/runs/{seg(run_id)}/artifacts/{seg(task)}/{seg(name)}"
    return f"{path}/files/{quote(file.lstrip('/'))}" if file else path


def artifact_files(run_id: str, task: str, name: str) -> Call[DirectoryListing]:
    return Call("GET", f"{artifact_path(run_id, task, name)}/files", DirectoryListing)


def results(
    pipeline: str,
    *,
    since: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    all_columns: bool = False,
) -> Call[ResultsPage]:
    query = _q(pipeline=pipeline, since=since, limit=limit, cursor=cursor, all_columns=all_columns or None)
    return Call("GET", "/v1/results", ResultsPage, query=query)


def start(
    pipeline: str,
    *,
    ref: str | None = None,
    params: Params | None = None,
    parallelism: int | None = None,
    no_cache: bool = False,
    repository: str | None = None,
) -> Call[RunSummary]:
    body: dict[str, Any] = {"pipeline": pipeline, "params": dict(params or {})}
    if repository is not None:
        body["repository"] = repository
    if no_cache:
        body["no_cache"] = True
    if ref is not None:
        body["ref"] = ref
    if parallelism is not None:
        body["parallelism"] = parallelism
    return Call("POST", "/v1/runs", RunSummary, json=body)


def rerun(
    run_id: str,
    *,
    latest: bool = False,
    failed_only: bool = False,
    task: str | None = None,
    params: Params | None = None,
    no_cache: bool = False,
) -> Call[RunSummary]:
    body: dict[str, Any] = {"latest": latest, "failed_only": failed_only}
    if no_cache:
        body["no_cache"] = True
    if task is not None:
        body["task"] = task
    if params is not None:
        body["params"] = dict(params)
    return Call("POST", f"/v1/runs/{seg(run_id)}/rerun", RunSummary, json=body)


def cancel(run_id: str) -> Call[RunSummary]:
    return Call("POST", f"/v1/runs/{seg(run_id)}/cancel", RunSummary)


def events(run_id: str, *, task: str | None = None, since: int | None = None, limit: int = 1000) -> Call[EventPage]:
    return Call("GET", f"/v1/runs/{seg(run_id)}/events", EventPage, query=_q(task=task, since=since, limit=limit))


def run_tasks(
    run_id: str,
    *,
    status: list[str] | None = None,
    prefix: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Call[TaskPage]:
    return Call(
        "GET",
        f"/v1/runs/{seg(run_id)}/tasks",
        TaskPage,
        query=_q(status=status, prefix=prefix, limit=limit, cursor=cursor),
    )


def task_events(run_id: str, task: str) -> Call[TaskEvents]:
    return Call("GET", f"/v1/runs/{seg(run_id)}/tasks/{seg(task)}/events", TaskEvents)


def logs(
    run_id: str, task: str, *, follow: bool = False, tail: int | None = None, attempt: int | None = None
) -> Call[str]:
    return Call(
        "GET",
        f"/v1/runs/{seg(run_id)}/tasks/{seg(task)}/logs",
        str,
        query=_q(follow=follow or None, tail=tail, attempt=attempt),
    )


def commits(
    *,
    branch: str | None = None,
    validation: str | None = None,
    pipeline: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Call[CommitPage]:
    return Call(
        "GET",
        "/v1/commits",
        CommitPage,
        query=_q(branch=branch, validation=validation, pipeline=pipeline, limit=limit, cursor=cursor),
    )


def commit(sha: str) -> Call[CommitDetail]:
    return Call("GET", f"/v1/commits/{seg(sha)}", CommitDetail)


def pipelines(ref: str | None = None) -> Call[PipelineList]:
    return Call("GET", "/v1/pipelines", PipelineList, query=_q(ref=ref))


def pipeline(name: str, ref: str | None = None) -> Call[PipelineDetail]:
    return Call("GET", f"/v1/pipelines/{pipeline_seg(name)}", PipelineDetail, query=_q(ref=ref))


def read_file(pipeline_name: str, path: str, ref: str | None = None) -> Call[FileOut]:
    return Call(
        "GET", f"/v1/pipelines/{pipeline_seg(pipeline_name)}/files/{quote(path, safe='/')}", FileOut, query=_q(ref=ref)
    )


def write_file(
    pipeline_name: str,
    path: str,
    content: str | bytes,
    *,
    message: str | None = None,
    base_sha: str | None = None,
) -> Call[FileWritten]:
    if isinstance(content, bytes):
        body: dict[str, Any] = {"content": base64.b64encode(content).decode(), "encoding": "base64"}
    else:
        body = {"content": content}
    if message is not None:
        body["message"] = message
    headers = {"If-Match": base_sha} if base_sha else {}
    return Call(
        "PUT",
        f"/v1/pipelines/{pipeline_seg(pipeline_name)}/files/{quote(path, safe='/')}",
        FileWritten,
        json=body,
        headers=headers,
    )


def validate(content: str, file: str = "main.yml") -> Call[ValidateResponse]:
    return Call("POST", "/v1/validate", ValidateResponse, json={"content": content, "file": file})


def health() -> Call[Health]:
    return Call("GET", "/healthz", Health)


def ready() -> Call[Health]:
    return Call("GET", "/readyz", Health, ok=(200, 503))


def nodes(node: str | None = None) -> Call[NodeList]:
    return Call("GET", "/v1/nodes", NodeList, query=_q(node=node))


def gpus(
    *, free: bool | None = None, node: str | None = None, model: str | None = None, run: str | None = None
) -> Call[GpuList]:
    return Call("GET", "/v1/gpus", GpuList, query=_q(free=free, node=node, model=model, run=run))
