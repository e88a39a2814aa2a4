"""The engine loop driving real subprocesses through the local executor, recording to a real store."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine as DbEngine

from odin.controller.engine.decide import RetryPolicy
from odin.controller.engine.loop import Engine
from odin.controller.executors.local import LocalExecutor
from odin.controller.store.db import transaction
from odin.controller.store.runs import EVENTS, RUNS, TASKS, NewRun, create_run, request_cancel
from odin.controller.vocabulary import RunStatus, Trigger
from odin.schema.model import PipelineSpec, TaskSpec
from tests.support.wait import wait_until


def sh(name: str, script: str, **kw: Any) -> TaskSpec:
    return TaskSpec(name=name, image="busybox", command=("sh", "-c", script), **kw)


def spec(*tasks: TaskSpec) -> PipelineSpec:
    return PipelineSpec(name="p", tasks=tuple(tasks))


class Harness:
    def __init__(self, db: DbEngine, data_dir: Path, *, parallelism: int = 4, max_active_tasks: int = 64) -> None:
        self.db, self.data_dir, self.parallelism = db, data_dir, parallelism
        self.max_active_tasks = max_active_tasks
        self.work = data_dir / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        self.engine: Engine | None = None
        self._executors: list[LocalExecutor] = []

    def executor(self) -> LocalExecutor:
        """A new local executor, shut down by `close`: its launch threads and reaper would outlive the test
        otherwise (an engine's `stop` leaves its executor as it is, as a restarted controller expects)."""
        executor = LocalExecutor(self.data_dir, kill_grace=2.0)
        self._executors.append(executor)
        return executor

    def start(self) -> Engine:
        self.engine = Engine(
            self.db,
            self.executor(),
            policy=RetryPolicy(base=0.05, maximum=0.2, jitter=0.0),
            default_parallelism=self.parallelism,
            max_active_tasks=self.max_active_tasks,
            rescan_interval=0.5,
        )
        self.engine.start()
        assert self.engine.wait_ready(10)
        return self.engine

    def close(self) -> None:
        """Stop the engine and shut down every executor `start` or `executor` made (a test that restarts the engine
        makes more than one). Tasks still running are left alone, as a stopping controller leaves them."""
        if self.engine is not None:
            self.engine.stop()
            self.engine = None
        for executor in self._executors:
            executor.shutdown()
        self._executors.clear()

    def create(self, pipeline: PipelineSpec, params: dict[str, str] | None = None) -> str:
        new = NewRun(
            pipeline="p",
            spec=pipeline,
            trigger=Trigger.MANUAL,
            params=params or {},
            work_path=str(self.work),
            commit_sha="a" * 40,
        )
        with transaction(self.db) as conn:
            run_id = create_run(conn, new).run_id
        if self.engine is not None:
            self.engine.submit(run_id)
        return run_id

    def tasks(self, run_id: str) -> dict[str, Any]:
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(TASKS).where(TASKS.c.run_id == run_id)).all()
        return {r.name: r for r in rows}

    def log(self, run_id: str, task: str, attempt: int = 1) -> str:
        return (self.data_dir / "tasks" / run_id / f"{task}.{attempt}.log").read_text()


