"""The leader's scheduler: starts pipelines whose `schedule:` names a slot that has come, at the followed branch's tip.

Each tick reads the clock it was given (tests inject one, so no test waits for a minute to pass), looks at the tip the
poller last fetched, and, for every schedule there (each valid pipeline's own `schedule:`, and the `.odin.yml`
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
directory's tree id), so a tick that finds nothing due costs a ref lookup and a comparison per schedule.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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


@dataclass
class _Entry:
    """One schedule of one pipeline as the scheduler follows it."""

    pipeline: str
    schedule: Schedule
    since: datetime  # every slot at or before this was considered
    next: datetime  # the first slot after `since`
    at: PipelineAt | None = None  # the valid pipeline at the tip


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
    """Starts due schedule slots of one followed repository's branch; `tick` is one pass, `start` a thread."""

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
        interval: float = 1.0,
        max_catchup: int = 100,
    ) -> None:
        self.db, self.repo_id, self.mirror, self.launcher = db, repo_id, mirror, launcher
        self.branch, self.validator, self.clock = branch, validator, clock
        self.grace, self.interval, self.max_catchup = grace, interval, max_catchup
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._tip: str | None = None
        self._stored: dict[tuple[str, str], datetime] | None = None  # last started slots, read once per leadership
        self._worker = PeriodicWorker(
            f"odin-scheduler-{repo_id}",
            self.tick,
            interval=interval,
            pause=self._pause,
            first_wait=False,
            logger=log,
            what="scheduler: a tick",
        )

    # -- one pass ----------------------------------------------------------------------------------------------------
    def tick(self) -> Due:
        """Start what is due now. Errors reading the repository or the store are logged; the next tick retries."""
        now = self.clock()
        try:
            sha = self._refresh(now)
        except (GitError, StoreError) as e:
            log.warning("scheduler: cannot read the schedules of %s (%s); retrying", self.branch, e)
            return Due((), ())
        if sha is None:
            return Due((), ())
        starts: list[ScheduledStart] = []
        for entry in self._entries.values():
            if entry.next > now:
                continue
            slots = due_slots(entry.schedule, entry.since, now, grace=self.grace, max_catchup=self.max_catchup)
            if not slots:
                log.info("schedule %s of %s: missed slot(s) not started", entry.schedule.key, entry.pipeline)
            starts.extend(
                ScheduledStart(entry.pipeline, entry.schedule.key, slot, entry.at, entry.schedule.params)
                for slot in slots
            )
            entry.since = now
            entry.next = next_slot(entry.schedule, now)
        if not starts:
            return Due((), ())
        try:
            created = self.launcher.start_slots(sha, starts)
        except StoreError as e:  # nothing was claimed: consider the slots again on the next tick
            log.warning("scheduler: cannot record %d slot(s) (%s); retrying", len(starts), e)
            self._rewind(starts)
            return Due(tuple(starts), ())
        return Due(tuple(starts), tuple(run for _, run in created))

    def upcoming(self) -> dict[str, list[tuple[str, datetime]]]:
        """Each followed pipeline's schedules with their next slot, as this scheduler sees them."""
        found: dict[str, list[tuple[str, datetime]]] = {}
        for entry in self._entries.values():
            found.setdefault(entry.pipeline, []).append((entry.schedule.key, entry.next))
        return found

    def _rewind(self, starts: Sequence[ScheduledStart]) -> None:
        for start in starts:
            entry = self._entries.get((start.pipeline, start.schedule))
            if entry is not None and start.slot <= entry.since:
                entry.since = start.slot - timedelta(microseconds=1)
                entry.next = start.slot

    def _refresh(self, now: datetime) -> str | None:
        """Read the schedules at the tip when it moved (once per commit); keep what each schedule considered."""
        sha = self.mirror.tip()
        if sha is None or sha == self._tip:
            return sha
        if self._stored is None:
            self._stored = {(s.pipeline, s.schedule): s.slot for s in last_slots(self.db, self.repo_id, self.branch)}
        entries: dict[tuple[str, str], _Entry] = {}
        listed = self.mirror.list_pipelines(sha)
        read = {pipeline: read_pipeline(self.mirror, sha, pipeline, validator=self.validator) for pipeline in listed}
        config, config_problems = read_repo_config(self.mirror, sha, limits=Limits())
        if config_problems:
            log.warning("scheduler: %s at %s is invalid; its schedules wait for a fix", REPO_CONFIG_FILE, sha[:12])
        found = commit_schedules(read.values(), config, read.get)
        for problem in found.problems:
            log.warning("scheduler: %s at %s: %s", REPO_CONFIG_FILE, sha[:12], problem)
        for scheduled in found.schedules:
            pipeline, schedule, at = scheduled.pipeline, scheduled.schedule, scheduled.at
            key = (pipeline, schedule.key)
            entry = self._entries.get(key)
            if entry is not None:
                entries[key] = _Entry(pipeline, schedule, entry.since, entry.next, at)  # catch-up may have changed
                continue
            since = self._stored.get(key) or now - timedelta(seconds=self.grace)
            entries[key] = _Entry(pipeline, schedule, since, next_slot(schedule, since), at)
        self._entries = entries
        self._tip = sha
        return sha

    # -- the thread --------------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Tick every `interval` seconds on its own thread, from what the store says (a new leader reads it anew)."""
        self._entries, self._tip, self._stored = {}, None, None
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop(10)

    def _pause(self) -> float:
        """Until the next slot, at most `interval`: a slot starts within milliseconds of its instant."""
        now = self.clock()
        nearest = min((e.next for e in self._entries.values()), default=None)
        if nearest is None:
            return self.interval
        return max(0.0, min(self.interval, (nearest - now).total_seconds()))
