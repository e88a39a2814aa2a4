"""The engine's decision step: a pure function of (DAG, observed task states, now) to actions.

Everything that makes a run behave — which task starts next, when a failure is retried, which tasks are skipped,
when a run is finished — lives here, with no I/O, no clock and no randomness (retry jitter is derived from the task
name and attempt), so it is tested exhaustively without any executor or database.

The loop around it applies the returned actions to the `RunState` and calls `decide` again until it returns no action
(a fixed point): each call handles one "layer" of consequences, which keeps every call cheap.

Rules:
- A task starts as soon as its own dependencies succeeded (no level barriers), in pipeline order, within the run's
  parallelism and the controller's free slots.
- A failed attempt is retried per its `Failure` kind (see `Failure`); otherwise the task fails, its dependents are
  skipped, and independent branches run to completion; then the run fails.
- A running task past its `timeout` is killed once; the resulting failure is a USER failure (retried per `retries`).
- Cancellation kills active tasks once, skips the rest, and finishes the run as cancelled when nothing is active.
- A run past its pipeline's `timeout` (its `deadline`, counted from when the run started running, not from its
  creation: time spent queued is not the run's; None until it starts) is ended the same way, and finishes failed
  with reason `TimedOut`; its killed tasks fail with reason `RunTimedOut`, never retried.
- A ready task with a `when` condition starts only if its `Gate` (the condition's outcome, evaluated by the loop from
  the values it holds, so this stays pure) lets it: a false condition skips it (reason `ConditionFalse`; its
  dependents are then skipped as after any skip), a condition that cannot be evaluated fails it, never retried.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from odin.controller.engine.state import Dag, RunState
from odin.controller.vocabulary import REPLACED, Failure, RunStatus, TaskStatus


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Backoff between attempts: `base * 2**(n-1)`, capped at `maximum`, with a +-`jitter` fraction."""

    base: float = 10.0
    maximum: float = 600.0
    jitter: float = 0.2
    max_infra_retries: int = 5

    def delay(self, task: str, failures: int) -> float:
        raw = min(self.maximum, self.base * 2.0 ** max(0, failures - 1))
        # Deterministic jitter in [-jitter, +jitter]: spreads retries of a fan-out without making decide impure.
        unit = (zlib.crc32(f"{task}:{failures}".encode()) % 10_000) / 10_000
        return raw * (1 + self.jitter * (2 * unit - 1))


@dataclass(frozen=True, slots=True)
class StartTask:
    task: str
    attempt: int


@dataclass(frozen=True, slots=True)
class RetryTask:
    task: str
    not_before: float
    message: str


@dataclass(frozen=True, slots=True)
class FailTask:
    task: str
    message: str
    reason: str | None = None  # set for a task failed before it started (its `when` could not be evaluated)
    failure: Failure | None = None


@dataclass(frozen=True, slots=True)
class Gate:
    """The outcome of a ready task's `when`, as the loop evaluated it: run it, or skip it (`error`: fail it) with
    `message`."""

    run: bool
    message: str = ""
    error: bool = False


@dataclass(frozen=True, slots=True)
class SkipTask:
    task: str
    reason: str  # UpstreamFailed | Cancelled
    message: str


@dataclass(frozen=True, slots=True)
class KillTask:
    task: str
    reason: str  # Timeout | Cancelled


@dataclass(frozen=True, slots=True)
class FinishRun:
    status: RunStatus
    message: str
    reason: str | None = None  # TimedOut


RUN_TIMEOUT = "RunTimeout"
"""The kill reason of a task killed because its run's `timeout` passed."""


TaskAction = StartTask | RetryTask | FailTask | SkipTask | KillTask
Action = TaskAction | FinishRun


@dataclass(frozen=True, slots=True)
class Decision:
    actions: tuple[Action, ...]
    wake_at: float | None  # the earliest time something will be due (a retry, a timeout) if nothing else happens
    # A task could start now (ready, or a retry whose backoff has passed) but no slot was free: the loop must step this
    # run again when one frees up, as nothing else (no observation, no wake time) will.
    wants_slot: bool = False


