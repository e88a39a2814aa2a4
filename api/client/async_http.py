"""The asynchronous twin of `OdinClient` (httpx.AsyncClient): the same calls (`odin.api.client.calls`), awaited.

async with AsyncOdinClient("https://odin.example.com", token=token) as odin:
    run = await odin.start("train", params={"epochs": 300})
    async for line in odin.follow_logs(run.id, "train"):
        print(line)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from odin.api.client import calls
from odin.api.client.calls import Call, Params
from odin.api.client.errors import DEFAULT_SERVER, ServerUnreachable, api_error
from odin.api.client.http import TERMINAL, decode
from odin.api.schemas import (
    ApiTokenCreated,
    ApiTokenList,
    ApiTokenOut,
    CommitDetail,
    CommitPage,
    EventPage,
    FileOut,
    FileWritten,
    Health,
    PipelineDetail,
    PipelineList,
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

__all__ = ["AsyncOdinClient"]

T = TypeVar("T")


class AsyncOdinClient:
    def __init__(
        self,
        server: str = DEFAULT_SERVER,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(base_url=self.server, headers=headers, timeout=timeout, transport=transport)

    async def __aenter__(self) -> AsyncOdinClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method, call.path, params=call.query, json=call.json, headers=call.headers or None
            )
        except httpx.TransportError as e:
            raise ServerUnreachable(f"cannot reach {self.server}: {e}") from e
        return decode(call, response)

    # -- auth and users ---------------------------------------------------------------------------------------------
    async def login(self, username: str, password: str) -> TokenResponse:
        return await self.send(calls.login(username, password))

    async def whoami(self) -> WhoAmI:
        return await self.send(calls.whoami())

    async def logout(self, *, everywhere: bool = False) -> None:
        """End this client's login session (`everywhere`: every session of its user)."""
        await self.send(calls.logout(everywhere))

    async def create_token(
        self, name: str, *, role: str | None = None, expires_in_days: int | None = None
    ) -> ApiTokenCreated:
        return await self.send(calls.create_token(name, role, expires_in_days))

    async def tokens(self, *, all_users: bool = False) -> ApiTokenList:
        return await self.send(calls.tokens(all_users))

    async def revoke_token(self, token_id: int) -> ApiTokenOut:
        return await self.send(calls.revoke_token(token_id))

    async def users(self) -> UserList:
        return await self.send(calls.users())

    async def user(self, username: str) -> UserOut:
        return await self.send(calls.user(username))

    async def create_user(
        self, username: str, password: str, *, role: str = "viewer", email: str | None = None
    ) -> UserOut:
        return await self.send(calls.create_user(username, password, role, email))

    async def update_user(
        self,
        username: str,
        *,
        role: str | None = None,
        disabled: bool | None = None,
        password: str | None = None,
        email: str | None = None,
    ) -> UserOut:
        return await self.send(
            calls.update_user(username, role=role, disabled=disabled, password=password, email=email)
        )

    # -- runs -----------------------------------------------------------------------------------------------------
    async def runs(
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
        return await self.send(
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

    async def iter_runs(self, **filters: Any) -> AsyncIterator[RunSummary]:
        """Every matching run, newest first, following the pages."""
        cursor: str | None = None
        while True:
            page = await self.runs(**filters, cursor=cursor)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def run(self, run_id: str) -> RunDetail:
        """The run; a run of more than 1,000 tasks embeds only the first 1,000 (see `run_tasks`)."""
        return await self.send(calls.run(run_id))

    async def run_tasks(
        self,
        run_id: str,
        *,
        status: list[str] | None = None,
        prefix: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> TaskPage:
        """A page of the run's tasks in creation order, with the counts of all of them by status."""
        return await self.send(calls.run_tasks(run_id, status=status, prefix=prefix, limit=limit, cursor=cursor))

    async def start(
        self,
        pipeline: str,
        *,
        ref: str | None = None,
        params: Params | None = None,
        parallelism: int | None = None,
        no_cache: bool = False,
    ) -> RunSummary:
        return await self.send(
            calls.start(pipeline, ref=ref, params=params, parallelism=parallelism, no_cache=no_cache)
        )

    async def rerun(
        self,
        run_id: str,
        *,
        latest: bool = False,
        failed_only: bool = False,
        task: str | None = None,
        params: Params | None = None,
        no_cache: bool = False,
    ) -> RunSummary:
        return await self.send(
            calls.rerun(run_id, latest=latest, failed_only=failed_only, task=task, params=params, no_cache=no_cache)
        )

    async def cancel(self, run_id: str) -> RunSummary:
        return await self.send(calls.cancel(run_id))

    async def wait(self, run_id: str, *, timeout: float | None = None, interval: float = 2.0) -> RunDetail:
        """Poll until the run is finished (`odin.api.client.ws.watch_run` is pushed to instead)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            run = await self.run(run_id)
            if run.status in TERMINAL:
                return run
            if deadline is not None and loop.time() >= deadline:
                raise TimeoutError(f"run {run_id} is still {run.status} after {timeout:g}s")
            await asyncio.sleep(interval)

    async def events(
        self, run_id: str, *, task: str | None = None, since: int | None = None, limit: int = 1000
    ) -> EventPage:
        return await self.send(calls.events(run_id, task=task, since=since, limit=limit))

    async def task_events(self, run_id: str, task: str) -> TaskEvents:
        return await self.send(calls.task_events(run_id, task))

    async def logs(self, run_id: str, task: str, *, tail: int | None = None, attempt: int | None = None) -> str:
        return await self.send(calls.logs(run_id, task, tail=tail, attempt=attempt))

    async def follow_logs(
        self, run_id: str, task: str, *, tail: int | None = None, attempt: int | None = None
    ) -> AsyncIterator[str]:
        """Log lines as they are written, until the attempt ends."""
        call = calls.logs(run_id, task, follow=True, tail=tail, attempt=attempt)
        try:
            async with self._http.stream("GET", call.path, params=call.query, timeout=None) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise api_error(response)
                async for line in response.aiter_lines():
                    yield line
        except httpx.TransportError as e:
            raise ServerUnreachable(f"lost the log stream from {self.server}: {e}") from e

    # -- commits and pipelines -----------------------------------------------------------------------------------
    async def commits(
        self,
        *,
        branch: str | None = None,
        validation: str | None = None,
        pipeline: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> CommitPage:
        return await self.send(
            calls.commits(branch=branch, validation=validation, pipeline=pipeline, limit=limit, cursor=cursor)
        )

    async def commit(self, sha: str) -> CommitDetail:
        return await self.send(calls.commit(sha))

    async def pipelines(self, ref: str | None = None) -> PipelineList:
        return await self.send(calls.pipelines(ref))

    async def pipeline(self, name: str, ref: str | None = None) -> PipelineDetail:
        return await self.send(calls.pipeline(name, ref))

    async def read_file(self, pipeline: str, path: str, ref: str | None = None) -> FileOut:
        return await self.send(calls.read_file(pipeline, path, ref))

    async def write_file(
        self,
        pipeline: str,
        path: str,
        content: str | bytes,
        *,
        message: str | None = None,
        base_sha: str | None = None,
    ) -> FileWritten:
        return await self.send(calls.write_file(pipeline, path, content, message=message, base_sha=base_sha))

    async def validate(self, content: str, file: str = "main.yml") -> ValidateResponse:
        return await self.send(calls.validate(content, file))

    # -- nodes and GPUs (Midgard) ---------------------------------------------------------------------------------
    async def nodes(self, node: str | None = None) -> NodeList:
        return await self.send(calls.nodes(node))

    async def gpus(
        self, *, free: bool | None = None, node: str | None = None, model: str | None = None, run: str | None = None
    ) -> GpuList:
        return await self.send(calls.gpus(free=free, node=node, model=model, run=run))

    # -- operations -------------------------------------------------------------------------------------------------
    async def health(self) -> Health:
        return await self.send(calls.health())

    async def ready(self) -> Health:
        return await self.send(calls.ready())
