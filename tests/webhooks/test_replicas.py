"""Two replicas on one Postgres: a webhook answered by the replica that does not lead wakes the leader at once
(LISTEN/NOTIFY), instead of waiting for the leader's next poll (an hour in these tests)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from odin.api.schemas.pipelines import FileWrite
from odin.api.services.pipelines import write_file
from odin.controller.facade import Author
from odin.controller.launcher import StartRequest
from odin.controller.service import pollers_following
from odin.controller.store.db import create_db_engine
from odin.controller.store.repo_records import insert_record, remove_record
from odin.controller.store.wakeups import CHANNEL, WakeListener, WakeSender
from tests.support.git import GitRemote as PlainRemote
from tests.support.git_fixtures import GitRemote
from tests.support.wait import wait_until
from tests.webhooks.support import HELLO, Odin, load, point_at, settings_for, signed

SECOND_SECRET = "whsec-second-repo-secret"
LONG_POLL = 300.0  # far beyond the waits below: only a wake-up can explain a sync of the registered repository

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


def test_a_file_written_through_the_api_at_the_follower_wakes_the_leader(replicas: tuple[Odin, Odin]) -> None:
    """The API's file write (any replica) commits, pushes and asks for a sync: at a follower, whose pollers do not
    run, that request was dropped and the leader waited for its next poll (an hour here)."""
    leader, follower = replicas
    edit = FileWrite(content=HELLO.format(name="train", marker="edited"), message="Edit through the API")
    written = write_file(
        follower.controller,
        follower.repo,
        "train",
        "main.yml",
        edit,
        author=Author("ann", "ann@example.com"),
        committer=Author("Odin", "odin@example.com"),
        expected_base=None,
    )
    [run] = wait_until(lambda: leader.runs(written.commit_sha), 30, message="the leader syncs the written commit")
    assert run.triggered_by == "ann"


def test_a_run_started_at_the_follower_is_picked_up_at_once(replicas: tuple[Odin, Odin]) -> None:
    leader, _ = replicas
    woken: list[dict[str, object]] = []
    listener = WakeListener(leader.db, woken.append).start()
    try:
        assert listener.listening.wait(30)
        assert WakeSender(leader.db).run("some-run-id")
        # `by` is bounded, never refused
        assert WakeSender(leader.db).sync(7, ref="refs/heads/main", trigger="webhook", by="x" * 10_000)
        wait_until(lambda: len(woken) == 2, 10, message="both messages arrive")
        assert woken[0] == {"run": "some-run-id"}
        assert woken[1]["sync"] == 7 and woken[1]["ref"] == "refs/heads/main" and len(str(woken[1]["by"])) == 200
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


@dataclass
class Registered:
    """A repository registered through the store, following `main`, `release/*` and tags `v*`, known to both
    replicas; the leader follows `release/1` and has taken its baselines (branch and tags)."""

    remote: PlainRemote
    repo_id: int
    leader: Odin
    follower: Odin

    def push(self, ref: str, after: str, *, name: str = "push", delivery: str) -> dict[str, Any]:
        """A signed GitHub delivery of `ref` moved to `after`, answered by the follower (202)."""
        sent = point_at("github", load("github", name), after=after)
        sent.body["ref"] = ref
        sent.headers["X-GitHub-Delivery"] = delivery
        for key in ("html_url", "url", "git_url", "ssh_url", "clone_url", "svn_url"):
            sent.body["repository"][key] = self.remote.file_url
        raw, headers = signed("github", sent, SECOND_SECRET)
        answer = self.follower.post("github", raw, headers)
        assert answer.status_code == 202, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def syncs(self) -> tuple[int, int]:
        """(own branch's, release/1's) sync counts on the leader."""
        followed = self.leader.controller.repo(self.repo_id)
        release = followed.followers.poller("release/1")
        return followed.poller.syncs, release.syncs


@pytest.fixture
def registered(replicas: tuple[Odin, Odin], tmp_path: Path) -> Iterator[Registered]:
    leader, follower = replicas
    remote = PlainRemote.create(tmp_path / "second")
    remote.commit({"vision/main.yml": HELLO.format(name="vision", marker="v1")}, "Seed")
    remote.create_branch("release/1")
    secret_file = tmp_path / "second-secret"
    secret_file.write_text(SECOND_SECRET + "\n")
    values = {
        "url": remote.file_url,
        "branch": "main",
        "branches": ["main", "release/*"],
        "tags": ["v*"],
        "poll_interval": LONG_POLL,
        "webhook_secret_ref": f"file:{secret_file}",
    }
    name = f"second-{uuid.uuid4().hex[:8]}"  # the session's database keeps the names of removed repositories
    record = insert_record(leader.db, name, values, by="test")
    leader.controller.refresh_repositories()
    follower.controller.refresh_repositories()
    followed = leader.controller.repo(record.id)
    assert followed.followers is not None
    wait_until(lambda: followed.followers.branches == ["release/1"], 30, message="the leader follows release/1")
    release = followed.followers.poller("release/1")
    assert release is not None and release.wait_for_syncs(1, 30), "release/1's baseline"
    assert followed.poller.wait_for_syncs(1, 30), "the own branch's baseline (and the tags')"
    assert follower.controller.repo(record.id).poller.syncs == 0, "the follower does not sync"
    yield Registered(remote, record.id, leader, follower)
    remove_record(leader.db, name, by="test")  # later tests' replicas do not follow it


def test_a_push_to_a_further_branch_at_the_follower_wakes_that_branchs_poller(registered: Registered) -> None:
    """The wake-up names the ref: the leader's poller of `release/1` syncs at once (it waited for its next poll,
    LONG_POLL away, when the message named the repository only and the leader woke its own branch's poller)."""
    sha = registered.remote.commit(
        {"vision/main.yml": HELLO.format(name="vision", marker="v2")}, "Release fix", branch="release/1"
    )
    body = registered.push("refs/heads/release/1", sha, delivery="release-to-the-follower")
    assert "leader is woken" in str(body["detail"]) and "release/1" in str(body["detail"]), body
    [run] = wait_until(lambda: registered.leader.runs(sha), 30, message="the leader runs the release/1 commit")
    got = (run.repo_id, run.branch, run.trigger, run.triggered_by)
    assert got == (registered.repo_id, "release/1", "webhook", "github:release-to-the-follower")