def decide(
    dag: Dag,
    state: RunState,
    *,
    now: float,
    parallelism: int,
    free_slots: int | None = None,
    policy: RetryPolicy | None = None,
    gates: Mapping[str, Gate] | None = None,
) -> Decision:
    """Return what to do next for one run. Never mutates `state`. `gates` holds, for ready tasks with a `when`, the
    condition's outcome (the loop gives one for each such task); a task without a gate starts as usual."""
    policy = policy or RetryPolicy()
    actions: list[Action] = []
    wake: list[float] = []

    if state.cancel_requested:
        return _decide_cancel(state)
    if state.deadline is not None:
        if state.deadline <= now:
            return _decide_timed_out(dag, state)
        wake.append(state.deadline)

    for name in sorted(state.undecided, key=dag.index.__getitem__):
        actions.append(_after_failure(dag, state, name, now, policy))

    for name in sorted(state.blocked, key=dag.index.__getitem__):
        failed = [d for d in dag.deps[name] if state[d].status in (TaskStatus.FAILED, TaskStatus.SKIPPED)]
        culprit = failed[0] if failed else dag.deps[name][0]
        actions.append(SkipTask(name, "UpstreamFailed", f"upstream task {culprit!r} did not succeed"))

    for name in state.active:
        timeout = dag.timeouts[name]
        st = state[name]
        if timeout is None or st.started_at is None or st.kill_reason is not None:
            continue
        deadline = st.started_at + timeout
        if deadline <= now:
            actions.append(KillTask(name, "Timeout"))
        else:
            wake.append(deadline)

    held: dict[str, Gate] = {}
    if gates:
        for name, gate in gates.items():
            if not gate.run and state[name].status == TaskStatus.PENDING:
                held[name] = gate
        for name in sorted(held, key=dag.index.__getitem__):
            gate = held[name]
            if gate.error:
                actions.append(FailTask(name, gate.message, reason="ConditionError", failure=Failure.PERMANENT))
            else:
                actions.append(SkipTask(name, "ConditionFalse", gate.message))

    slots = parallelism - state.active_count
    if free_slots is not None:
        slots = min(slots, free_slots)
    due_retries = []
    for name in state.retrying:
        nb = state[name].not_before or 0.0
        if nb <= now:
            due_retries.append(name)
        else:
            wake.append(nb)
    # Retries and fresh tasks compete for slots in pipeline order: a retry does not jump the queue.
    candidates = sorted(due_retries, key=dag.index.__getitem__)
    wants_slot = bool(candidates) or any(n not in held for n in state.first_ready(len(held) + 1))
    if slots > 0:
        fresh = [n for n in state.first_ready(slots + len(held)) if n not in held]
        candidates = sorted([*candidates, *fresh], key=dag.index.__getitem__)[:slots]
        actions.extend(StartTask(name, state[name].attempt + 1) for name in candidates)

    if not actions and state.all_terminal:
        if state.any_failed:
            failed = [n for n in dag.names if state[n].status == TaskStatus.FAILED]
            return Decision((FinishRun(RunStatus.FAILED, f"task(s) failed: {', '.join(failed[:5])}"),), None)
        return Decision((FinishRun(RunStatus.SUCCEEDED, "all tasks succeeded"),), None)
    return Decision(tuple(actions), min(wake) if wake else None, wants_slot=wants_slot)


def _after_failure(dag: Dag, state: RunState, name: str, now: float, policy: RetryPolicy) -> Action:
    st = state[name]
    detail = st.message or st.reason or "failed"
    if st.failure == Failure.PERMANENT:
        return FailTask(name, f"{detail} (not retried: retrying cannot help)")
    if st.failure == Failure.INFRA:
        if st.infra_failures <= policy.max_infra_retries:
            at = now + policy.delay(name, st.infra_failures)
            return RetryTask(name, at, f"{detail}; infrastructure failure {st.infra_failures}, retrying")
        return FailTask(name, f"{detail}; gave up after {st.infra_failures} infrastructure failures")
    allowed = dag.retries[name]
    if st.user_failures <= allowed:
        at = now + policy.delay(name, st.user_failures)
        return RetryTask(name, at, f"{detail}; retry {st.user_failures} of {allowed}")
    if allowed:
        return FailTask(name, f"{detail}; no retries left ({allowed} used)")
    return FailTask(name, detail)


def _decide_timed_out(dag: Dag, state: RunState) -> Decision:
    """The run's `timeout` passed: kill what runs (once), fail what waited on a retry decision, skip the rest; finish
    failed once nothing is active."""
    actions: list[Action] = []
    for name in sorted(state.active, key=dag.index.__getitem__):
        if state[name].kill_reason is None:
            actions.append(KillTask(name, RUN_TIMEOUT))
    limit = format_seconds(dag.run_timeout) if dag.run_timeout is not None else "its timeout"
    for name in dag.names:
        st = state[name]
        if st.undecided:
            detail = st.message or st.reason or "failed"
            actions.append(FailTask(name, f"{detail}; not retried: the run timed out after {limit}"))
        elif st.status in (TaskStatus.PENDING, TaskStatus.RETRYING):
            actions.append(SkipTask(name, "RunTimedOut", f"the run timed out after {limit} before the task started"))
    if not actions and state.active_count == 0:
        return Decision((FinishRun(RunStatus.FAILED, f"timed out after {limit}", reason="TimedOut"),), None)
    return Decision(tuple(actions), None)


def format_seconds(seconds: float) -> str:
    """`7200` → `2h`, `5400` → `1h30m`, `90.5` → `1m30.5s`: a duration as `timeout:` is written."""
    if seconds <= 0:
        return "0s"
    parts: list[str] = []
    rest = seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        count = int(rest // size)
        if count:
            parts.append(f"{count}{unit}")
            rest -= count * size
    if rest > 1e-9:
        parts.append(f"{rest:g}s")
    return "".join(parts)


def _decide_cancel(state: RunState) -> Decision:
    actions: list[Action] = []
    for name in sorted(state.active, key=state.dag.index.__getitem__):
        if state[name].kill_reason is None:
            actions.append(KillTask(name, "Cancelled"))
    for name in state.dag.names:
        st = state[name]
        if st.undecided:
            actions.append(FailTask(name, f"{st.message or st.reason or 'failed'}; not retried: the run was cancelled"))
        elif st.status in (TaskStatus.PENDING, TaskStatus.RETRYING):
            actions.append(SkipTask(name, "Cancelled", "run cancelled before the task started"))
    if not actions and state.active_count == 0:
        if state.cancel_message is not None:  # replaced by a newer run of its pipeline (`concurrency.policy`)
            return Decision((FinishRun(RunStatus.CANCELLED, state.cancel_message, reason=REPLACED),), None)
        return Decision((FinishRun(RunStatus.CANCELLED, "cancelled"),), None)
    return Decision(tuple(actions), None)
