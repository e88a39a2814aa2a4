"""How observations and actions change a run's state — the other half of the engine's pure core.

`decide` reads a `RunState`; these functions write it. Each returns the task's new `TaskState` (or None when the
input is stale and ignored), which the loop persists. Stale input is normal: an executor may report an attempt that
the engine has already replaced (a retry) or a task that is already terminal; those reports must change nothing.
"""

from __future__ import annotations

from odin.controller.engine.decide import RUN_TIMEOUT, FailTask, KillTask, RetryTask, SkipTask, StartTask, TaskAction
from odin.controller.engine.state import RunState, TaskState
from odin.controller.vocabulary import WAITING_FOR_QUOTA, Failure, Observation, TaskStatus


def apply_observation(state: RunState, obs: Observation) -> TaskState | None:
    """Fold one executor observation into the state; None if it is stale."""
    st = state.tasks.get(obs.task)
    if st is None or obs.attempt != st.attempt or not st.status.active:
        return None
    if obs.status == TaskStatus.STARTING:  # a note on an attempt not running yet ("waiting for quota")
        if st.status != TaskStatus.STARTING or (st.reason, st.message) == (obs.reason, obs.message):
            return None
        return state.update(obs.task, reason=obs.reason, message=obs.message)
    if obs.status == TaskStatus.RUNNING:
        if st.status == TaskStatus.RUNNING:
            return None
        waited = {"reason": None, "message": None} if st.reason == WAITING_FOR_QUOTA else {}
        return state.update(obs.task, status=TaskStatus.RUNNING, started_at=obs.time, **waited)
    if obs.status == TaskStatus.SUCCEEDED:
        return state.update(
            obs.task,
            status=TaskStatus.SUCCEEDED,
            started_at=st.started_at or obs.time,
            reason=obs.reason or "Succeeded",
            message=obs.message,
            failure=None,
        )
    if obs.status != TaskStatus.FAILED:
        return None
    if st.kill_reason == "Cancelled":
        return state.update(obs.task, status=TaskStatus.CANCELLED, reason="Cancelled", message="killed: run cancelled")
    if st.kill_reason == RUN_TIMEOUT:
        return state.update(
            obs.task,
            status=TaskStatus.FAILED,
            reason="RunTimedOut",
            message="killed: the run's timeout passed",
            failure=Failure.USER,
        )
    reason, message, failure = obs.reason or "Failed", obs.message, obs.failure or Failure.USER
    if st.kill_reason == "Timeout":
        reason, failure = "DeadlineExceeded", Failure.USER
        message = f"killed after exceeding its timeout of {state.dag.timeouts[obs.task]:g}s"
    return state.update(
        obs.task,
        status=TaskStatus.RETRYING,
        undecided=True,
        failure=failure,
        user_failures=st.user_failures + (failure == Failure.USER),
        infra_failures=st.infra_failures + (failure == Failure.INFRA),
        reason=reason,
        message=message,
    )


def apply_action(state: RunState, action: TaskAction) -> TaskState | None:
    """Record in the state that an action was taken; None for actions that change no task."""
    if isinstance(action, StartTask):
        return state.update(
            action.task,
            status=TaskStatus.STARTING,
            attempt=action.attempt,
            started_at=None,
            not_before=None,
            kill_reason=None,
            undecided=False,
        )
    if isinstance(action, RetryTask):
        return state.update(action.task, undecided=False, not_before=action.not_before, message=action.message)
    if isinstance(action, FailTask):
        extra = {"reason": action.reason, "failure": action.failure} if action.reason is not None else {}
        return state.update(action.task, status=TaskStatus.FAILED, undecided=False, message=action.message, **extra)
    if isinstance(action, SkipTask):
        return state.update(action.task, status=TaskStatus.SKIPPED, reason=action.reason, message=action.message)
    if isinstance(action, KillTask):
        return state.update(action.task, kill_reason=action.reason)
    raise TypeError(f"not a task action: {action!r}")
