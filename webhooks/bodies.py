"""Reading a webhook body with bounded memory: streamed through the signature check, spooled to disk past a threshold.

Webhook routes are open to anyone who can reach the server, so what an unauthenticated request may cost is fixed here:

* **Memory.** The body is never held whole while it is unverified. Each chunk goes through the signature check
  (`Pending.update`) and into a `SpooledTemporaryFile` that moves to disk once it passes `spool_threshold`; only an
  authenticated body is read back into memory, after its last byte was checked.
* **Size.** The cap (`ODIN_WEBHOOK_MAX_BODY`) is checked against Content-Length before a byte is read, and against the
  bytes received while streaming (413 at the first byte over it).
* **Concurrency.** A body larger than `spool_threshold` needs one of `slots` large-body slots for as long as it is
  read and handled; with every slot taken the answer is 503 with Retry-After, at once, without reading the body.
* **Early answers.** When the headers alone decide (no signature, a malformed one, a wrong GitLab token), the answer
  comes before the body is read. uvicorn then discards whatever of the body still arrives, without buffering it, and
  the connection stays usable (the slow-client limits of `cli/http_guard.py` still apply to it).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from litestar.exceptions import ClientException, InternalServerException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from odin.webhooks.receiver import Pending


class LargeBodySlots:
    """At most `slots` large bodies in flight at once; a request that finds none free is refused, never queued
    (a queue would hold connections open, which is what a flood wants)."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self._used = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self._used >= self.slots:
                return False
            self._used += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._used -= 1

    @property
    def in_use(self) -> int:
        return self._used


@dataclass(frozen=True, slots=True)
class BodyLimits:
    max_body: int
    """Largest body accepted, bytes (413 above it)."""
    spool_threshold: int
    """Bodies up to this size stay in memory; larger ones are spooled to disk and need a large-body slot."""
    spool_dir: Path | None
    """Where spooled bodies go (unlinked at once: nothing is left behind, even after a crash)."""


Failure = Literal["too_large", "busy", "disconnected", "bad_request"]


@dataclass(slots=True)
class Received:
    """A body read to its end through the checks of a `Pending` delivery; `spool` holds its bytes."""

    spool: IO[bytes]
    size: int

    def read(self) -> bytes:
        self.spool.seek(0)
        return self.spool.read()


class BodyReader:
    """Reads one request body under `limits`, taking a large-body slot from `slots` when it needs one.

    Use as a context manager: the slot (if any) and the spool file are released on exit, after the delivery was
    handled, so the number of large bodies in memory or on disk at once is bounded by the slots."""

    def __init__(self, limits: BodyLimits, slots: LargeBodySlots, declared: int | None) -> None:
        self.limits = limits
        self.slots = slots
        self.declared = declared
        self._holding = False
        self._spool: IO[bytes] | None = None

    def __enter__(self) -> BodyReader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._spool is not None:
            self._spool.close()
        if self._holding:
            self._holding = False
            self.slots.release()

    def _needs_slot(self, size: int) -> bool:
        return not self._holding and size > self.limits.spool_threshold

    def admit(self) -> Failure | None:
        """Before reading: "too_large" for a declared length over the cap, "busy" when it is large and no slot is
        free, else None."""
        if self.declared is not None and self.declared > self.limits.max_body:
            return "too_large"
        if self.declared is not None and self._needs_slot(self.declared):
            if not self.slots.try_acquire():
                return "busy"
            self._holding = True
        return None

    async def read(self, stream: AsyncIterator[bytes], pending: Pending) -> Received | Failure:
        """The whole body, through `pending`'s checks and into a spool file; or why it could not be read."""
        spool = self._spool = tempfile.SpooledTemporaryFile(  # noqa: SIM115 -- closed by __exit__
            max_size=self.limits.spool_threshold, dir=str(self.limits.spool_dir) if self.limits.spool_dir else None
        )
        size = 0
        try:
            async for chunk in stream:
                size += len(chunk)
                if size > self.limits.max_body:
                    return "too_large"
                if self._needs_slot(size):
                    if not self.slots.try_acquire():
                        return "busy"
                    self._holding = True
                pending.update(chunk)
                spool.write(chunk)
        except RequestEntityTooLarge:
            return "too_large"
        except InternalServerException:  # Litestar's "client disconnected prematurely"
            return "disconnected"
        except ClientException:  # e.g. a Content-Length that is not a number
            return "bad_request"
        return Received(spool, size)
