"""What every outbound HTTP call of Odin's senders (commit statuses, run notifications) agrees on: which answers are
worth retrying and how long the other side asked us to wait. The retry schedule itself is `odin.controller.backoff`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx  # named only: `odin serve` imports httpx when a sender first sends (issue 15, start-up)


def retryable(response: httpx.Response) -> bool:
    """A failure that may pass: a timeout, too many requests, a server error, or GitHub's rate-limit 403."""
    if response.status_code in (408, 425, 429) or response.status_code >= 500:
        return True
    # GitHub's secondary rate limits answer 403 with Retry-After or an exhausted X-RateLimit-Remaining.
    return response.status_code == 403 and (
        "retry-after" in response.headers or response.headers.get("x-ratelimit-remaining") == "0"
    )


def retry_after(response: httpx.Response) -> float:
    """The answer's `Retry-After` in seconds (0 when absent or an HTTP date, which these services do not send)."""
    value = str(response.headers.get("retry-after", ""))
    try:
        return max(0.0, float(value))
    except ValueError:
        return 0.0
