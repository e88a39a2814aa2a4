"""The leader's scheduler, driven by an injected clock: slots start on time, once, with the catch-up users expect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from odin.controller.branches import BranchFollowers
from odin.controller.git.mirror import Mirror
from odin.controller.launcher import RunLauncher
from odin.controller.poller import RepoPoller
from odin.controller.scheduler import Scheduler, due_slots
from odin.controller.store.db import transaction
from odin.controller.store.leadership import SCHEDULER, Fence, advance_epoch
from odin.controller.store.models import REPOSITORIES, RUNS, SCHEDULED_SLOTS
from odin.controller.sync import RepoSync
from odin.schema.model import Schedule
from tests.support.git import GitRemote
from tests.support.wait import wait_until


def pipe(schedule: str) -> str:
    return f"schedule: {schedule}\ntasks:\n  - {{name: t, image: x, command: [echo, hi]}}\n"


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def world(db: Engine, git_remote: GitRemote, tmp_path: Path) -> tuple[Mirror, RunLauncher, list[str]]:
    with transaction(db) as conn:
        repo_id = conn.execute(
            REPOSITORIES.insert().values(name="r", url="u", branch="main", conditions=[]).returning(REPOSITORIES.c.id)
        ).scalar_one()
    git_remote.commit({"readme": "x"})
    mirror = Mirror(git_remote.url, tmp_path / "cache", branch="main")
    submitted: list[str] = []
    launcher = RunLauncher(db, repo_id, mirror, branch="main", trees_dir=tmp_path / "trees", submit=submitted.append)
    return mirror, launcher, submitted


def scheduler(db: Engine, world: tuple[Mirror, RunLauncher, list[str]], clock: FakeClock) -> Scheduler:
    mirror, launcher, _ = world
    return Scheduler(db, launcher.repo_id, mirror, launcher, branch="main", clock=clock)


def runs(db: Engine) -> list[sa.Row[tuple[object, ...]]]:
    with db.connect() as conn:
        return list(conn.execute(sa.select(RUNS).order_by(RUNS.c.created_at)).all())


def test_a_slot_starts_once_at_the_tip_and_records_trigger_and_slot(
    db: Engine, world: tuple[Mirror, RunLauncher, list[str]], git_remote: GitRemote
) -> None:
    mirror, _, submitted = world
    sha = git_remote.commit({"nightly/main.yml": pipe('"0 3 * * *"')})
    mirror.fetch()
    clock = FakeClock(at("2026-01-05T02:59:00"))
    first = scheduler(db, world, clock)
    assert first.tick().starts == ()
    clock.now = at("2026-01-05T03:00:00.200")
    due = first.tick()
    assert [s.slot for s in due.starts] == [at("2026-01-05T03:00:00")]
    assert len(due.created) == 1 and submitted == [due.created[0].run_id]
    assert first.tick().starts == (), "a slot is considered once"
    # Another replica (or a restarted leader) that has not heard of the slot does not start it again.
    other = scheduler(db, world, FakeClock(at("2026-01-05T03:00:30")))
    assert other.tick().created == ()
    (row,) = runs(db)
    assert (row.trigger, row.commit_sha, row.branch, row.pipeline) == ("schedule", sha, "main", "nightly")
    assert row.conditions[0]["type"] == "Scheduled" and row.conditions[0]["slot"] == "2026-01-05T03:00:00+00:00"
    with db.connect() as conn:
        slot = conn.execute(sa.select(SCHEDULED_SLOTS)).one()
    assert (slot.run_id, slot.schedule, slot.slot) == (row.id, "0 3 * * *@UTC", at("2026-01-05T03:00:00"))


@pytest.mark.parametrize(
    ("catchup", "started"),
    [
        ("none", []),
        ("latest", ["2026-01-05T05:00:00"]),
        ("all", ["2026-01-05T02:00:00", "2026-01-05T03:00:00", "2026-01-05T04:00:00", "2026-01-05T05:00:00"]),
    ],
)
def test_catch_up_after_a_restart(
    db: Engine,
    world: tuple[Mirror, RunLauncher, list[str]],
    git_remote: GitRemote,
    catchup: str,
    started: list[str],
) -> None:
    mirror, _, _ = world
    git_remote.commit({"hourly/main.yml": pipe(f'{{cron: "0 * * * *", catchup: {catchup}}}')})
    mirror.fetch()
    clock = FakeClock(at("2026-01-05T01:00:10"))
    assert len(scheduler(db, world, clock).tick().created) == 1  # the 01:00 slot, on time
    # Down from 01:00:20 to 05:30: the 02:00 ... 05:00 slots were missed. A new leader reads the last slot back.
    clock.now = at("2026-01-05T05:30:00")
    due = scheduler(db, world, clock).tick()
    assert [s.slot for s in due.starts] == [at(t) for t in started]
    assert len(due.created) == len(started)


def test_schedules_follow_the_time_zone_and_its_daylight_saving() -> None:
    berlin = Schedule("0 3 * * *", "Europe/Berlin", "all")
    winter = due_slots(berlin, at("2026-01-05T00:00:00"), at("2026-01-06T00:00:00"), grace=60, max_catchup=10)
    summer = due_slots(berlin, at("2026-07-05T00:00:00"), at("2026-07-06T00:00:00"), grace=60, max_catchup=10)
    assert winter == [at("2026-01-05T02:00:00")] and summer == [at("2026-07-05T01:00:00")]
    # 02:30 does not exist on 2026-03-29 in Berlin (02:00 -> 03:00): it starts once, after the change (03:30 CEST).
    gap = Schedule("30 2 * * *", "Europe/Berlin", "all")
    spring = due_slots(gap, at("2026-03-28T12:00:00"), at("2026-03-30T12:00:00"), grace=60, max_catchup=10)
    assert spring == [at("2026-03-29T01:30:00"), at("2026-03-30T00:30:00")]
    # 02:30 happens twice on 2026-10-25 (03:00 -> 02:00): it starts once.
    autumn = due_slots(gap, at("2026-10-24T12:00:00"), at("2026-10-25T12:00:00"), grace=60, max_catchup=10)
    assert autumn == [at("2026-10-25T00:30:00")]


def test_a_slot_more_than_grace_late_is_missed_without_catch_up() -> None:
    daily = Schedule("0 3 * * *")
    since = at("2026-01-05T02:00:00")
    assert due_slots(daily, since, at("2026-01-05T03:00:59"), grace=60, max_catchup=1) == [at("2026-01-05T03:00:00")]
    assert due_slots(daily, since, at("2026-01-05T03:01:01"), grace=60, max_catchup=1) == []
    every = Schedule("* * * * *", catchup="all")
    assert len(due_slots(every, since, at("2026-01-06T02:00:00"), grace=60, max_catchup=5)) == 5


def test_a_new_tip_changes_the_schedules_and_invalid_pipelines_are_left_alone(
    db: Engine, world: tuple[Mirror, RunLauncher, list[str]], git_remote: GitRemote
) -> None:
    mirror, _, _ = world
    git_remote.commit({"a/main.yml": pipe('"0 3 * * *"'), "broken/main.yml": "schedule: '0 3 * * *'\ntasks: []\n"})
    mirror.fetch()
    clock = FakeClock(at("2026-01-05T02:00:00"))
    sched = scheduler(db, world, clock)
    sched.tick()
    assert list(sched.upcoming()) == ["a"]
    git_remote.commit({"a/main.yml": pipe('"30 2 * * *"')})
    mirror.fetch()
    clock.now = at("2026-01-05T02:30:01")
    assert [s.schedule for s in sched.tick().starts] == ["30 2 * * *@UTC"]
    assert sched.upcoming()["a"] == [("30 2 * * *@UTC", at("2026-01-06T02:30:00"))]
    clock.now += timedelta(hours=1)
    assert sched.tick().starts == (), "the old schedule is gone with its commit"


def test_a_stale_leader_claims_no_slot_and_the_next_tick_of_the_leader_does(
    db: Engine, world: tuple[Mirror, RunLauncher, list[str]], git_remote: GitRemote
) -> None:
    """Fencing (issue 14 item 4): a slot is claimed, and its run created, only under the current leadership epoch."""
    mirror, launcher, submitted = world
    git_remote.commit({"nightly/main.yml": pipe('"0 3 * * *"')})
    mirror.fetch()
    stale = Fence(SCHEDULER, advance_epoch(db, SCHEDULER, holder="old"))
    advance_epoch(db, SCHEDULER, holder="new")
    launcher.fence = lambda: stale
    clock = FakeClock(at("2026-01-05T03:00:00.200"))
    due = scheduler(db, world, clock).tick()
    assert len(due.starts) == 1 and due.created == (), "refused: nothing claimed, nothing created"
    assert runs(db) == [] and submitted == []
    current = Fence(SCHEDULER, advance_epoch(db, SCHEDULER, holder="next"))
    launcher.fence = lambda: current
    assert len(scheduler(db, world, clock).tick().created) == 1, "the leader starts the slot"


TRAIN = """\
params:
  epochs: 1
  lr: {type: number, default: 0.1}
