"""The engine's decision step, exercised as a pure function: no executor, no database, no clock."""

from __future__ import annotations

import pytest

from odin.controller.engine.decide import (
    Decision,
    FailTask,
    FinishRun,
    Gate,
    KillTask,
    RetryPolicy,
    RetryTask,
    SkipTask,
    StartTask,
    decide,
    format_seconds,
)
from odin.controller.engine.state import Dag, RunState, TaskState
from odin.controller.engine.transitions import apply_action, apply_observation
from odin.controller.vocabulary import Failure, Observation, RunStatus, TaskStatus

NO_JITTER = RetryPolicy(base=10, maximum=100, jitter=0.0, max_infra_retries=2)


class Sim:
    """Drives decide + transitions like the engine loop does, with a hand-held clock."""

    def __init__(self, dag: Dag, parallelism: int = 10, policy: RetryPolicy = NO_JITTER) -> None:
        self.dag, self.parallelism, self.policy = dag, parallelism, policy
        self.state = RunState.new(dag)
        self.now = 1000.0
        self.log: list[object] = []
        self.finished: FinishRun | None = None

    def step(self) -> Decision:
        """Decide and apply until a fixed point; return the last decision (its wake_at is meaningful)."""
        while True:
            d = decide(self.dag, self.state, now=self.now, parallelism=self.parallelism, policy=self.policy)
            if not d.actions:
                return d
            for a in d.actions:
                self.log.append(a)
                if isinstance(a, FinishRun):
                    self.finished = a
                    return d
                apply_action(self.state, a)

    def started(self) -> list[str]:
        return [a.task for a in self.log if isinstance(a, StartTask)]

    def observe(self, task: str, status: TaskStatus, failure: Failure | None = None, reason: str | None = None) -> None:
        obs = Observation("r", task, self.state[task].attempt, status, time=self.now, failure=failure, reason=reason)
        apply_observation(self.state, obs)

    def run(self, task: str) -> None:
        self.observe(task, TaskStatus.RUNNING)

    def ok(self, task: str) -> None:
        self.observe(task, TaskStatus.SUCCEEDED)

    def fail(self, task: str, failure: Failure = Failure.USER, reason: str = "Error") -> None:
        self.observe(task, TaskStatus.FAILED, failure, reason)


def diamond() -> Dag:
    return Dag.from_edges({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]})


def test_roots_start_first_then_dependents_as_soon_as_their_own_deps_succeed() -> None:
    # x is slow; y depends only on a; y must not wait for x (no level barrier).
    sim = Sim(Dag.from_edges({"a": [], "x": [], "y": ["a"], "z": ["x", "y"]}))
    sim.step()
    assert sim.started() == ["a", "x"]
    sim.run("a"), sim.run("x"), sim.ok("a")
    sim.step()
    assert sim.started() == ["a", "x", "y"]
    sim.ok("y")
    sim.step()
    assert "z" not in sim.started()
    sim.ok("x")
    sim.step()
    assert sim.started()[-1] == "z"


def test_parallelism_limits_active_tasks_and_keeps_pipeline_order() -> None:
    sim = Sim(Dag.from_edges({f"t{i}": [] for i in range(6)}), parallelism=2)
    sim.step()
    assert sim.started() == ["t0", "t1"]
    sim.ok("t1")
    sim.step()
    assert sim.started() == ["t0", "t1", "t2"]
    assert sim.state.active_count == 2


def test_has_ready_follows_the_ready_list_as_tasks_start_and_end() -> None:
    sim = Sim(Dag.from_edges({"a": [], "b": ["a"]}), parallelism=1)
    assert sim.state.has_ready and sim.state.ready == ["a"]
    sim.step()
    assert not sim.state.has_ready  # a started; b waits for it
    sim.ok("a")
    assert sim.state.has_ready and sim.state.ready == ["b"]


def test_free_slots_bound_starts_across_runs() -> None:
    state = RunState.new(Dag.from_edges({"a": [], "b": [], "c": []}))
    d = decide(state.dag, state, now=0, parallelism=10, free_slots=1)
    assert d.actions == (StartTask("a", 1),)


def test_success_finishes_the_run() -> None:
    sim = Sim(diamond())
    sim.step()
    for t in ["a", "b", "c", "d"]:
        sim.ok(t)
        sim.step()
    assert sim.finished == FinishRun(RunStatus.SUCCEEDED, "all tasks succeeded")


