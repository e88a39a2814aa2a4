"""Every rejected delivery reaches the log and the metrics, without letting a flood of them flood the log.

A rejection is logged with its provider, reason, delivery id and client address — never the signature, the token or
the body. Past `burst` lines per reason in `window` seconds the rest are counted, and one summary line says how many
were left out; the metrics always count every one.
"""

from __future__ import annotations

import logging
import re
import threading
import time

from odin.webhooks.metrics import DELIVERIES, REJECTIONS

log = logging.getLogger("odin.webhooks")

_UNSAFE = re.compile(r"[^\x21-\x7e]")


def printable(value: str | None, limit: int = 100) -> str:
    """An attacker-supplied string made safe for one log line."""
    return _UNSAFE.sub("?", value or "")[:limit] or "-"


class RejectionLog:
    def __init__(self, *, burst: int = 20, window: float = 10.0) -> None:
        self.burst = burst
        self.window = window
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int, int]] = {}  # reason -> (window start, logged, suppressed)

    def rejected(
        self,
        provider: str,
        reason: str,
        message: str,
        *,
        delivery: str | None,
        client: str | None,
        outcome: str = "rejected",
    ) -> None:
        DELIVERIES.labels(provider, outcome).inc()
        REJECTIONS.labels(provider, reason).inc()
        now = time.monotonic()
        with self._lock:
            start, logged, suppressed = self._windows.get(reason, (now, 0, 0))
            if now - start >= self.window:
                if suppressed:
                    log.warning(
                        "%d more %s webhook rejections in the last %.0fs were not logged",
                        suppressed,
                        reason,
                        self.window,
                    )
                start, logged, suppressed = now, 0, 0
            if logged >= self.burst:
                self._windows[reason] = (start, logged, suppressed + 1)
                return
            self._windows[reason] = (start, logged + 1, suppressed)
        log.warning(
            "webhook %s delivery %s from %s rejected (%s): %s",
            provider,
            printable(delivery),
            printable(client),
            reason,
            message,
        )
