"""Log set-up shared by the commands: one line per event, with the run, task and commit in the message.

`ODIN_LOG_FORMAT=json` writes one JSON object per line instead (for log collectors): time, level, logger, message,
and the structured fields a component attached to the record — e.g. the API's request log puts method, path,
route, status, duration_ms, user and client under `http`.

Messages carry text from outside (request paths, ref names, payload fields, task output). In the text format every
control character in a message is escaped (`\\n`, `\\x1b`), so `GET /v1/runs/x%0A<forged line>` stays one line and
no input can fake a log line or drive an operator's terminal; JSON escapes them by itself.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else on a record was passed as `extra=` and is a structured field.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


# C0 and C1 control characters, DEL, and the Unicode line and paragraph separators; tab is left as it is.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def escape_controls(text: str) -> str:
    """`text` with its control characters written as escapes: `\\n`, `\\r`, `\\x1b`, `\\u2028`."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(lambda m: _NAMED.get(m.group()) or m.group().encode("unicode_escape").decode("ascii"), text)


class EscapingFormatter(logging.Formatter):
    """The text format, with control characters in messages escaped (tracebacks keep their lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def setup_logging(level: str | None = None) -> None:
    level = (level or os.environ.get("ODIN_LOG_LEVEL") or "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("ODIN_LOG_FORMAT", "").lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(EscapingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party chatter that says nothing an operator needs at INFO.
    for noisy in (
        "uvicorn.access",
        "httpx",
        "alembic",
        "kubernetes.client.rest",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
