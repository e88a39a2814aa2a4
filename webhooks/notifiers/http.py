"""One call to a provider's API, judged the same way for every sender: a 2xx is returned, an answer that may pass
(a connection error, 5xx, 429, GitHub's rate-limit 403) raises `RetryLater`, any other raises `Refused`.

Statuses need one POST; check runs, merge-request notes and Code Insights reports need a few calls each (look up,
create, update in batches). A sender makes its calls through `ProviderHttp.call` and lets these exceptions end its
report: the worker in `base.py` retries the whole report with backoff, and every sender is written so that sending a
report again updates what the first attempt made instead of adding to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from odin.webhooks.outbound import retry_after, retryable

if TYPE_CHECKING:
    import httpx


class RetryLater(Exception):
    """The provider could not take the report now; try again no sooner than `after` seconds (0: use the backoff)."""

    def __init__(self, reason: str, after: float = 0.0) -> None:
        super().__init__(reason)
        self.after = after


class Refused(Exception):
    """The provider refused the call (401, 403, 404, 422...): sending it again would get the same answer."""

    def __init__(self, status_code: int, text: str) -> None:
        self.status_code = status_code
        self.text = text[:300].replace("\n", " ")
        super().__init__(f"{status_code}: {self.text}")


class ProviderHttp:
    """The notifier's HTTP client, answering with the response of a 2xx or one of the exceptions above."""

    def __init__(self, client: httpx.Client, provider: str) -> None:
        self.client = client
        self.provider = provider

    def call(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
    ) -> httpx.Response:
        import httpx  # loaded already (the client is one): the name of its errors

        try:
            response = self.client.request(method, url, json=json, params=params, headers=dict(headers))
        except httpx.HTTPError as e:
            raise RetryLater(f"{type(e).__name__} ({e})") from e
        if response.status_code < 300:
            return response
        if retryable(response):
            raise RetryLater(f"{self.provider} answered {response.status_code}", retry_after(response))
        raise Refused(response.status_code, response.text)
