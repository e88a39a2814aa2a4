"""The leader's scheduler: starts pipelines whose `schedule:` names a slot that has come, at each followed branch's tip.

A repository follows its own branch and the further branches its patterns match (`controller/branches.py`); the
scheduler follows the same branches (`follow`/`unfollow`, as their pollers come and go), each on its own: a
pipeline's schedule fires at the tip of every followed branch whose commit declares it, once per (repository,
branch, pipeline, schedule, slot), and the run records that branch.

Each tick reads the clock it was given (tests inject one, so no test waits for a minute to pass), looks at the tip each
branch's poller last fetched, and, for every schedule there (each valid pipeline's own `schedule:`, and the `.odin.yml`
`schedules:` entries, each with its runs' parameters: `odin.controller.schedule_sources`), starts the slots that are
due:

- a slot is *on time* until `grace` seconds after its instant; later it is *missed* (no leader ran: a restart, an
  outage), and the schedule's `catchup` decides: `none` starts no missed slot, `latest` the most recent one, `all`
  each of them (the most recent `max_catchup`), oldest first — what Kubernetes CronJob (`startingDeadlineSeconds`)
  and Argo CronWorkflow users expect;
- each schedule remembers the last instant it considered; after a restart or a change of leader it starts from its
  last started slot in the store, and a schedule seen for the first time from `grace` seconds ago;
- a slot is claimed in the store in the transaction that creates its run (`RunLauncher.start_slots`), so another
  replica, or a leader restarted mid-tick, never starts it twice.

The schedules of a commit are read once per tip (pipelines through `read_pipeline`, itself cached by each pipeline
directory's tree id), so a tick that finds nothing due costs a ref lookup per branch and a comparison per schedule.
Schedules that share a cron expression and zone (a thousand pipelines at `0 3 * * *`) share their slot arithmetic
within a tick, and a branch's due slots are started in one transaction (`RunLauncher.start_slots`). The files of the
scheduled pipelines are written when their tip is first read (`RunLauncher.prepare`), not at the slot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from odin.controller.filters import read_repo_config
from odin.controller.git.errors import GitError
from odin.controller.git.mirror import Mirror
from odin.controller.launcher import RunLauncher, ScheduledStart
from odin.controller.periodic import PeriodicWorker
from odin.controller.pipelines import PipelineAt, read_pipeline
from odin.controller.schedule_sources import commit_schedules
from odin.controller.store.db import DbEngine, StoreError
from odin.controller.store.runs import Created
from odin.controller.store.schedules import last_slots
from odin.controller.store.types import utcnow
from odin.controller.validation import Validator
from odin.schema import REPO_CONFIG_FILE, Limits
from odin.schema.model import Schedule
from odin.schema.schedules import latest_slot, next_slot, slots_after

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware."""


TIP_REREAD = 30.0
"""Seconds after which a branch's tip is read again though no fetch of this process moved it (a cache another
process fetches into; in production each replica has its own): otherwise a tip is read only after a fetch."""


@dataclass
class _Entry:
    """One schedule of one pipeline as the scheduler follows it."""

    pipeline: str
    schedule: Schedule
    since: datetime  # every slot at or before this was considered
    next: datetime  # the first slot after `since`
    at: PipelineAt | None = None  # the valid pipeline at the tip


@dataclass
class _Branch:
    """One followed branch: where its tip is read, the launcher that starts its runs, and its schedules."""

    name: str
    mirror: Mirror
    launcher: RunLauncher
    entries: dict[tuple[str, str], _Entry] = field(default_factory=dict)
    tip: str | None = None
    stored: dict[tuple[str, str], datetime] | None = None  # last started slots, read once per leadership
    fetches: int = -1  # the mirror's fetch number when `tip` was read (`Mirror.fetches`)
    reread_at: float = 0.0  # monotonic time after which the tip is read even without a fetch


@dataclass(frozen=True, slots=True)
class Due:
    """What one tick decided to start (`start` is what the launcher did with it)."""

    starts: tuple[ScheduledStart, ...]
    created: tuple[Created, ...]


def due_slots(schedule: Schedule, since: datetime, now: datetime, *, grace: float, max_catchup: int) -> list[datetime]:
    """The slots of `schedule` in (since, now] to start at `now`, oldest first, by its catch-up policy (see the
    module docstring). Pure: the scheduler's tests hold it to CronJob's behaviour without a clock."""
    if now <= since:
        return []
    on_time_from = now - timedelta(seconds=grace)
    if schedule.catchup == "all":
        kept: deque[datetime] = deque(maxlen=max_catchup)
        for slot in slots_after(schedule, since):
            if slot > now:
                break
            kept.append(slot)
        return list(kept)
    latest = latest_slot(schedule, now)
    if latest <= since:
        return []
    if schedule.catchup == "latest" or latest >= on_time_from:
        return [latest]
    return []


