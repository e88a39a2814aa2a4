"""Waking the leader from another replica: Postgres `LISTEN`/`NOTIFY` on one channel.

Every replica serves webhooks and the API, but only the leader syncs and schedules. Without a signal between them, a
push whose webhook reached a replica that does not lead waited for the leader's next poll (a minute by default), and
a run requested there for the engine's next rescan. Postgres already connects the replicas: a follower sends
`pg_notify('odin_wake', <json>)`, and the leader, which listens on a connection of its own while it leads, acts on it
at once. Notifications are delivered only to sessions listening when they commit, and only once: a message sent while
no replica leads is lost, which is fine, because the new leader's first poll and the engine's start-up scan cover
everything recorded meanwhile. On SQLite (one process by definition) there is nothing to wake.

Messages: `{"sync": <repo id>, "ref": "refs/heads/release/1", "trigger": ..., "by": ...}` (sync now the poller that
follows that ref: the repository's own branch, a further branch its patterns match, or the own branch for a tag its
tag patterns match; `pollers_following` in controller/service.py decides) and `{"run": <run id>}` (the engine should
look at that run now). A `sync` message without `ref` comes from a replica of an older version (a rolling upgrade
runs both): it wakes every poller of the repository, because it cannot say which one the push was for. An older
leader reading a message with `ref` ignores the key and wakes the repository's own poller, as it always did.
"""

from __future__ import annotations

import json
import logging
import select
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from odin.controller.store.db import DbEngine

log = logging.getLogger(__name__)

CHANNEL = "odin_wake"
_MAX_PAYLOAD = 4000  # Postgres refuses payloads of 8000 bytes or more; ours are small, `by` is bounded below
_NOTIFY = sa.text("SELECT pg_notify(:channel, :payload)")

WakeHandler = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class SyncWake:
    """A `sync` message as the leader reads it: which repository, which ref's poller (None: every poller of the
    repository, an older replica's message), and the trigger and requester the runs record."""

    repo_id: int
    ref: str | None
    trigger: str | None
    by: str | None


def sync_message(repo_id: int, *, ref: str | None, trigger: str, by: str | None) -> dict[str, Any]:
    """The `sync` message a follower sends; `ref` a full ref name (`refs/heads/<branch>`, `refs/tags/<tag>`)."""
    message: dict[str, Any] = {"sync": repo_id}
    if ref is not None:
        message["ref"] = ref
    message.update(trigger=trigger, by=(by or "")[:200] or None)
    return message


def read_sync(message: dict[str, Any]) -> SyncWake | None:
    """The `sync` message's parts, or None when `message` is not one (a `run` message, or a malformed one: a
    repository id that is not an integer). A `ref` that is not a string is read as absent (wake every poller)."""
    repo_id = message.get("sync")
    if not isinstance(repo_id, int) or isinstance(repo_id, bool):
        return None
    ref, trigger, by = message.get("ref"), message.get("trigger"), message.get("by")
    return SyncWake(
        repo_id,
        ref if isinstance(ref, str) and ref else None,
        trigger if isinstance(trigger, str) else None,
        by if isinstance(by, str) else None,
    )


def supports_wakeups(engine: DbEngine) -> bool:
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg2"


class WakeSender:
    """The follower's side: one `pg_notify` per message, in a transaction of its own. Never raises: the leader's
    poll and rescan are the fallback, so a failed wake-up is logged and forgotten."""

    def __init__(self, engine: DbEngine) -> None:
        self.engine = engine

    def sync(self, repo_id: int, *, ref: str | None, trigger: str, by: str | None) -> bool:
        """Wake the leader's poller that follows `ref` of repository `repo_id` (None: every poller of it)."""
        return self._send(sync_message(repo_id, ref=ref, trigger=trigger, by=by))

    def run(self, run_id: str) -> bool:
        return self._send({"run": run_id})

    def _send(self, message: dict[str, Any]) -> bool:
        payload = json.dumps(message, separators=(",", ":"))
        if len(payload.encode()) > _MAX_PAYLOAD:
            log.warning("wake-up message too long to send (%d bytes); the leader's poll will do", len(payload))
            return False
        try:
            with self.engine.begin() as conn:
                conn.execute(_NOTIFY, {"channel": CHANNEL, "payload": payload})
        except Exception as e:
            log.warning("cannot wake the leader (%s); its next poll or rescan will pick the change up", e)
            return False
        return True


class WakeListener:
    """The leader's side: a thread holding a dedicated connection that `LISTEN`s, handing each message to `handle`.
    Reconnects (with a pause) when the connection drops; `stop` ends it within `poll` seconds."""

    def __init__(self, engine: DbEngine, handle: WakeHandler, *, poll: float = 0.5, retry: float = 2.0) -> None:
        self.engine = engine
        self.handle = handle
        self.poll = poll
        self.retry = retry
        self.listening = threading.Event()  # set while LISTEN is in effect (tests wait on it)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WakeListener:
        self._stop.clear()
        self._thread = threading.Thread(target=self._main, name="odin-wake-listener", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.poll + 5)
            self._thread = None
        self.listening.clear()

    def _main(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as e:
                log.warning("wake-up listener: %s; listening again in %gs", e, self.retry)
            self.listening.clear()
            self._stop.wait(self.retry)

    def _listen(self) -> None:
        proxied = self.engine.raw_connection()
        raw: Any = proxied.driver_connection
        proxied.detach()  # a connection of its own: never handed back to the pool in LISTEN state
        try:
            raw.autocommit = True
            with raw.cursor() as cur:
                cur.execute(f"LISTEN {CHANNEL}")
            # poll(), not select(): select() refuses a descriptor numbered 1024 or more, which a server holding many
            # connections (or a long test session) hands out, and the listener then never listened again.
            waiting = select.poll()
            waiting.register(raw.fileno(), select.POLLIN)
            self.listening.set()
            while not self._stop.is_set():
                if not waiting.poll(self.poll * 1000):
                    continue
                raw.poll()
                while raw.notifies:
                    self._dispatch(raw.notifies.pop(0).payload)
        finally:
            raw.close()

    def _dispatch(self, payload: str) -> None:
        try:
            message = json.loads(payload)
            if not isinstance(message, dict):
                raise ValueError("not an object")
        except ValueError as e:
            log.warning("wake-up listener: ignoring a malformed message (%s)", e)
            return
        try:
            self.handle(message)
        except Exception:
            log.exception("wake-up listener: handling %s failed", payload[:200])