@pytest.fixture
def harness(db: DbEngine, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(db, tmp_path / "data")
    yield h
    h.close()


def test_dag_runs_with_variables_env_and_outputs(harness: Harness) -> None:
    engine = harness.start()
    run_id = harness.create(
        spec(
            sh("a", 'echo "$ODIN_TASK ${params.x} ${TASK_ID}" > "${RUN_PATH}/a.txt"'),
            sh("b", 'cat "${RUN_PATH}/a.txt"; echo "env=$GREETING commit=${COMMIT_SHA} pwd=$(pwd)"',
               depends=("a",), env={"GREETING": "hi-${params.x}"}),
        ),
        params={"x": "42"},
    )  # fmt: skip
    assert engine.wait(run_id, 30) == RunStatus.SUCCEEDED
    log = harness.log(run_id, "b")
    assert f"a 42 {run_id}--a" in log
    assert f"env=hi-42 commit={'a' * 40} pwd={harness.work}" in log
    tasks = harness.tasks(run_id)
    assert {t.status for t in tasks.values()} == {"succeeded"}
    assert tasks["a"].exit_code == 0 and tasks["a"].pid and tasks["a"].resource_kind == "process"
    assert tasks["b"].started_at >= tasks["a"].finished_at


def test_server_secrets_do_not_leak_into_task_environment(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ODIN_ADMIN_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret")
    engine = harness.start()
    run_id = harness.create(spec(sh("env", "env")))
    assert engine.wait(run_id, 30) == RunStatus.SUCCEEDED
    log = harness.log(run_id, "env")
    assert "hunter2-secret" not in log and "very-secret" not in log
    assert f"ODIN_RUN={run_id}" in log and "PATH=" in log


def test_failure_skips_dependents_and_independent_branch_finishes(harness: Harness) -> None:
    engine = harness.start()
    run_id = harness.create(
        spec(sh("bad", "exit 3"), sh("after", "true", depends=("bad",)), sh("other", "sleep 0.2"),
             sh("other2", "true", depends=("other",))),
    )  # fmt: skip
    assert engine.wait(run_id, 30) == RunStatus.FAILED
    t = harness.tasks(run_id)
    assert (t["bad"].status, t["bad"].exit_code, t["bad"].reason) == ("failed", 3, "Error")
    assert t["after"].status == "skipped" and "bad" in t["after"].message
    assert t["other"].status == "succeeded" and t["other2"].status == "succeeded"


def test_retries_then_success_and_command_not_found_is_permanent(harness: Harness) -> None:
    engine = harness.start()
    counter = harness.data_dir / "count"
    run_id = harness.create(
        spec(
            sh("flaky", f'n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}; [ "$n" -ge 2 ]',
               retries=3),
            TaskSpec(name="missing", image="x", command=("definitely-not-a-command-odin",), retries=5),
        )
    )  # fmt: skip
    assert engine.wait(run_id, 30) == RunStatus.FAILED
    t = harness.tasks(run_id)
    assert (t["flaky"].status, t["flaky"].attempt, t["flaky"].user_failures) == ("succeeded", 3, 2)
    assert (t["missing"].status, t["missing"].attempt, t["missing"].reason) == ("failed", 1, "CommandNotFound")


def test_timeout_kills_the_task(harness: Harness) -> None:
    engine = harness.start()
    run_id = harness.create(spec(sh("slow", "sleep 30", timeout=0.5)))
    started = time.monotonic()
    assert engine.wait(run_id, 20) == RunStatus.FAILED
    assert time.monotonic() - started < 10
    t = harness.tasks(run_id)["slow"]
    assert t.reason == "DeadlineExceeded" and "timeout of 0.5s" in t.message


def test_run_timeout_kills_what_is_left_and_marks_the_run_timed_out(harness: Harness) -> None:
    engine = harness.start()
    pipeline = PipelineSpec(
        name="p",
        tasks=(sh("quick", "true"), sh("slow", "sleep 30", depends=("quick",)), sh("after", "true", depends=("slow",))),
        timeout=1.5,
    )
    run_id = harness.create(pipeline)
    started = time.monotonic()
    assert engine.wait(run_id, 20) == RunStatus.FAILED
    assert time.monotonic() - started < 10, "the sleeping task was killed, not waited for"
    t = harness.tasks(run_id)
    assert (t["quick"].status, t["slow"].status, t["after"].status) == ("succeeded", "failed", "skipped")
    assert (t["slow"].reason, t["after"].reason) == ("RunTimedOut", "RunTimedOut")
    with harness.db.connect() as conn:
        run = conn.execute(sa.select(RUNS.c.reason, RUNS.c.message).where(RUNS.c.id == run_id)).one()
    assert (run.reason, run.message) == ("TimedOut", "timed out after 1.5s")


def test_cancel_kills_running_and_skips_pending(harness: Harness) -> None:
    engine = harness.start()
    run_id = harness.create(spec(sh("long", "sleep 30"), sh("next", "true", depends=("long",))))
    wait_until(lambda: harness.tasks(run_id)["long"].status == "running", 10)
    assert engine.cancel(run_id, by="test")
    assert engine.wait(run_id, 20) == RunStatus.CANCELLED
    t = harness.tasks(run_id)
    assert t["long"].status == "cancelled" and t["next"].status == "skipped"
    pid = t["long"].pid
    wait_until(lambda: not _alive(pid), 10)


def test_a_cancel_flagged_by_another_process_is_picked_up_by_the_rescan(harness: Harness) -> None:
    """Another replica's API flags the run in the store only: this engine learns of it from its periodic rescan."""
    engine = harness.start()
    run_id = harness.create(spec(sh("long", "sleep 30")))
    wait_until(lambda: harness.tasks(run_id)["long"].status == "running", 10)
    assert request_cancel(harness.db, run_id, by="another replica")
    assert engine.wait(run_id, 20) == RunStatus.CANCELLED
    assert harness.tasks(run_id)["long"].status == "cancelled"


def test_parallelism_is_respected(harness: Harness) -> None:
    harness.parallelism = 2
    engine = harness.start()
    marker = harness.data_dir / "concurrency"
    marker.mkdir()
    script = f"touch {marker}/$ODIN_TASK; ls {marker} | wc -l >> {marker}.log; sleep 0.2; rm {marker}/$ODIN_TASK"
    run_id = harness.create(spec(*(sh(f"t{i}", script) for i in range(6))))
    assert engine.wait(run_id, 30) == RunStatus.SUCCEEDED
    seen = [int(x) for x in (harness.data_dir / "concurrency.log").read_text().split()]
    assert max(seen) <= 2 and len(seen) == 6


def test_a_retry_that_falls_due_while_every_slot_is_taken_runs_when_one_frees(harness: Harness) -> None:
    """`max_active_tasks: 1`: run B's task fails, run A takes the only slot, B's retry falls due while A runs. It must
    start when A ends (it waited forever: no wake time, no observation, and it was not among the starved runs)."""
    harness.max_active_tasks = 1
    engine = harness.start()
    marker = harness.data_dir / "failed-once"
    flaky = harness.create(spec(sh("b", f"[ -e {marker} ] || {{ touch {marker}; exit 1; }}", retries=1)))
    wait_until(marker.exists, 10)
    holder = harness.create(spec(sh("a", "sleep 1")))
    assert engine.wait(holder, 30) == RunStatus.SUCCEEDED
    assert engine.wait(flaky, 15) == RunStatus.SUCCEEDED
    assert harness.tasks(flaky)["b"].attempt == 2


def test_events_are_recorded_and_published(harness: Harness) -> None:
    engine = harness.start()
    seen: list[dict[str, Any]] = []
    engine.bus.subscribe(lambda e: seen.append(dict(e)))
    run_id = harness.create(spec(sh("a", "true")))
    assert engine.wait(run_id, 30) == RunStatus.SUCCEEDED
    with harness.db.connect() as conn:
        stored = conn.execute(sa.select(EVENTS.c.kind, EVENTS.c.task, EVENTS.c.data).where(EVENTS.c.run_id == run_id)
                              .order_by(EVENTS.c.id)).all()  # fmt: skip
    statuses = [(k, t, d.get("status")) for k, t, d in stored]
    assert statuses == [
        ("run.created", None, None),
        ("run.status", None, "running"),
        ("task.status", "a", "starting"),
        ("task.status", "a", "running"),
        ("task.status", "a", "succeeded"),
        ("run.status", None, "succeeded"),
    ]
    wait_until(lambda: any(e["kind"] == "run.status" and e["data"]["status"] == "succeeded" for e in seen), 5)


def test_restart_adopts_finished_and_running_tasks_without_rerunning(harness: Harness) -> None:
    """Stop the engine mid-run without touching its tasks (as a SIGKILL would), start a new one.

    `slow` keeps running across the restart and is adopted; `quick` had finished and is not rerun; `gate` dies
    while no engine runs and leaves no exit code: it is an orphan, marked and retried.
    """
    engine = harness.start()
    counts = harness.data_dir / "counts"
    counts.mkdir()
    release = harness.data_dir / "release"
    run_id = harness.create(
        spec(
            sh("quick", f"echo x >> {counts}/quick"),
            sh("slow", f"echo x >> {counts}/slow; while [ ! -e {release} ]; do sleep 0.05; done"),
            sh("gate", f"echo x >> {counts}/gate; sleep 60", retries=0),
            sh("after", f"echo x >> {counts}/after", depends=("quick", "slow")),
        )
    )
    wait_until(lambda: harness.tasks(run_id)["quick"].status == "succeeded", 10)
    wait_until(lambda: {harness.tasks(run_id)[t].status for t in ("slow", "gate")} == {"running"}, 10)
    engine.stop()
    harness.engine = None
    gate_pid = harness.tasks(run_id)["gate"].pid
    os.killpg(gate_pid, signal.SIGKILL)
    wait_until(lambda: not _alive(gate_pid), 10)

    engine = harness.start()
    wait_until(lambda: harness.tasks(run_id)["gate"].attempt == 2, 10, message="the orphan is retried")
    release.touch()
    wait_until(lambda: harness.tasks(run_id)["after"].status == "succeeded", 20)
    assert engine.cancel(run_id)
    assert engine.wait(run_id, 20) == RunStatus.CANCELLED
    t = harness.tasks(run_id)
    assert (counts / "quick").read_text().count("x") == 1, "a finished task is not run again"
    assert (counts / "slow").read_text().count("x") == 1, "a task running across the restart is adopted, not rerun"
    assert t["slow"].status == "succeeded"
    assert (counts / "gate").read_text().count("x") == 2
    assert t["gate"].infra_failures == 1 and t["gate"].user_failures == 0


def test_restart_adopts_a_task_that_finished_while_down(harness: Harness) -> None:
    engine = harness.start()
    go = harness.data_dir / "go"
    run_id = harness.create(
        spec(sh("a", f"while [ ! -e {go} ]; do sleep 0.05; done; echo done"), sh("b", "true", depends=("a",)))
    )
    wait_until(lambda: harness.tasks(run_id)["a"].status == "running", 10)
    engine.stop()
    harness.engine = None
    go.touch()
    exit_file = harness.data_dir / "tasks" / run_id / "a.1.exit"
    wait_until(exit_file.exists, 10)
    engine = harness.start()
    assert engine.wait(run_id, 20) == RunStatus.SUCCEEDED
    t = harness.tasks(run_id)
    assert t["a"].attempt == 1 and "finished while the controller was down" in (t["a"].message or "")


def test_a_run_still_pending_at_start_up_is_run(harness: Harness) -> None:
    """Created while no engine ran (or before a crash): nothing is active, so no observation would wake it."""
    run_id = harness.create(spec(sh("a", "true")))
    engine = harness.start()
    assert engine.wait(run_id, 20) == RunStatus.SUCCEEDED


def test_the_local_executor_refuses_distributed_resource_types(harness: Harness) -> None:
    engine = harness.start()
    run_id = harness.create(
        spec(
            sh("ddp", "true", resource_type="PyTorchJob", num_workers=2, retries=3),
            sh("job", "true", resource_type="Job"),
        )
    )
    assert engine.wait(run_id, 20) == RunStatus.FAILED
    t = harness.tasks(run_id)
    assert (t["ddp"].reason, t["ddp"].failure, t["ddp"].attempt) == ("UnsupportedResourceType", "permanent", 1)
    assert "resource_type PyTorchJob needs ODIN_EXECUTOR=kubernetes" in t["ddp"].message
    assert t["job"].status == "succeeded"  # a Job is one process: it runs locally


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
