"""Two replicas on one Postgres: a webhook answered by the replica that does not lead wakes the leader at once
(LISTEN/NOTIFY), instead of waiting for the leader's next poll (an hour in these tests)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from odin.controller.store.db import create_db_engine
from odin.controller.store.wakeups import WakeListener, WakeSender
from tests.support.git_fixtures import GitRemote
from tests.support.wait import wait_until
from tests.webhooks.support import HELLO, Odin, load, point_at, settings_for, signed

pytestmark = pytest.mark.postgres


@pytest.fixture
def replicas(seeded_remote: GitRemote, tmp_path: Path, postgres_url: str) -> Iterator[tuple[Odin, Odin]]:
    """(leader, follower), each with its own data directory and HTTP server, following the same repository."""
    leader = Odin(settings_for(tmp_path / "a", seeded_remote, postgres_url), seeded_remote).start()
    follower = Odin(settings_for(tmp_path / "b", seeded_remote, postgres_url), seeded_remote)
    follower.controller.start()
    follower._thread.start()
    try:
        wait_until(lambda: follower.server.started, 30, message="the follower serves")
        assert not follower.controller.leading
        assert leader.controller.wake_listener is not None
        assert leader.controller.wake_listener.listening.wait(30), "the leader listens for wake-ups"
        yield leader, follower
    finally:
        follower.stop()
        leader.stop()


def test_a_webhook_at_the_follower_wakes_the_leader(replicas: tuple[Odin, Odin]) -> None:
    leader, follower = replicas
    syncs = leader.syncs()
    before = follower.remote.head
    sha = follower.remote.commit({"train/main.yml": HELLO.format(name="train", marker="replica")})
    delivery = point_at("github", load("github", "push"), after=sha, before=before)
    delivery.headers["X-GitHub-Delivery"] = "to-the-follower"
    raw, headers = signed("github", delivery)
    answer = follower.post("github", raw, headers)
    assert answer.status_code == 202
    assert "leader is woken" in answer.json()["detail"]
    # Well inside the leader's poll interval (3600 s): only the wake-up can have made it sync.
    wait_until(lambda: leader.runs(sha), 30, message="the leader syncs the pushed commit")
    assert leader.syncs() > syncs
    [run] = leader.runs(sha)
    assert (run.trigger, run.triggered_by) == ("webhook", "github:to-the-follower"), "who and why travel with it"


def test_a_run_started_at_the_follower_is_picked_up_at_once(replicas: tuple[Odin, Odin]) -> None:
    leader, _ = replicas
    woken: list[dict[str, object]] = []
    listener = WakeListener(leader.db, woken.append).start()
    try:
        assert listener.listening.wait(30)
        assert WakeSender(leader.db).run("some-run-id")
        assert WakeSender(leader.db).sync(7, trigger="webhook", by="x" * 10_000)  # `by` is bounded, never refused
        wait_until(lambda: len(woken) == 2, 10, message="both messages arrive")
        assert woken[0] == {"run": "some-run-id"}
        assert woken[1]["sync"] == 7 and len(str(woken[1]["by"])) == 200
    finally:
        listener.stop()


def test_the_listener_hears_on_a_descriptor_numbered_past_1024(replicas: tuple[Odin, Odin]) -> None:
    """select() refuses descriptors >= 1024: a server with many connections (a long CI worker too) never listened
    again ("filedescriptor out of range in select()"), so wake-ups were lost."""
    leader, _ = replicas
    held: list[int] = []
    woken: list[dict[str, object]] = []
    listener = None
    try:
        while not held or held[-1] < 1100:
            held.append(os.open(os.devnull, os.O_RDONLY))
        fresh = create_db_engine(leader.db.url.render_as_string(hide_password=False))  # its connections: new fds
        listener = WakeListener(fresh, woken.append).start()
        assert listener.listening.wait(30)
        assert WakeSender(leader.db).run("some-run-id")
        wait_until(lambda: woken, 10, message="the message arrives")
    finally:
        if listener is not None:
            listener.stop()
        for fd in held:
            os.close(fd)
