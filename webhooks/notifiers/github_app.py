"""GitHub App authentication for check runs: Odin mints its own installation tokens, so nothing outside has to.

Only a GitHub App may write check runs, with an installation access token that lasts an hour. Given the App's id
and private key (`ODIN_STATUS_GITHUB_APP_ID`, `ODIN_STATUS_GITHUB_APP_KEY` as `file:`/`env:` reference or PEM),
`GitHubAppTokens` signs a short JWT (RS256, `iss` = the App id, 9 minutes), finds the App's installation on the
repository (`GET /repos/{owner}/{repo}/installation`, once) and exchanges the JWT for an installation token
(`POST /app/installations/{id}/access_tokens`), kept until five minutes before it expires. It is called by the
notifier's worker thread for each report; its failures are the same `RetryLater` / `Refused` as any provider call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

from odin.webhooks.notifiers.http import ProviderHttp

if TYPE_CHECKING:
    import httpx

JWT_LIFETIME = 540  # seconds: GitHub accepts at most 10 minutes
CLOCK_SKEW = 60  # `iat` this far in the past, as GitHub advises
REFRESH_BEFORE = 300  # seconds before an installation token expires that a new one is minted


class GitHubAppTokens:
    """A `token()` callable for the notifier: the current installation access token of the App on `repository`."""

    def __init__(
        self,
        api_url: str,
        repository: str,
        app_id: int,
        private_key: Callable[[], str],
        *,
        client: httpx.Client | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.repository = repository.strip("/")
        self.app_id = app_id
        self.private_key = private_key
        self._client = client
        self._timeout = timeout
        self._lock = threading.Lock()
        self._installation: int | None = None
        self._token: tuple[str, float] | None = None  # (token, monotonic time to renew it)

    def __call__(self) -> str:
        with self._lock:
            if self._token is not None and time.monotonic() < self._token[1]:
                return self._token[0]
            http = ProviderHttp(self._http(), "github")
            headers = {
                "Authorization": f"Bearer {self.app_jwt()}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            }
            if self._installation is None:
                found = http.call("GET", f"{self.api_url}/repos/{quote(self.repository)}/installation", headers=headers)
                self._installation = int(found.json()["id"])
            minted = http.call(
                "POST", f"{self.api_url}/app/installations/{self._installation}/access_tokens", headers=headers
            ).json()
            token = str(minted["token"])
            lifetime = _seconds_until(str(minted.get("expires_at") or ""), default=3600.0)
            self._token = (token, time.monotonic() + max(0.0, lifetime - REFRESH_BEFORE))
            return token

    def app_jwt(self) -> str:
        import jwt  # loaded by the API's auth already; named here for the App's signature

        now = int(time.time())
        claims = {"iat": now - CLOCK_SKEW, "exp": now + JWT_LIFETIME, "iss": str(self.app_id)}
        return jwt.encode(claims, self.private_key(), algorithm="RS256")

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=self._timeout, headers={"User-Agent": "odin-commit-status"})
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _seconds_until(timestamp: str, *, default: float) -> float:
    """Seconds from now until GitHub's `expires_at` (ISO 8601, `Z`); `default` when it cannot be read."""
    try:
        moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return default
    return moment.timestamp() - time.time()
