"""What the services say went wrong with a request, in their own words; `odin.api.errors` chooses the HTTP answer.

Plain exceptions that import nothing, so any service (and the WebSocket commands) can raise them without knowing
about HTTP, and the one mapping in `odin.api.errors` stays the only place that picks a status code.
"""

from __future__ import annotations


class NotFound(Exception):
    """The run, task, commit... the request names does not exist (answered 404)."""


class InvalidRequest(Exception):
    """A parameter the service cannot use as given: a malformed SHA, cursor or time, an unknown status (answered
    400). The message says what to send instead."""


class RangeNotSatisfiable(Exception):
    """A `Range` that starts at or past the end of what is asked for (answered 416 with `Content-Range: bytes
    */<size>`, so the client learns the size it can ask within)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"the range asked for starts past the end of the {size} bytes there are")
        self.size = size