tasks:
  - {name: t, image: x, command: [echo, "${params.epochs}"]}
"""


def test_odin_yml_schedules_start_each_with_its_own_params_once_per_slot(
    db: Engine, world: tuple[Mirror, RunLauncher, list[str]], git_remote: GitRemote
) -> None:
    """Two `.odin.yml` entries of one pipeline due at the same instant (and the pipeline's own `schedule:` with its
    params) are three schedules: each starts its run, with its parameters, once."""
    mirror, _, _ = world
    odin_yml = """\
schedules:
  - {pipeline: train, cron: "0 3 * * *", params: {epochs: 10}}
  - {pipeline: train, cron: "0 3 * * *", params: {epochs: 100, lr: 0.01}}
"""
    own = TRAIN.replace("tasks:", 'schedule: {cron: "0 3 * * *", params: {epochs: 5}}\ntasks:')
    git_remote.commit({".odin.yml": odin_yml, "train/main.yml": own})
    mirror.fetch()
    clock = FakeClock(at("2026-01-05T02:59:00"))
    first = scheduler(db, world, clock)
    assert first.tick().starts == ()
    upcoming = first.upcoming()["train"]
    assert len({key for key, _ in upcoming}) == 3 and {slot for _, slot in upcoming} == {at("2026-01-05T03:00:00")}
    clock.now = at("2026-01-05T03:00:00.100")
    due = first.tick()
    assert len(due.created) == 3
    params = sorted((r.params["epochs"], r.params["lr"]) for r in runs(db))
    assert params == [("10", "0.1"), ("100", "0.01"), ("5", "0.1")]
    # A second replica that did not see the slots start finds all three claimed.
    assert scheduler(db, world, FakeClock(at("2026-01-05T03:00:20"))).tick().created == ()
    with db.connect() as conn:
        keys = conn.execute(sa.select(SCHEDULED_SLOTS.c.schedule)).scalars().all()
    assert len(set(keys)) == 3


def test_an_odin_yml_schedule_with_a_bad_param_starts_nothing_and_the_others_still_run(
    db: Engine, world: tuple[Mirror, RunLauncher, list[str]], git_remote: GitRemote
) -> None:
    mirror, _, _ = world
    odin_yml = """\
