"""A typed, synchronous HTTP client for the Odin API (httpx), decoding into the API's own schemas.

`odinctl` is built on it, so every command a user types exercises the same code a Python integration would:

    with OdinClient("https://odin.example.com", token=os.environ["ODIN_TOKEN"]) as odin:
        run = odin.start("train", ref="main", params={"epochs": 300})
        print(odin.wait(run.id).status)
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
import msgspec

from odin.api.client import calls
from odin.api.client.calls import Call, Params
from odin.api.client.errors import DEFAULT_SERVER, ApiError, ServerUnreachable, api_error
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

__all__ = ["DEFAULT_SERVER", "TERMINAL", "ApiError", "DigestMismatch", "Downloaded", "OdinClient", "ServerUnreachable"]

T = TypeVar("T")

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "error", "skipped"})


def decode(call: Call[T], response: httpx.Response) -> T:
    if response.status_code not in call.ok:
        raise api_error(response)
    if call.into is str:
        return response.text  # type: ignore[return-value]
    return msgspec.json.decode(response.content, type=call.into)


CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Downloaded:
    """What `download` did: bytes now in the file, bytes sent this time, and whether it continued a partial file."""

    size: int
    received: int
    resumed: bool


class DigestMismatch(Exception):
    """The downloaded file does not hash to the artifact's digest (the partial file was of other bytes, or the
    transfer was damaged): the file is left in place for inspection."""


class OdinClient:
    def __init__(
        self,
        server: str = DEFAULT_SERVER,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout, transport=transport)

    def __enter__(self) -> OdinClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, call: Call[T]) -> T:
        try:
            response = self._http.request(
                call.method, call.path, params=call.query, json=call.json, headers=call.headers or None
            )
        except httpx.TransportError as e:
            raise ServerUnreachable(f"cannot reach {self.server}: {e}") from e
        return decode(call, response)

    # -- auth and users ---------------------------------------------------------------------------------------------
    def login(self, username: str, password: str) -> TokenResponse:
        return self.send(calls.login(username, password))

    def whoami(self) -> WhoAmI:
        return self.send(calls.whoami())

    def logout(self, *, everywhere: bool = False) -> None:
        """End this client's login session (`everywhere`: every session of its user)."""
        self.send(calls.logout(everywhere))

    def create_token(
        self, name: str, *, role: str | None = None, expires_in_days: int | None = None
    ) -> ApiTokenCreated:
        return self.send(calls.create_token(name, role, expires_in_days))

    def tokens(self, *, all_users: bool = False) -> ApiTokenList:
        return self.send(calls.tokens(all_users))

    def revoke_token(self, token_id: int) -> ApiTokenOut:
        return self.send(calls.revoke_token(token_id))

    def repos(self, *, removed: bool = False) -> RepoList:
        return self.send(calls.repos(removed))

    def repo(self, name: str) -> RepoOut:
        return self.send(calls.repo(name))

    def add_repo(self, name: str, url: str, **fields: Any) -> RepoOut:
        return self.send(calls.add_repo(name, url, **fields))

    def update_repo(self, name: str, **changes: Any) -> RepoOut:
        return self.send(calls.update_repo(name, **changes))

    def remove_repo(self, name: str) -> RepoOut:
        return self.send(calls.remove_repo(name))

    def users(self) -> UserList:
        return self.send(calls.users())

    def user(self, username: str) -> UserOut:
        return self.send(calls.user(username))

    def create_user(self, username: str, password: str, *, role: str = "viewer", email: str | None = None) -> UserOut:
        return self.send(calls.create_user(username, password, role, email))

    def update_user(
        self,
        username: str,
        *,
        role: str | None = None,
        disabled: bool | None = None,
        password: str | None = None,
        email: str | None = None,
    ) -> UserOut:
        return self.send(calls.update_user(username, role=role, disabled=disabled, password=password, email=email))

    # -- runs -----------------------------------------------------------------------------------------------------
    def runs(
        self,
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
    ) -> RunPage:
        return self.send(
            calls.runs(
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
            )
        )

    def iter_runs(self, **filters: Any) -> Iterator[RunSummary]:
        """Every matching run, newest first, following the pages."""
        cursor: str | None = None
        while True:
            page = self.runs(**filters, cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def run(self, run_id: str) -> RunDetail:
        """The run; a run of more than 1,000 tasks embeds only the first 1,000 (see `run_tasks`)."""
        return self.send(calls.run(run_id))

    def run_tasks(
        self,
        run_id: str,
        *,
        status: list[str] | None = None,
        prefix: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> TaskPage:
        """A page of the run's tasks in creation order, with the counts of all of them by status."""
        return self.send(calls.run_tasks(run_id, status=status, prefix=prefix, limit=limit, cursor=cursor))

    def start(
        self,
        pipeline: str,
        *,
        ref: str | None = None,
        params: Params | None = None,
        parallelism: int | None = None,
        no_cache: bool = False,
        repository: str | None = None,
    ) -> RunSummary:
        call = calls.start(
            pipeline, ref=ref, params=params, parallelism=parallelism, no_cache=no_cache, repository=repository
        )
        return self.send(call)

    def rerun(
        self,
        run_id: str,
        *,
        latest: bool = False,
        failed_only: bool = False,
        task: str | None = None,
        params: Params | None = None,
        no_cache: bool = False,
    ) -> RunSummary:
        return self.send(
            calls.rerun(run_id, latest=latest, failed_only=failed_only, task=task, params=params, no_cache=no_cache)
        )

    def cancel(self, run_id: str) -> RunSummary:
        return self.send(calls.cancel(run_id))

    def wait(self, run_id: str, *, timeout: float | None = None, interval: float = 2.0) -> RunDetail:
        """Poll until the run is finished (the WebSocket client pushes instead: `odin.api.client.ws`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if run.status in TERMINAL:
                return run
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"run {run_id} is still {run.status} after {timeout:g}s")
            time.sleep(interval)

    def events(self, run_id: str, *, task: str | None = None, since: int | None = None, limit: int = 1000) -> EventPage:
        return self.send(calls.events(run_id, task=task, since=since, limit=limit))

    def task_events(self, run_id: str, task: str) -> TaskEvents:
        return self.send(calls.task_events(run_id, task))

    def logs(self, run_id: str, task: str, *, tail: int | None = None, attempt: int | None = None) -> str:
        return self.send(calls.logs(run_id, task, tail=tail, attempt=attempt))

    def follow_logs(
        self, run_id: str, task: str, *, tail: int | None = None, attempt: int | None = None
    ) -> Iterator[str]:
        """Log lines as they are written, until the attempt ends."""
        call = calls.logs(run_id, task, follow=True, tail=tail, attempt=attempt)
        try:
            with self._http.stream("GET", call.path, params=call.query, timeout=None) as response:
                if response.status_code != 200:
                    response.read()
                    raise api_error(response)
                yield from response.iter_lines()
        except httpx.TransportError as e:
            raise ServerUnreachable(f"lost the log stream from {self.server}: {e}") from e

    # -- what runs produced -----------------------------------------------------------------------------------------
    def artifacts(self, run_id: str) -> ArtifactList:
        return self.send(calls.artifacts(run_id))

    def artifact_files(self, run_id: str, task: str, name: str) -> DirectoryListing:
        return self.send(calls.artifact_files(run_id, task, name))

    def results(
        self,
        pipeline: str,
        *,
        since: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        all_columns: bool = False,
    ) -> ResultsPage:
        """A page of `pipeline`'s runs with their results, newest first; pass `next_cursor` back for the next."""
        return self.send(calls.results(pipeline, since=since, limit=limit, cursor=cursor, all_columns=all_columns))

    def iter_artifact(self, run_id: str, task: str, name: str, *, file: str | None = None) -> Iterator[bytes]:
        """An artifact's bytes (a directory: its tar stream), chunk by chunk, as they arrive."""
        path = calls.artifact_path(run_id, task, name, file)
        try:
            with self._http.stream("GET", path, timeout=httpx.Timeout(60.0, read=300.0)) as r:
                if r.status_code != 200:
                    r.read()
                    raise api_error(r)
                yield from r.iter_bytes(CHUNK)
        except httpx.TransportError as e:
            raise ServerUnreachable(f"lost the download from {self.server}: {e}") from e

    def download(
        self,
        run_id: str,
        task: str,
        name: str,
        dest: Path,
        *,
        file: str | None = None,
        etag: str | None = None,
        digest: str | None = None,
    ) -> Downloaded:
        """Stream an artifact (or one `file` of a directory artifact) into `dest`, chunk by chunk.

        With `etag` (the artifact's digest, quoted) and a shorter file already at `dest`, only the rest is asked for
        (`Range` + `If-Range`): a server whose artifact changed sends it whole and the file is rewritten. With
        `digest`, the finished file is hashed and `DigestMismatch` raised when it differs."""
        have = dest.stat().st_size if etag and dest.is_file() else 0
        headers = {"Range": f"bytes={have}-", "If-Range": etag} if have and etag else {}
        path = calls.artifact_path(run_id, task, name, file)
        received = 0
        try:
            with self._http.stream("GET", path, headers=headers, timeout=httpx.Timeout(60.0, read=300.0)) as r:
                if r.status_code == 416 and have:
                    return Downloaded(have, 0, resumed=True)  # nothing past what we have: already complete
                if r.status_code not in (200, 206):
                    r.read()
                    raise api_error(r)
                resumed = r.status_code == 206
                with dest.open("ab" if resumed else "wb") as out:
                    for chunk in r.iter_bytes(CHUNK):
                        out.write(chunk)
                        received += len(chunk)
        except httpx.TransportError as e:
            raise ServerUnreachable(f"lost the download from {self.server} after {received} bytes: {e}") from e
        size = dest.stat().st_size
        if digest and digest.startswith("sha256:"):
            with dest.open("rb") as f:
                actual = "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()
            if actual != digest:
                raise DigestMismatch(f"{dest} hashes to {actual}, not the artifact's {digest}")
        return Downloaded(size, received, resumed)

    # -- commits and pipelines -----------------------------------------------------------------------------------
    def commits(
        self,
        *,
        branch: str | None = None,
        validation: str | None = None,
        pipeline: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> CommitPage:
        return self.send(
            calls.commits(branch=branch, validation=validation, pipeline=pipeline, limit=limit, cursor=cursor)
        )

    def commit(self, sha: str) -> CommitDetail:
        return self.send(calls.commit(sha))

    def pipelines(self, ref: str | None = None) -> PipelineList:
        return self.send(calls.pipelines(ref))

    def pipeline(self, name: str, ref: str | None = None) -> PipelineDetail:
        return self.send(calls.pipeline(name, ref))

    def read_file(self, pipeline: str, path: str, ref: str | None = None) -> FileOut:
        return self.send(calls.read_file(pipeline, path, ref))

    def write_file(
        self,
        pipeline: str,
        path: str,
        content: str | bytes,
        *,
        message: str | None = None,
        base_sha: str | None = None,
    ) -> FileWritten:
        return self.send(calls.write_file(pipeline, path, content, message=message, base_sha=base_sha))

    def validate(self, content: str, file: str = "main.yml") -> ValidateResponse:
        return self.send(calls.validate(content, file))

    # -- nodes and GPUs (Midgard) ---------------------------------------------------------------------------------
    def nodes(self, node: str | None = None) -> NodeList:
        return self.send(calls.nodes(node))

    def gpus(
        self, *, free: bool | None = None, node: str | None = None, model: str | None = None, run: str | None = None
    ) -> GpuList:
        return self.send(calls.gpus(free=free, node=node, model=model, run=run))

    # -- operations -------------------------------------------------------------------------------------------------
    def health(self) -> Health:
        return self.send(calls.health())

    def ready(self) -> Health:
        return self.send(calls.ready())
