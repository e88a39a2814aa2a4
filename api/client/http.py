"""A typed, synchronous HTTP client for the Odin API (httpx), decoding into the API's own schemas.

`odinctl` is built on it, so every command a user types exercises the same code a Python integration would.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, TypeVar

import httpx
import msgspec

from odin.api.schemas import RunDetail, RunPage, TokenResponse

T = TypeVar("T")

DEFAULT_SERVER = "http://127.0.0.1:9003"


class ApiError(Exception):
    """The server answered with an error; `status` is the HTTP status, `detail` its explanation."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class ServerUnreachable(Exception):
    """No answer from the server (not running, wrong address, network)."""


class OdinClient:
    def __init__(self, server: str = DEFAULT_SERVER, token: str | None = None, *, timeout: float = 30.0) -> None:
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def __enter__(self) -> OdinClient:
        return self

    def __exit__(self, *_exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- endpoints ----------------------------------------------------------------------------------------------
    def login(self, username: str, password: str) -> TokenResponse:
        return self._call("POST", "/v1/auth/token", TokenResponse, json={"username": username, "password": password})

    def runs(
        self,
        *,
        commit: str | None = None,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        params = {"commit": commit, "pipeline": pipeline, "status": status, "limit": limit, "cursor": cursor}
        return self._call("GET", "/v1/runs", RunPage, params={k: v for k, v in params.items() if v is not None})

    def run(self, run_id: str) -> RunDetail:
        return self._call("GET", f"/v1/runs/{run_id}", RunDetail)

    # -- plumbing -----------------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, into: type[T], **kwargs: Any) -> T:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise ServerUnreachable(f"cannot reach {self.server}: {e}") from e
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response))
        return msgspec.json.decode(response.content, type=into)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        detail = body.get("detail") or body.get("message") or body
        extra = body.get("extra")
        if extra:
            return f"{detail} ({extra})"
        return str(detail)
    return str(body)