schedules:
  - {pipeline: train, cron: "0 3 * * *", params: {epoch: 10}}
  - {pipeline: train, cron: "0 4 * * *", params: {epochs: 2}}
  - {pipeline: missing, cron: "0 3 * * *"}
"""
    git_remote.commit({".odin.yml": odin_yml, "train/main.yml": TRAIN})
    mirror.fetch()
    clock = FakeClock(at("2026-01-05T02:59:00"))
    sched = scheduler(db, world, clock)
    sched.tick()
    assert [key.split("@")[0] for key, _ in sched.upcoming()["train"]] == ["0 4 * * *"]
    clock.now = at("2026-01-05T04:00:00.100")
    assert len(sched.tick().created) == 1
    (row,) = runs(db)
    assert row.params == {"epochs": "2", "lr": "0.1"}


def branch_launcher(db: Engine, launcher: RunLauncher, mirror: Mirror, branch: str) -> RunLauncher:
    return RunLauncher(db, launcher.repo_id, mirror, branch=branch, trees_dir=launcher.trees_dir,
                       submit=launcher.submit)  # fmt: skip


def slot_rows(db: Engine) -> list[tuple[str, str, datetime]]:
    with db.connect() as conn:
        rows = conn.execute(sa.select(SCHEDULED_SLOTS.c.branch, SCHEDULED_SLOTS.c.pipeline, SCHEDULED_SLOTS.c.slot))
        return sorted((r.branch, r.pipeline, r.slot) for r in rows)


def test_a_schedule_fires_on_every_followed_branch_that_declares_it_once_per_branch(
    db: Engine, world: tuple[Mirror, RunLauncher, list[str]], git_remote: GitRemote, tmp_path: Path
) -> None:
    """Issue 13: a repository following `main` and `release/*` starts a pipeline's schedule at the tip of each branch
    whose commit declares it, once per (branch, slot) across replicas, each run recording its branch; a branch whose
    commit has no schedule starts nothing, and a branch no longer followed stops."""
    mirror, launcher, _ = world
    on_main = git_remote.commit({"nightly/main.yml": pipe('{cron: "0 * * * *", catchup: latest}')}, branch="main")
    git_remote.create_branch("release/1", on_main)
    on_release = git_remote.commit({"nightly/train.py": "print(1)\n"}, branch="release/1")
    git_remote.create_branch("release/2", on_main)
    unscheduled = git_remote.commit({"nightly/main.yml": pipe("[]")}, branch="release/2")

    def replica(clock: FakeClock) -> Scheduler:
        sched = scheduler(db, world, clock)
        for branch in ("release/1", "release/2"):
            other = Mirror(git_remote.url, tmp_path / "cache", branch=branch)
            other.fetch()
            sched.follow(branch, other, branch_launcher(db, launcher, other, branch))
        return sched

    mirror.fetch()
    clock = FakeClock(at("2026-01-05T01:00:00.300"))
    first = replica(clock)
    assert first.branches == ["main", "release/1", "release/2"]
    due = first.tick()
    assert sorted((s.branch, s.pipeline) for s in due.starts) == [("main", "nightly"), ("release/1", "nightly")]
    assert len(due.created) == 2
    by_branch = {r.branch: r for r in runs(db)}
    assert set(by_branch) == {"main", "release/1"}
    assert (by_branch["main"].commit_sha, by_branch["release/1"].commit_sha) == (on_main, on_release)
    assert unscheduled not in {r.commit_sha for r in runs(db)}
    # A second replica, or a restarted leader, follows the same branches and starts none of those slots again.
    assert replica(FakeClock(at("2026-01-05T01:00:30"))).tick().created == ()
    assert slot_rows(db) == [("main", "nightly", at("2026-01-05T01:00:00")),
                             ("release/1", "nightly", at("2026-01-05T01:00:00"))]  # fmt: skip

    # Down until 04:30: each branch catches up from its own last slot (`catchup: latest`: the 04:00 slot).
    restarted = replica(FakeClock(at("2026-01-05T04:30:00")))
    assert sorted((s.branch, s.slot) for s in restarted.tick().starts) == [
        ("main", at("2026-01-05T04:00:00")),
        ("release/1", at("2026-01-05T04:00:00")),
    ]
    # release/1 is gone from the remote: its schedules stop with it.
    restarted.unfollow("release/1")
    restarted.clock = FakeClock(at("2026-01-05T05:00:00.100"))
    assert [(s.branch, s.slot) for s in restarted.tick().starts] == [("main", at("2026-01-05T05:00:00"))]
    assert len(runs(db)) == 5


def test_the_branches_a_repository_follows_by_pattern_are_the_schedulers_branches(
    db: Engine, world: tuple[Mirror, RunLauncher, list[str]], git_remote: GitRemote, tmp_path: Path
) -> None:
    """Wiring as the controller does it: the branch followers tell the scheduler which branches there are; a
    further branch's schedule fires at its tip once its poller has fetched it, and stops when the branch is deleted."""
    mirror, launcher, _ = world
    git_remote.commit({"nightly/main.yml": pipe('"0 3 * * *"')}, branch="main")
    git_remote.create_branch("release/1")
    clock = FakeClock(at("2026-01-05T02:59:00"))
    sched = scheduler(db, world, clock)

    def make(branch: str) -> RepoPoller:
        other = Mirror(git_remote.url, tmp_path / "cache", branch=branch)
        return RepoPoller(RepoSync(db, launcher.repo_id, other, branch=branch, trees_dir=tmp_path / "trees",
                                   further=True), interval=0.05)  # fmt: skip

    def follow(branch: str, poller: RepoPoller) -> None:
        sched.follow(branch, poller.sync.mirror, branch_launcher(db, launcher, poller.sync.mirror, branch))

    followers = BranchFollowers(repo_id=launcher.repo_id, primary="main", patterns=["main", "release/*"],
                                mirror=mirror, make=make, on_follow=follow, on_unfollow=sched.unfollow)  # fmt: skip
    try:
        mirror.fetch()
        followers.discover()
        assert sched.branches == ["main", "release/1"]
        poller = followers.poller("release/1")
        assert poller is not None
        wait_until(lambda: poller.sync.mirror.tip() is not None, 10, message="release/1 fetched by its poller")
        sched.tick()
        clock.now = at("2026-01-05T03:00:00.100")
        assert sorted(r.branch for r in (runs(db))) == [] and len(sched.tick().created) == 2
        assert sorted(r.branch for r in runs(db)) == ["main", "release/1"]
        git_remote.delete_remote_branch("release/1")
        followers.discover()
        assert sched.branches == ["main"]
    finally:
        followers.stop()
    assert sched.branches == ["main"]