def test_a_tag_pushed_at_the_follower_wakes_the_poller_that_checks_tags(registered: Registered) -> None:
    sha = registered.remote.commit({"vision/main.yml": HELLO.format(name="vision", marker="v3")}, "Release v1")
    registered.remote.tag("v1", sha)
    body = registered.push("refs/tags/v1", sha, name="tag_push", delivery="tag-to-the-follower")
    assert "leader is woken" in str(body["detail"]), body
    runs = wait_until(lambda: registered.leader.runs(sha), 30, message="the leader runs the tag's pipelines")
    assert {run.repo_id for run in runs} == {registered.repo_id}


def test_the_leader_wakes_only_the_pollers_that_follow_the_ref(registered: Registered) -> None:
    followed = registered.leader.controller.repo(registered.repo_id)
    own, release = followed.poller, followed.followers.poller("release/1")
    assert pollers_following(followed, "refs/heads/main") == [own]
    assert pollers_following(followed, "refs/heads/release/1") == [release]
    assert pollers_following(followed, "refs/heads/release/2") == [own], "not followed yet: the own sync finds it"
    assert pollers_following(followed, "refs/tags/v2") == [own], "the own branch's poller checks the tags"
    assert pollers_following(followed, "refs/heads/feature/x") == []
    assert pollers_following(followed, "refs/tags/nightly") == []
    assert pollers_following(followed, "refs/pull/1/head") == []
    assert pollers_following(followed, None) == [own, release]


def test_an_older_replicas_wake_up_syncs_every_poller_of_the_repository(
    registered: Registered, caplog: pytest.LogCaptureFixture
) -> None:
    """A rolling upgrade: an older follower's message names the repository only; the leader cannot tell which
    branch was pushed, so every poller of it syncs. A ref nothing follows wakes none (a DEBUG line says so)."""
    leader = registered.leader
    own, release = registered.syncs()
    with caplog.at_level("DEBUG", logger="odin.controller.service"):
        assert WakeSender(leader.db).sync(registered.repo_id, ref="refs/heads/feature/x", trigger="webhook", by="t")
        wait_until(lambda: "which no poller here follows" in caplog.text, 10, message="the ignored wake-up")
    assert registered.syncs() == (own, release)
    with leader.db.begin() as conn:  # exactly what an older replica sends
        old = json.dumps({"sync": registered.repo_id, "trigger": "webhook", "by": "github:old"})
        conn.execute(sa.text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": old})
    wait_until(lambda: all(after > before for after, before in zip(registered.syncs(), (own, release), strict=True)),
               30, message="both pollers sync")  # fmt: skip


def test_a_run_started_at_the_follower_on_a_further_branch_runs_on_the_leader(registered: Registered) -> None:
    """The API's start (any replica): the run records the branch it was asked for, and the follower's run wake-up
    has the leader's engine run it at once, whatever its branch."""
    sha = registered.remote.commit(
        {"vision/main.yml": HELLO.format(name="vision", marker="v4")}, "Release fix", branch="release/1"
    )
    request = StartRequest(pipeline="vision", ref="release/1", by="someone")
    created = registered.follower.controller.start_run(request, registered.repo_id)
    [run] = registered.leader.runs(sha)
    assert (run.id, run.branch) == (created.run_id, "release/1")
    wait_until(lambda: registered.leader.tasks(created.run_id), 30, message="the leader's engine starts it")
    wait_until(lambda: registered.leader.runs(sha)[0].status == "succeeded", 60, message="and it runs to the end")