class Scheduler:
    """Starts due schedule slots of one followed repository's branches; `tick` is one pass, `start` a thread.

    `mirror`, `launcher` and `branch` are the repository's own branch; `follow` adds the further ones."""

    DEFAULT_INTERVAL = 1.0
    """The longest the thread waits between ticks, however far the next slot: a schedule that a new commit adds
    while the thread waits for a later slot (or the first schedule of all) is read within this."""

    def __init__(
        self,
        db: DbEngine,
        repo_id: int,
        mirror: Mirror,
        launcher: RunLauncher,
        *,
        branch: str,
        validator: Validator | None = None,
        clock: Clock = utcnow,
        grace: float = 60.0,
        interval: float = DEFAULT_INTERVAL,
        max_catchup: int = 100,
    ) -> None:
        self.db, self.repo_id = db, repo_id
        self.branch, self.validator, self.clock = branch, validator, clock
        self.grace, self.interval, self.max_catchup = grace, interval, max_catchup
        self._lock = threading.Lock()  # guards `_branches` (replaced whole: the tick iterates a snapshot)
        self._branches: dict[str, _Branch] = {branch: _Branch(branch, mirror, launcher)}
        self._worker = PeriodicWorker(
            f"odin-scheduler-{repo_id}",
            self.tick,
            interval=interval,
            pause=self._pause,
            first_wait=False,
            logger=log,
            what="scheduler: a tick",
        )
        mirror.on_fetch(self._worker.wake)  # a new tip may bring schedules: read it now, not after an idle wait

    @property
    def mirror(self) -> Mirror:
        return self._branches[self.branch].mirror

    @property
    def launcher(self) -> RunLauncher:
        return self._branches[self.branch].launcher

    @property
    def branches(self) -> list[str]:
        """The branches whose schedules are followed, the own branch first."""
        with self._lock:
            return [self.branch, *sorted(b for b in self._branches if b != self.branch)]

    def follow(self, branch: str, mirror: Mirror, launcher: RunLauncher) -> None:
        """Start the schedules of a further branch (its poller started): from its next tick on, at its tip."""
        with self._lock:
            if branch != self.branch and branch not in self._branches:
                self._branches = {**self._branches, branch: _Branch(branch, mirror, launcher)}
        mirror.on_fetch(self._worker.wake)

    def unfollow(self, branch: str) -> None:
        """Stop the schedules of a further branch (gone from the remote, or no longer matched)."""
        with self._lock:
            if branch != self.branch and branch in self._branches:
                self._branches = {name: b for name, b in self._branches.items() if name != branch}

    # -- one pass ----------------------------------------------------------------------------------------------------
    def tick(self) -> Due:
        """Start what is due now on every followed branch. Errors reading a branch or the store are logged; the next
        tick retries."""
        now = self.clock()
        with self._lock:
            branches = list(self._branches.values())
        slots = _SlotMemo(now, grace=self.grace, max_catchup=self.max_catchup)
        starts: list[ScheduledStart] = []
        created: list[Created] = []
        for branch in branches:
            due, runs = self._tick_branch(branch, now, slots)
            starts += due
            created += runs
        return Due(tuple(starts), tuple(created))

    def _tick_branch(
        self, branch: _Branch, now: datetime, slots: _SlotMemo
    ) -> tuple[list[ScheduledStart], list[Created]]:
        try:
            sha = self._refresh(branch, now)
        except (GitError, StoreError) as e:
            log.warning("scheduler: cannot read the schedules of %s (%s); retrying", branch.name, e)
            return [], []
        if sha is None:
            return [], []
        starts: list[ScheduledStart] = []
        for entry in branch.entries.values():
            if entry.next > now:
                continue
            due = slots.due(entry.schedule, entry.since)
            if not due:
                log.info("schedule %s of %s on %s: missed slot(s) not started", entry.schedule.key, entry.pipeline,
                         branch.name)  # fmt: skip
            starts.extend(
                ScheduledStart(entry.pipeline, entry.schedule.key, slot, entry.at, entry.schedule.params, branch.name)
                for slot in due
            )
            entry.since = now
            entry.next = slots.next(entry.schedule)
        if not starts:
            return [], []
        try:
            created = branch.launcher.start_slots(sha, starts)
        except StoreError as e:  # nothing was claimed: consider the slots again on the next tick
            log.warning("scheduler: cannot record %d slot(s) of %s (%s); retrying", len(starts), branch.name, e)
            self._rewind(branch, starts)
            return starts, []
        return starts, [run for _, run in created]

    def upcoming(self, branch: str | None = None) -> dict[str, list[tuple[str, datetime]]]:
        """Each pipeline's schedules with their next slot on `branch` (the own branch by default), as this scheduler
        sees them."""
        followed = self._branches.get(branch or self.branch)
        found: dict[str, list[tuple[str, datetime]]] = {}
        for entry in followed.entries.values() if followed is not None else ():
            found.setdefault(entry.pipeline, []).append((entry.schedule.key, entry.next))
        return found

    @staticmethod
    def _rewind(branch: _Branch, starts: Sequence[ScheduledStart]) -> None:
        for start in starts:
            entry = branch.entries.get((start.pipeline, start.schedule))
            if entry is not None and start.slot <= entry.since:
                entry.since = start.slot - timedelta(microseconds=1)
                entry.next = start.slot

    def _refresh(self, branch: _Branch, now: datetime) -> str | None:
        """Read the branch's schedules at its tip when it moved (once per commit); keep what each considered."""
        mirror = branch.mirror
        fetches = mirror.fetches
        if branch.tip is not None and fetches == branch.fetches and time.monotonic() < branch.reread_at:
            return branch.tip  # no fetch since the tip was read: it has not moved
        sha = mirror.tip()
        if sha is None or sha == branch.tip:
            branch.fetches, branch.reread_at = fetches, time.monotonic() + TIP_REREAD
            return sha
        if branch.stored is None:
            branch.stored = {(s.pipeline, s.schedule): s.slot for s in last_slots(self.db, self.repo_id, branch.name)}
        entries: dict[tuple[str, str], _Entry] = {}
        listed = mirror.list_pipelines(sha)
        read = {pipeline: read_pipeline(mirror, sha, pipeline, validator=self.validator) for pipeline in listed}
        config, config_problems = read_repo_config(mirror, sha, limits=Limits())
        if config_problems:
            log.warning("scheduler: %s at %s (%s) is invalid; its schedules wait for a fix", REPO_CONFIG_FILE,
                        sha[:12], branch.name)  # fmt: skip
        found = commit_schedules(read.values(), config, read.get)
        for problem in found.problems:
            log.warning("scheduler: %s at %s (%s): %s", REPO_CONFIG_FILE, sha[:12], branch.name, problem)
        for scheduled in found.schedules:
            pipeline, schedule, at = scheduled.pipeline, scheduled.schedule, scheduled.at
            key = (pipeline, schedule.key)
            entry = branch.entries.get(key)
            if entry is not None:
                entries[key] = _Entry(pipeline, schedule, entry.since, entry.next, at)  # catch-up may have changed
                continue
            since = branch.stored.get(key) or now - timedelta(seconds=self.grace)
            entries[key] = _Entry(pipeline, schedule, since, next_slot(schedule, since), at)
        branch.entries = entries
        branch.tip = sha
        branch.fetches, branch.reread_at = fetches, time.monotonic() + TIP_REREAD  # read whole: kept until a fetch
        prepared = {entry.pipeline: entry.at for entry in entries.values() if entry.at is not None}
        branch.launcher.prepare(sha, prepared.values())
        return sha

    # -- the thread --------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Tick every `interval` seconds on its own thread, from what the store says (a new leader reads it anew)."""
        with self._lock:
            for branch in self._branches.values():
                branch.entries, branch.tip, branch.stored = {}, None, None
        self._worker.start()

    def stop(self) -> bool:
        """Stop the thread; False if a tick still runs after 10 s (it ends with the process)."""
        return self._worker.stop(10)

    @property
    def ticks(self) -> int:
        """Ticks the thread has made (tests and metrics: a thread that sleeps until its slot makes few)."""
        return self._worker.ticks

    def _pause(self) -> float:
        """Until the next slot, at most `interval`: a slot starts within milliseconds of its instant."""
        now = self.clock()
        with self._lock:
            branches = list(self._branches.values())
        nearest = min((e.next for b in branches for e in b.entries.values()), default=None)
        if nearest is None:  # no schedule on any branch: a fetch wakes the thread (`Mirror.on_fetch`)
            return max(self.interval, TIP_REREAD)
        return max(0.0, min(self.interval, (nearest - now).total_seconds()))


class _SlotMemo:
    """The slot arithmetic of one tick, shared by schedules with the same cron expression and zone: a thousand
    pipelines at `0 3 * * *` ask croniter once, not a thousand times."""

    def __init__(self, now: datetime, *, grace: float, max_catchup: int) -> None:
        self.now, self.grace, self.max_catchup = now, grace, max_catchup
        self._due: dict[tuple[str, str, str, datetime], list[datetime]] = {}
        self._next: dict[tuple[str, str], datetime] = {}

    def due(self, schedule: Schedule, since: datetime) -> list[datetime]:
        key = (schedule.cron, schedule.timezone, schedule.catchup, since)
        if key not in self._due:
            self._due[key] = due_slots(schedule, since, self.now, grace=self.grace, max_catchup=self.max_catchup)
        return self._due[key]

    def next(self, schedule: Schedule) -> datetime:
        key = (schedule.cron, schedule.timezone)
        if key not in self._next:
            self._next[key] = next_slot(schedule, self.now)
        return self._next[key]
