"""Log set-up shared by the commands: one line per event, with the run, task and commit in the message."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(level: str | None = None) -> None:
    level = (level or os.environ.get("ODIN_LOG_LEVEL") or "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party chatter that says nothing an operator needs at INFO.
    for noisy in (
        "uvicorn.access",
        "httpx",
        "alembic.runtime.migration",
        "alembic.runtime.plugins",
        "kubernetes.client.rest",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