def test_a_ticks_runs_are_handed_over_at_once_with_their_recorded_events(
    db: Engine, world: tuple[Mirror, RunLauncher, list[str]], git_remote: GitRemote
) -> None:
    """The controller's launcher takes `submit_many`: the runs of one tick and their `run.created` events, read in
    the transaction that created them, in one call (no read per run after the commit)."""
    mirror, launcher, submitted = world
    handed: list[tuple[list[str], list[str]]] = []
    launcher.submit_many = lambda ids, events: handed.append(
        (list(ids), [f"{e['kind']}:{e['run_id']}" for e in events])
    )
    git_remote.commit({f"p{i}/main.yml": pipe('"0 3 * * *"') for i in range(3)})
    mirror.fetch()
    due = scheduler(db, world, FakeClock(at("2026-01-05T03:00:00.100"))).tick()
    ids = sorted(run.run_id for run in due.created)
    assert len(ids) == 3 and submitted == [] and len(handed) == 1
    assert sorted(handed[0][0]) == ids and sorted(handed[0][1]) == [f"run.created:{i}" for i in ids]


def test_a_branchs_tip_is_read_after_a_fetch_not_on_every_tick(
    db: Engine, world: tuple[Mirror, RunLauncher, list[str]], git_remote: GitRemote, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler ticks every second for every followed branch (2,500 for 500 repositories of 5 branches): it
    reads a tip from the cache only when a fetch of this process may have moved it, and now and then anyway."""
    mirror, _, _ = world
    git_remote.commit({"nightly/main.yml": pipe('"0 3 * * *"')})
    mirror.fetch()
    reads: list[str | None] = []
    tip = Mirror.tip

    def counting_tip(self: Mirror) -> str | None:
        reads.append(found := tip(self))
        return found

    monkeypatch.setattr(Mirror, "tip", counting_tip)
    clock = FakeClock(at("2026-01-05T01:00:00"))
    s = scheduler(db, world, clock)
    for _ in range(50):
        s.tick()
    assert len(reads) == 1 and s.upcoming()["nightly"]
    # A commit the poller fetches (through any Mirror of the cache) is read at the next tick, its schedule with it.
    git_remote.commit({"hourly/main.yml": pipe('"0 * * * *"')})
    Mirror(git_remote.url, mirror.cache_dir, branch="main").fetch()
    s.tick()
    assert len(reads) == 2 and s.upcoming()["hourly"]
    s.tick()
    assert len(reads) == 2
    # Without a fetch of this process (a cache another process fetches into), the tip is read again after
    # TIP_REREAD seconds: at once when that is 0.
    monkeypatch.setattr("odin.controller.scheduler.TIP_REREAD", 0.0)
    again = scheduler(db, world, clock)
    for _ in range(3):
        again.tick()
    assert len(reads) == 5


def test_a_scheduler_with_no_schedule_waits_long_and_a_fetch_wakes_it(
    db: Engine, world: tuple[Mirror, RunLauncher, list[str]], git_remote: GitRemote
) -> None:
    """500 repositories without schedules must not tick 500 times a second: with nothing scheduled the thread waits
    TIP_REREAD seconds, and a fetch (the poller's, after a push) wakes it to read the new tip at once."""
    from odin.controller.scheduler import TIP_REREAD

    mirror, _, _ = world
    mirror.fetch()
    s = scheduler(db, world, FakeClock(at("2026-01-05T01:00:00")))
    s.tick()
    assert s._pause() == TIP_REREAD  # nothing scheduled
    s.start()
    try:
        wait_until(lambda: s._worker.ticks >= 1, 10, message="the first tick")
        ticks = s._worker.ticks
        git_remote.commit({"nightly/main.yml": pipe('"0 3 * * *"')})
        mirror.fetch()
        wait_until(lambda: s.upcoming().get("nightly"), 10, message="the fetch woke the scheduler")
        assert s._worker.ticks <= ticks + 2, "woken by the fetch, not ticking every second"
        assert s._pause() <= Scheduler.DEFAULT_INTERVAL  # something is scheduled: the usual short wait
    finally:
        s.stop()
