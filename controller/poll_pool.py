"""The few threads that run every followed branch's polls, instead of a thread per branch.

500 repositories of 5 branches were 2,496 poller threads, each asleep until its next poll: 420 MiB of RSS and 3,011
threads in the server. Here one timer thread holds every job's next due time in a heap and hands due jobs to worker
threads. Workers are few on purpose: each holds its own libgit2 handle on every cache it polls (`Mirror` keeps one per
thread: libgit2 objects are not shared between threads), so polls spread over many workers open and keep many
handles (measured: ~17 workers cost 0.6-0.8 s more CPU per poll cycle and 200 MiB more RSS than one). So one worker
takes every due job in turn while it keeps up; the most recently idle worker is the one woken (the others reach
`IDLE_EXIT` and end); and a new worker starts only when a job has waited `STALL` seconds with none free, which is
what a remote that stops answering causes (it holds its worker until libgit2's timeouts end the poll,
`controller/git/_transport.py`). So a few slow remotes never delay the others, up to `MAX_WORKERS` hung at once.

A job is polled by one worker at a time, never two at once. `wake` makes a waiting job due now, and a job woken while
it is being polled is polled again right after (what woke it may have come too late for the poll under way). `stop`
drops the job's next poll and waits for the one under way, if any, to end.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

MAX_WORKERS = 64
"""The most polls under way at once in the process."""
IDLE_EXIT = 60.0
"""A worker with nothing to do for this many seconds ends (the next due poll starts one again)."""
TIMER_SLACK = 0.1
"""The timer hands over every job due within this many seconds at once (but never earlier than 5 % of the job's own
wait: a 20 ms backoff is waited out): fewer thread wake-ups, each of which costs more CPU than the heap work, and a
30 s poll 0.1 s early is still one per interval."""
STALL = 0.5
"""A ready job that waited this long while no worker took it (hung remotes, a burst) wakes or starts another."""
FAILED_POLL_RETRY = 2.0
"""The wait after a poll that raised (a job handles its own failures; this is the last line)."""


class PollJob(Protocol):
    def poll(self) -> float:
        """Poll once; return the seconds until the next poll."""
        ...


@dataclass(slots=True, eq=False)
class _Slot:
    """A started job's place in the pool. `generation` changes (to a number never used before in the pool) whenever its
    heap or queue entries go stale."""

    state: str = "waiting"  # waiting | ready | running
    generation: int = 0
    again: bool = False  # woken while running: poll again right after
    stopping: bool = False
    polling_thread: int | None = None  # the worker's thread ident while running


@dataclass(slots=True, eq=False)
class _Idle:
    """A worker waiting for work, on its own condition so that the most recently idle one is woken (LIFO)."""

    wake: threading.Condition
    signalled: bool = False


class PollPool:
    def __init__(
        self, *, max_workers: int = MAX_WORKERS, idle_exit: float = IDLE_EXIT, name: str = "odin-poll"
    ) -> None:
        self.max_workers = max_workers
        self.idle_exit = idle_exit
        self.name = name
        self._lock = threading.Lock()
        self._timer_wake = threading.Condition(self._lock)
        self._ended = threading.Condition(self._lock)
        self._slots: dict[PollJob, _Slot] = {}
        # (due, tie-break, generation, job, earliest hand-over: due less its slack), monotonic times
        self._due: list[tuple[float, int, int, PollJob, float]] = []
        self._ready: deque[tuple[PollJob, int, float]] = deque()  # (job, generation, monotonic time queued)
        self._sequence = itertools.count()
        self._generations = itertools.count(1)  # pool-wide, so a restarted job's slot never meets a stale entry
        self._workers = 0
        self._idle: list[_Idle] = []  # workers waiting for a job, the most recently idle last
        self._waking = 0  # workers woken or started that have not looked at the ready queue yet
        self._timer: threading.Thread | None = None
        self.polls = 0  # polls completed, for tests and metrics

    @property
    def workers(self) -> int:
        """Worker threads alive now."""
        with self._lock:
            return self._workers

    def start(self, job: PollJob) -> None:
        """Poll `job` now, then whenever its polls say, until `stop`."""
        with self._lock:
            slot = self._slots.get(job)
            if slot is None:
                slot = self._slots[job] = _Slot()
            slot.stopping = False
            if slot.state == "running":  # restarted before a stop's poll under way ended
                slot.again = True
            elif slot.state == "waiting":
                self._make_ready(job, slot)

    def wake(self, job: PollJob) -> bool:
        """Poll `job` as soon as possible. False when it is not started (or is stopping)."""
        with self._lock:
            slot = self._slots.get(job)
            if slot is None or slot.stopping:
                return False
            if slot.state == "waiting":
                self._make_ready(job, slot)
            elif slot.state == "running":
                slot.again = True
            return True

    def stop(self, job: PollJob, timeout: float = 30.0) -> bool:
        """No further polls of `job`; wait up to `timeout` for one under way to end. False when it did not end."""
        deadline = time.monotonic() + timeout
        with self._lock:
            slot = self._slots.get(job)
            if slot is None:
                return True
            slot.stopping = True
            slot.generation = next(self._generations)  # its heap and queue entries are stale now
            if slot.state != "running":
                del self._slots[job]
                return True
            if slot.polling_thread == threading.get_ident():  # stopped by its own poll: it ends when this returns
                return True
            while self._slots.get(job) is slot:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._ended.wait(remaining)
            return True

    # --- inside the lock ---------------------------------------------------------------------------------------------

    def _make_ready(self, job: PollJob, slot: _Slot) -> None:
        if self._timer is None:  # it also watches the ready queue for stalls
            self._timer = threading.Thread(target=self._time, name=f"{self.name}-timer", daemon=True)
            self._timer.start()
        slot.generation = next(self._generations)
        slot.state = "ready"
        self._ready.append((job, slot.generation, time.monotonic()))
        if self._waking == 0 and (self._idle or self._workers == 0):
            self._add_worker()  # a worker in a poll takes the job after it; the timer watches for stalls
        elif len(self._ready) == 1:
            self._timer_wake.notify()  # so that a queue stalled behind hung polls is seen

    def _add_worker(self) -> None:
        """Wake the most recently idle worker, or start one (up to `max_workers`)."""
        if self._idle:
            idle = self._idle.pop()
            idle.signalled = True
            self._waking += 1
            idle.wake.notify()
        elif self._workers < self.max_workers:
            self._workers += 1
            self._waking += 1
            threading.Thread(target=self._worker, name=f"{self.name}-{next(self._sequence)}", daemon=True).start()

    def _schedule(self, job: PollJob, slot: _Slot, delay: float) -> None:
        slot.generation = next(self._generations)
        slot.state = "waiting"
        due = time.monotonic() + max(0.0, delay)
        early = due - min(TIMER_SLACK, 0.05 * max(0.0, delay))
        earliest = self._due[0][0] if self._due else None
        heapq.heappush(self._due, (due, next(self._sequence), slot.generation, job, early))
        if earliest is None or due < earliest:
            self._timer_wake.notify()

    # --- threads -----------------------------------------------------------------------------------------------------

    def _time(self) -> None:
        """Move jobs whose time has come to the ready queue, with those due within their slack after them (one
        wake-up for several); start a worker for a queue that stalls (every worker held by a slow poll)."""
        with self._lock:
            while True:
                now = time.monotonic()
                while self._due and self._due[0][4] <= now:  # in due order: each is late or within its slack
                    _, _, generation, job, _ = heapq.heappop(self._due)
                    slot = self._slots.get(job)
                    if slot is not None and slot.generation == generation and slot.state == "waiting":
                        self._make_ready(job, slot)
                if self._ready and self._waking == 0 and now - self._ready[0][2] >= STALL:
                    self._add_worker()
                waits = [self._due[0][0] - now] if self._due else []
                if self._ready:
                    waits.append(STALL / 2)
                self._timer_wake.wait(min(waits) if waits else None)

    def _worker(self) -> None:
        idle = _Idle(threading.Condition(self._lock))
        with self._lock:
            self._waking -= 1  # started: it looks at the queue now
        while True:
            with self._lock:
                job, slot = self._next_job(idle)
                if job is None or slot is None:
                    self._workers -= 1
                    return
                slot.state, slot.again, slot.polling_thread = "running", False, threading.get_ident()
            try:
                delay = job.poll()
            except Exception:
                log.exception("a poll failed unexpectedly; polling again in %g s", FAILED_POLL_RETRY)
                delay = FAILED_POLL_RETRY
            with self._lock:
                self.polls += 1
                slot.polling_thread = None
                if slot.stopping:
                    if self._slots.get(job) is slot:
                        del self._slots[job]
                    self._ended.notify_all()
                elif slot.again:
                    self._make_ready(job, slot)
                else:
                    self._schedule(job, slot, delay)

    def _next_job(self, idle: _Idle) -> tuple[PollJob | None, _Slot | None]:
        """The next ready job (lock held); (None, None) after `idle_exit` seconds without being woken."""
        while True:
            while self._ready:
                job, generation, _ = self._ready.popleft()
                slot = self._slots.get(job)
                if slot is not None and slot.generation == generation and slot.state == "ready":
                    return job, slot
            self._idle.append(idle)
            idle.wake.wait(self.idle_exit)
            if idle.signalled:
                idle.signalled = False
                self._waking -= 1
                continue
            self._idle.remove(idle)  # not woken: nobody took it off the list
            if not self._ready:
                return None, None


_SHARED = PollPool()  # starts no thread until a job is started


def shared_pool() -> PollPool:
    """The process's pool: every poller of the process shares it."""
    return _SHARED