def test_failure_skips_dependents_but_independent_branches_finish() -> None:
    dag = Dag.from_edges({"a": [], "b": ["a"], "c": ["b"], "x": [], "y": ["x"]})
    sim = Sim(dag)
    sim.step()
    sim.fail("a")
    sim.step()
    skipped = {a.task for a in sim.log if isinstance(a, SkipTask)}
    assert skipped == {"b", "c"}
    assert sim.state["a"].status == TaskStatus.FAILED
    assert sim.finished is None, "x and y still have to run"
    sim.ok("x")
    sim.step()
    assert sim.started()[-1] == "y"
    sim.ok("y")
    sim.step()
    assert sim.finished is not None and sim.finished.status == RunStatus.FAILED
    assert "a" in sim.finished.message


def test_skip_message_names_the_failed_upstream() -> None:
    sim = Sim(Dag.from_edges({"a": [], "b": ["a"]}))
    sim.step()
    sim.fail("a")
    sim.step()
    skip = next(a for a in sim.log if isinstance(a, SkipTask))
    assert skip == SkipTask("b", "UpstreamFailed", "upstream task 'a' did not succeed")


def test_user_failure_is_retried_exactly_retries_times_with_backoff() -> None:
    sim = Sim(Dag.from_edges({"a": []}, retries={"a": 2}))
    sim.step()
    for attempt, delay in [(1, 10.0), (2, 20.0)]:
        assert sim.state["a"].attempt == attempt
        sim.fail("a")
        d = sim.step()
        assert sim.state["a"].status == TaskStatus.RETRYING
        assert d.wake_at == pytest.approx(sim.now + delay)
        sim.now += delay - 0.001
        sim.step()
        assert sim.state["a"].attempt == attempt, "must not start before the backoff elapsed"
        sim.now += 0.001
        sim.step()
    assert sim.state["a"].attempt == 3
    sim.fail("a")
    sim.step()
    assert sim.state["a"].status == TaskStatus.FAILED
    assert sim.finished is not None and sim.finished.status == RunStatus.FAILED
    fail = next(a for a in sim.log if isinstance(a, FailTask))
    assert "no retries left (2 used)" in fail.message


def test_retry_of_a_dependency_does_not_skip_dependents() -> None:
    sim = Sim(Dag.from_edges({"a": [], "b": ["a"]}, retries={"a": 1}))
    sim.step()
    sim.fail("a")
    sim.step()
    assert not any(isinstance(a, SkipTask) for a in sim.log)
    sim.now += 100
    sim.step()
    sim.ok("a")
    sim.step()
    assert sim.started() == ["a", "a", "b"]


def test_infra_failures_do_not_consume_user_retries_but_are_bounded() -> None:
    sim = Sim(Dag.from_edges({"a": []}, retries={"a": 0}))
    sim.step()
    for _ in range(NO_JITTER.max_infra_retries):
        sim.fail("a", Failure.INFRA, "Evicted")
        sim.step()
        assert sim.state["a"].status == TaskStatus.RETRYING
        sim.now += 1000
        sim.step()
    sim.fail("a", Failure.INFRA, "Evicted")
    sim.step()
    assert sim.state["a"].status == TaskStatus.FAILED
    assert "gave up after 3 infrastructure failures" in next(a for a in sim.log if isinstance(a, FailTask)).message


def test_permanent_failure_is_never_retried() -> None:
    sim = Sim(Dag.from_edges({"a": []}, retries={"a": 5}))
    sim.step()
    sim.fail("a", Failure.PERMANENT, "ImagePullBackOff")
    sim.step()
    assert sim.started() == ["a"]
    assert sim.state["a"].status == TaskStatus.FAILED
    assert sim.finished is not None


def test_timeout_kills_once_and_counts_as_user_failure() -> None:
    sim = Sim(Dag.from_edges({"a": []}, timeouts={"a": 30.0}, retries={"a": 0}))
    sim.step()
    sim.run("a")
    d = sim.step()
    assert d.wake_at == pytest.approx(sim.now + 30)
    sim.now += 30
    sim.step()
    assert [a for a in sim.log if isinstance(a, KillTask)] == [KillTask("a", "Timeout")]
    sim.now += 5
    sim.step()
    assert len([a for a in sim.log if isinstance(a, KillTask)]) == 1, "kill is requested once"
    sim.fail("a", Failure.INFRA, "Error")  # the executor's view of a killed process; the engine knows better
    sim.step()
    assert sim.state["a"].reason == "DeadlineExceeded"
    assert sim.state["a"].status == TaskStatus.FAILED


