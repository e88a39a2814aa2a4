"""The wake-up message a follower sends the leader (controller/store/wakeups.py): it names the repository and the ref
whose poller should sync; a message from an older replica (the repository only) still reads, as "every poller"."""

from __future__ import annotations

import json

from odin.controller.store.wakeups import SyncWake, read_sync, sync_message


def test_a_sync_message_names_the_repository_and_the_ref() -> None:
    sent = sync_message(7, ref="refs/heads/release/1", trigger="webhook", by="github:abc")
    assert sent == {"sync": 7, "ref": "refs/heads/release/1", "trigger": "webhook", "by": "github:abc"}
    received = json.loads(json.dumps(sent))  # what travels through pg_notify
    assert read_sync(received) == SyncWake(7, "refs/heads/release/1", "webhook", "github:abc")
    tag = sync_message(7, ref="refs/tags/v1.2.0", trigger="webhook", by=None)
    assert read_sync(tag) == SyncWake(7, "refs/tags/v1.2.0", "webhook", None)


def test_an_older_replicas_message_wakes_every_poller_of_the_repository() -> None:
    """A rolling upgrade runs both versions: a message without `ref` reads as ref None (every poller)."""
    old = {"sync": 7, "trigger": "webhook", "by": "github:abc"}
    assert read_sync(old) == SyncWake(7, None, "webhook", "github:abc")
    assert read_sync({"sync": 7}) == SyncWake(7, None, None, None)
    assert read_sync({"sync": 7, "ref": 12}) == SyncWake(7, None, None, None), "a ref that is not a string: absent"
    assert "ref" not in sync_message(7, ref=None, trigger="poll", by=None)


def test_what_is_not_a_sync_message_reads_as_none() -> None:
    assert read_sync({"run": "r-1"}) is None
    assert read_sync({"sync": "7"}) is None
    assert read_sync({"sync": True}) is None


def test_the_requester_is_bounded_so_the_message_always_fits() -> None:
    message = sync_message(7, ref="refs/heads/main", trigger="webhook", by="x" * 10_000)
    assert len(message["by"]) == 200
