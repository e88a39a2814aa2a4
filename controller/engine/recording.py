"""What the engine has decided but not yet committed, the side effects waiting on it, and the commit that releases
them: the engine's half of "commit before you act" (see `odin.controller.engine.loop`).

Every change a turn decides (a task's new state, a run started or finished, the events describing them) goes into
one `WriteBatch`; every action on the outside world (start a task, kill one, prepare or finish a run) goes into
`effects`. `flush` commits the batch in ONE transaction and only then performs the effects, in order. If the store
is unavailable, both are kept and the next flush retries them: nothing is started until it is recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from odin.controller.bus import EventBus
from odin.controller.engine.state import TaskState
from odin.controller.store.db import DbEngine, StoreUnavailable, Writer
from odin.controller.store.leadership import Fence, LeadershipLost
from odin.controller.store.runs import WriteBatch, epoch_to_datetime, write_batch
from odin.controller.store.types import utcnow
from odin.controller.vocabulary import WAITING_FOR_QUOTA, RunContext, RunStatus, TaskStatus

log = logging.getLogger(__name__)


class Recorder:
    """The engine's pending changes and effects, and their commit. Used by the engine's thread only.

    `store_failures` counts the store failures in a row (flushes, and the engine's own reads at start); the engine
    reads it to back off while the store is down.

    `fence` gives the leadership epoch every commit is conditional on (None: not fenced). Once the store refuses a
    commit for a lost leadership, `fenced` is set, the refused changes and their effects are dropped (never
    performed), and so is everything recorded after: the engine stops acting.
    """

    def __init__(
        self, db: DbEngine, bus: EventBus, *, coalesce: float, fence: Callable[[], Fence | None] = lambda: None
    ) -> None:
        self.db = db
        self.bus = bus
        self.coalesce = coalesce
        self.fence = fence
        self.fenced = False
        self.store_failures = 0
        self.flush_due: float | None = None
        self._writer = Writer(db)
        self._batch = WriteBatch()
        self._effects: list[Callable[[], None]] = []

    # -- what is pending ------------------------------------------------------------------------------------------
    @property
    def holding(self) -> bool:
        """Whether anything waits to be committed or performed."""
        return bool(self._batch or self._effects)

    def effect(self, action: Callable[[], None]) -> None:
        """Do `action` once everything recorded before it is committed."""
        self._effects.append(action)

    def task(
        self,
        ctx: RunContext,
        task: str,
        new: TaskState,
        before: TaskState,
        *,
        resource: Mapping[str, Any] | None = None,
        exit_code: int | None = None,
    ) -> None:
        """A task's new state: its row, and a `task.status` event when the change is one a reader would see."""
        values: dict[str, Any] = {
            "status": new.status.value,
            "attempt": new.attempt,
            "user_failures": new.user_failures,
            "infra_failures": new.infra_failures,
            "reason": new.reason,
            "message": new.message,
            "failure": new.failure.value if new.failure else None,
            "not_before": epoch_to_datetime(new.not_before),
            "started_at": epoch_to_datetime(new.started_at),
        }
        # A note on an attempt not running yet (the executor waits for quota): its reason and message, and an event.
        noted = (
            new.status == before.status == TaskStatus.STARTING
            and new.attempt == before.attempt
            and new.reason == WAITING_FOR_QUOTA
        )
        if new.status == TaskStatus.STARTING and not noted:
            values.update(exit_code=None, finished_at=None, pid=None, reason=None, message=None, failure=None)
            values.update(results=None, artifacts=None)  # a new attempt: the last one's outputs no longer stand
            values.update(cache_key=None)  # recorded again by the launch (engine/cache.py) when the task is cached
        if new.status.terminal or (new.status == TaskStatus.RETRYING and before.status != TaskStatus.RETRYING):
            values["finished_at"] = utcnow()
        if exit_code is not None:
            values["exit_code"] = exit_code
        if resource:
            values.update(resource)
        self._batch.task(ctx.run_id, task, **values)
        if new.undecided:
            return  # an attempt failed; the decision taken in this same step (retry or fail) is the event
        changed = new.status != before.status or new.attempt != before.attempt or before.undecided
        if changed or (noted and (new.reason, new.message) != (before.reason, before.message)):
            status = new.status.value
            self._batch.event(
                "task.status",
                run_id=ctx.run_id,
                task=task,
                commit_sha=ctx.commit_sha,
                status=status,
                attempt=new.attempt,
                reason=new.reason,
                message=new.message,
                exit_code=exit_code,
            )
            if new.status.terminal or new.status == TaskStatus.RETRYING:
                log.info(
                    "run %s task %s attempt %d: %s%s",
                    ctx.run_id,
                    task,
                    new.attempt,
                    status,
                    f" ({new.reason}: {new.message})" if new.message else "",
                )

    def task_values(self, ctx: RunContext, task: str, **values: Any) -> None:
        """Columns of a task's row to record with the rest of this turn, with no event (e.g. its cache key)."""
        self._batch.task(ctx.run_id, task, **values)

    def run_started(self, ctx: RunContext, *, at: float | None = None) -> None:
        """The run is running since `at` (epoch seconds, the engine's clock; default now): its `timeout` counts from
        this `started_at`."""
        started = epoch_to_datetime(at) if at is not None else utcnow()
        self._batch.run(ctx.run_id, status=RunStatus.RUNNING.value, started_at=started)
        self._batch.event("run.status", run_id=ctx.run_id, commit_sha=ctx.commit_sha, status=RunStatus.RUNNING.value)

    def run_finished(
        self, ctx: RunContext, status: RunStatus, message: str | None, *, reason: str | None = None
    ) -> None:
        self._batch.run(ctx.run_id, status=status.value, message=message, finished_at=utcnow(), reason=reason)
        self._batch.event(
            "run.status",
            run_id=ctx.run_id,
            commit_sha=ctx.commit_sha,
            status=status.value,
            message=message,
            pipeline=ctx.pipeline,
        )

    def run_invalid(self, run_id: str, commit_sha: str | None, message: str) -> None:
        """A run the engine cannot drive (its frozen spec does not load): it ends in error."""
        status = RunStatus.ERROR.value
        self._batch.run(run_id, status=status, reason="InvalidSpec", message=message, finished_at=utcnow())
        self._batch.event("run.status", run_id=run_id, commit_sha=commit_sha, status=status, message=message)

    # -- committing -----------------------------------------------------------------------------------------------
    def end_turn(self, now: float) -> None:
        """After a turn: commit now if an effect waits or the coalescing delay is over; otherwise let changes that
        nothing waits on gather for `coalesce` seconds."""
        if self._effects or (self.flush_due is not None and now >= self.flush_due):
            self.flush()
        elif self._batch and self.flush_due is None:
            self.flush_due = now + self.coalesce

    def flush(self) -> None:
        """Commit pending changes, then perform their side effects. On store failure keep both for later."""
        batch, effects = self._batch, self._effects
        self.flush_due = None
        if self.fenced:
            self.discard()
            return
        if batch:
            try:
                stored = write_batch(self.db, batch, writer=self._writer, fence=self.fence())
            except LeadershipLost as e:
                log.error("%s (%d change(s) and %d action(s) dropped)", e, len(batch.events), len(effects))
                self.fenced = True
                self.discard()
                return
            except StoreUnavailable as e:
                self.store_failures += 1
                if self.store_failures in (1, 10) or self.store_failures % 100 == 0:
                    log.error("engine cannot record changes (%s); holding them and retrying", e)
                return
            if self.store_failures:
                log.info("store reachable again; recorded held changes")
            self.store_failures = 0
            for ev in stored:
                self.bus.publish(ev)
        self._batch, self._effects = WriteBatch(), []
        for effect in effects:
            effect()

    def discard(self) -> None:
        """Forget what is pending (a lost leadership, or a new one that reads the store afresh)."""
        self._batch, self._effects = WriteBatch(), []
        self.flush_due = None

    def close(self) -> None:
        self._writer.close()