def test_run_timeout_kills_what_runs_skips_the_rest_and_fails_the_run_timed_out() -> None:
    sim = Sim(Dag.from_edges({"a": [], "b": ["a"], "c": []}, run_timeout=7200.0, retries={"a": 3}), parallelism=1)
    sim.state.deadline = sim.now + 7200
    d = sim.step()
    assert d.wake_at == pytest.approx(sim.now + 7200), "the engine wakes up at the deadline"
    sim.run("a")
    sim.now += 7200
    sim.step()
    assert [a for a in sim.log if isinstance(a, KillTask)] == [KillTask("a", "RunTimeout")]
    assert sim.state["b"].status == sim.state["c"].status == TaskStatus.SKIPPED
    assert sim.state["c"].reason == "RunTimedOut"
    assert sim.finished is None, "the run waits for its killed task to end"
    sim.fail("a")
    sim.step()
    assert (sim.state["a"].status, sim.state["a"].reason) == (TaskStatus.FAILED, "RunTimedOut"), "never retried"
    assert sim.finished == FinishRun(RunStatus.FAILED, "timed out after 2h", reason="TimedOut")


def test_format_seconds_writes_durations_as_timeout_does() -> None:
    assert [format_seconds(s) for s in (7200, 5400, 90.5, 86400 + 1, 0.25)] == [
        "2h",
        "1h30m",
        "1m30.5s",
        "1d1s",
        "0.25s",
    ]


def test_cancel_kills_active_skips_pending_and_finishes_when_nothing_runs() -> None:
    sim = Sim(Dag.from_edges({"a": [], "b": ["a"], "c": []}), parallelism=1)
    sim.step()
    sim.run("a")
    sim.state.cancel_requested = True
    sim.step()
    assert KillTask("a", "Cancelled") in sim.log
    assert {a.task for a in sim.log if isinstance(a, SkipTask)} == {"b", "c"}
    assert sim.finished is None, "a is still running"
    sim.fail("a", Failure.USER, "Error")
    sim.step()
    assert sim.state["a"].status == TaskStatus.CANCELLED
    assert sim.finished == FinishRun(RunStatus.CANCELLED, "cancelled")


def test_a_run_replaced_by_a_newer_one_finishes_cancelled_saying_so() -> None:
    sim = Sim(Dag.from_edges({"a": []}), parallelism=1)
    sim.step()
    sim.run("a")
    sim.state.cancel_requested = True
    sim.state.cancel_message = "replaced by run p-abc-2"
    sim.step()
    sim.fail("a", Failure.USER, "Error")
    sim.step()
    assert sim.finished == FinishRun(RunStatus.CANCELLED, "replaced by run p-abc-2", reason="Replaced")


def test_stale_observations_change_nothing() -> None:
    sim = Sim(Dag.from_edges({"a": []}, retries={"a": 1}))
    sim.step()
    sim.fail("a")
    sim.step()
    sim.now += 100
    sim.step()
    assert sim.state["a"].attempt == 2
    old = Observation("r", "a", 1, TaskStatus.SUCCEEDED)
    assert apply_observation(sim.state, old) is None
    assert sim.state["a"].status == TaskStatus.STARTING


def test_resumed_state_with_succeeded_tasks_starts_only_the_rest() -> None:
    dag = diamond()
    state = RunState.new(dag, {"a": TaskState(TaskStatus.SUCCEEDED, attempt=1), "b": TaskState(TaskStatus.SUCCEEDED)})
    d = decide(dag, state, now=0, parallelism=4)
    assert d.actions == (StartTask("c", 1),)


