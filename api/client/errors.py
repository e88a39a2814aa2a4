"""What a client call can fail with: the server's answer (`ApiError`) or no answer at all (`ServerUnreachable`)."""

from __future__ import annotations

from typing import Any

import httpx

DEFAULT_SERVER = "http://127.0.0.1:9003"


class ApiError(Exception):
    """The server answered with an error: `status` (HTTP), `detail` (for a person), `extra` (e.g. problems)."""

    def __init__(self, status: int, detail: str, extra: Any = None) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
        self.extra = extra


class ServerUnreachable(Exception):
    """No answer from the server (not running, wrong address, network)."""


def api_error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        return ApiError(response.status_code, response.text.strip()[:500] or response.reason_phrase)
    if isinstance(body, dict):
        detail = str(body.get("detail") or body.get("message") or response.reason_phrase)
        extra = body.get("extra")
        problems = extra.get("problems") if isinstance(extra, dict) else None
        if isinstance(extra, list) and extra:
            detail = f"{detail}: " + "; ".join(
                str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in extra
            )
        return ApiError(response.status_code, detail, problems if problems is not None else extra)
    return ApiError(response.status_code, str(body))