def test_jitter_is_deterministic_and_bounded() -> None:
    p = RetryPolicy(base=10, maximum=1000, jitter=0.2)
    delays = [p.delay(f"t{i}", 1) for i in range(200)]
    assert all(8.0 <= d <= 12.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 50, "a fan-out must not retry in lockstep"
    assert p.delay("t1", 1) == p.delay("t1", 1)
    assert p.delay("x", 10) <= 1000 * 1.2


def test_large_fan_out_decides_in_small_steps() -> None:
    n = 5000
    dag = Dag.from_edges({"root": [], **{f"t{i}": ["root"] for i in range(n)}, "join": [f"t{i}" for i in range(n)]})
    sim = Sim(dag, parallelism=4)
    sim.step()
    sim.ok("root")
    sim.step()
    done = 0
    while sim.finished is None:
        active = sorted(sim.state.active, key=dag.index.__getitem__)
        assert len(active) <= 4
        for t in active:
            sim.ok(t)
            done += 1
        sim.step()
    assert done == n + 1
    assert sim.finished.status == RunStatus.SUCCEEDED


def test_retry_tasks_carry_their_due_time() -> None:
    sim = Sim(Dag.from_edges({"a": []}, retries={"a": 1}))
    sim.step()
    sim.fail("a")
    sim.step()
    retry = next(a for a in sim.log if isinstance(a, RetryTask))
    assert retry.not_before == pytest.approx(sim.now + 10)
    assert "retry 1 of 1" in retry.message


def test_a_due_retry_without_a_free_slot_asks_for_one() -> None:
    """No wake time is left for a retry that is already due: the loop must know the run waits for a slot (a restart
    left two runs' retries stuck forever behind `max_active_tasks`)."""
    sim = Sim(Dag.from_edges({"a": []}, retries={"a": 1}))
    sim.step()
    sim.fail("a")
    sim.step()
    sim.now += 60
    waiting = decide(sim.dag, sim.state, now=sim.now, parallelism=10, free_slots=0, policy=NO_JITTER)
    assert waiting.actions == () and waiting.wake_at is None and waiting.wants_slot
    fresh = RunState.new(Dag.from_edges({"a": []}))
    assert decide(fresh.dag, fresh, now=0, parallelism=10, free_slots=0).wants_slot
    started = decide(sim.dag, sim.state, now=sim.now, parallelism=10, free_slots=1, policy=NO_JITTER)
    assert started.actions == (StartTask("a", 2),)


def test_wide_fan_in_tracks_readiness_and_blocking() -> None:
    """A join over 20,000 tasks (each upstream change costs O(1) for the join: see bench_local_executor --fan-in)."""
    n = 20_000
    dag = Dag.from_edges({**{f"t{i}": [] for i in range(n)}, "join": [f"t{i}" for i in range(n)]})
    state = RunState.new(dag)
    for i in range(n):
        state.update(f"t{i}", status=TaskStatus.SUCCEEDED)
    assert state.ready == ["join"]
    state.update("t7", status=TaskStatus.FAILED)
    assert state.blocked == {"join"} and state.ready == []


def test_a_false_gate_skips_the_task_its_dependents_follow_and_slots_go_to_the_next() -> None:
    dag = Dag.from_edges({"a": [], "b": [], "c": ["b"], "d": []})
    state = RunState.new(dag)
    gates = {"b": Gate(run=False, message="`when: x` is false")}
    d = decide(dag, state, now=0, parallelism=2, gates=gates)
    assert d.actions == (SkipTask("b", "ConditionFalse", "`when: x` is false"), StartTask("a", 1), StartTask("d", 1))
    for action in d.actions:
        apply_action(state, action)  # type: ignore[arg-type]
    d = decide(dag, state, now=0, parallelism=2)
    assert d.actions == (SkipTask("c", "UpstreamFailed", "upstream task 'b' did not succeed"),)


def test_a_gate_that_cannot_be_evaluated_fails_the_task_permanently_and_one_that_holds_starts_it() -> None:
    dag = Dag.from_edges({"a": [], "b": []}, retries={"a": 3})
    state = RunState.new(dag)
    gates = {"a": Gate(run=False, error=True, message="cannot compare"), "b": Gate(run=True)}
    d = decide(dag, state, now=0, parallelism=5, gates=gates)
    assert d.actions == (
        FailTask("a", "cannot compare", reason="ConditionError", failure=Failure.PERMANENT),
        StartTask("b", 1),
    )
    new = apply_action(state, d.actions[0])  # type: ignore[arg-type]
    assert new is not None and (new.status, new.reason, new.failure) == (
        TaskStatus.FAILED, "ConditionError", Failure.PERMANENT,
    )  # fmt: skip
