"""What a task used of its GPUs (issue 10 item 4): the tracker's arithmetic, and the sampler writing summaries and
idle events into a real store (SQLite and Postgres) from readings of a source, with a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from rich.console import Console
from sqlalchemy.engine import Engine

from odin.api.schemas import EventOut, RunDetail, TaskOut
from odin.api.services.runs import get_run
from odin.cli.render import dag_table
from odin.cli.watch import _State
from odin.controller.executors.base import Executor
from odin.controller.gpu_sampler import GpuSampler
from odin.controller.gpu_usage import IdlePolicy, UsageTracker
from odin.controller.gpus import GpuHolder, GpuHolding, GpuReading, GpuSample
from odin.controller.store.models import EVENTS, TASK_RUNS
from odin.controller.store.runs import NewRun, create_run
from odin.controller.vocabulary import Trigger
from odin.schema.model import PipelineSpec

GIB = 1024**3


def reading(index: int, util: int | None, mem: int = 0, *holders: GpuHolder) -> GpuReading:
    return GpuReading(index, f"GPU-{index}", "NVIDIA H100 80GB HBM3", util, mem, tuple(holders))


def test_tracker_weighs_readings_by_time_and_keeps_peaks() -> None:
    t = UsageTracker(1, IdlePolicy(5, 600))
    t.add(100.0, [reading(0, 50, 10 * GIB), reading(1, 100, 20 * GIB)], since=95.0)  # 5 s each
    t.add(115.0, [reading(0, 0, 30 * GIB), reading(1, 90, 1 * GIB)])  # 15 s each
    s = t.summary(running=True)
    assert s["gpu_seconds"] == 40.0
    assert s["utilization_mean_percent"] == round((50 * 5 + 100 * 5 + 0 * 15 + 90 * 15) / 40, 1)
    assert (s["utilization_peak_percent"], s["memory_peak_bytes"]) == (100, 30 * GIB)
    assert [g["uuid"] for g in s["gpus"]] == ["GPU-0", "GPU-1"] and s["idle"] is None and s["samples"] == 2


def test_idle_is_flagged_once_after_the_stretch_and_stays_flagged() -> None:
    t = UsageTracker(1, IdlePolicy(5, 10))
    assert not t.add(0.0, [reading(0, 80)])
    assert not t.add(5.0, [reading(0, 5)])  # at the threshold counts as idle; the stretch began at 0
    assert t.add(10.0, [reading(0, 0)])  # 10 s idle: flagged now
    assert not t.add(15.0, [reading(0, 0)])  # once
    idle = t.summary(running=True)["idle"]
    assert idle["active"] and idle["since"] == "1970-01-01T00:00:00Z" and idle["threshold_percent"] == 5
    assert not t.add(20.0, [reading(0, 60)])
    assert t.summary(running=True)["idle"]["active"] is False  # busy again; the flag stays


def test_unknown_utilisation_is_never_idle() -> None:
    t = UsageTracker(1, IdlePolicy(5, 0))
    assert not t.add(0.0, [reading(0, None)]) and not t.add(10.0, [reading(0, None)])
    assert t.summary(running=False)["utilization_mean_percent"] is None


class _Executor(Executor):
    """Only what the sampler asks of an executor: the GPUs it gave each running attempt."""

    def __init__(self) -> None:
        super().__init__()
        self.holdings: list[GpuHolding] = []

    def gpu_holdings(self) -> list[GpuHolding]:
        return list(self.holdings)

    def paths(self, run: Any) -> Any:
        raise NotImplementedError

    def start(self, launch: Any) -> None:
        raise NotImplementedError

    def kill(self, run_id: str, task: str, attempt: int, reason: str) -> None:
        raise NotImplementedError

    def recover(self, attempts: Any) -> None:
        raise NotImplementedError


def _run(db: Engine) -> str:
    spec = PipelineSpec.from_dict(
        {"name": "p", "tasks": [{"name": n, "image": "x", "command": ["true"]} for n in ("train", "eval", "side")]}
    )
    with db.begin() as conn:
        run_id = create_run(conn, NewRun(pipeline="p", spec=spec, trigger=Trigger.MANUAL, params={})).run_id
        conn.execute(TASK_RUNS.update().where(TASK_RUNS.c.run_id == run_id).values(attempt=1, status="running"))
    return run_id


def test_sampler_records_usage_prefers_attributed_gpus_and_flags_idle(db: Engine) -> None:
    run_id = _run(db)
    executor = _Executor()
    executor.holdings = [
        GpuHolding(run_id, "train", 1, (0, 1), since=0.0),
        GpuHolding(run_id, "eval", 1, (2,), since=0.0),
    ]
    now = [10.0]
    # train was given 0 and 1 but its processes are on 1 only; eval's GPU has no process; "side" was given nothing
    # and runs on GPU 3 anyway (attribution only).
    readings = [
        reading(0, 0),
        reading(1, 90, 40 * GIB, GpuHolder(run_id, "train", 1)),
        reading(2, 0, 2 * GIB),
        reading(3, 70, 5 * GIB, GpuHolder(run_id, "side", 1)),
    ]
    published: list[dict[str, Any]] = []
    sampler = GpuSampler(
        db, executor, lambda: GpuSample(tuple(readings)), interval=5.0, policy=IdlePolicy(5, 8),
        publish=published.append, node="node-a", clock=lambda: now[0],
    )  # fmt: skip
    sampler.sample_once()
    now[0] = 15.0
    sampler.sample_once()

    tasks = {t.name: t for t in get_run(db, run_id).tasks}
    train = tasks["train"].gpu_usage
    assert train is not None and train.running and train.node == "node-a"
    assert [(g.index, g.model) for g in train.gpus] == [(1, "NVIDIA H100 80GB HBM3")]
    assert (train.gpu_seconds, train.utilization_peak_percent, train.memory_peak_bytes) == (10.0, 90, 40 * GIB)
    side = tasks["side"].gpu_usage
    assert side is not None and [g.index for g in side.gpus] == [3] and side.gpu_seconds == 10.0
    eval_ = tasks["eval"]
    assert eval_.gpu_idle and eval_.gpu_usage is not None and eval_.gpu_usage.idle is not None
    assert not tasks["train"].gpu_idle
    [event] = published
    assert (event["kind"], event["task"], event["data"]["gpus"]) == ("task.gpu_idle", "eval", ["GPU-2"])
    with db.connect() as conn:
        kinds = conn.execute(sa.select(EVENTS.c.kind).where(EVENTS.c.kind == "task.gpu_idle")).scalars().all()
    assert kinds == ["task.gpu_idle"]

    # train ends (the executor releases its GPUs): its summary is closed; side vanishes for longer than the grace.
    executor.holdings = executor.holdings[1:]
    readings[1] = reading(1, 0)
    readings[3] = reading(3, 0)
    for t in (20.0, 25.0, 30.0):
        now[0] = t
        sampler.sample_once()
    tasks = {t.name: t for t in get_run(db, run_id).tasks}
    assert tasks["train"].gpu_usage is not None and not tasks["train"].gpu_usage.running
    assert tasks["train"].gpu_usage.gpu_seconds == 10.0
    assert tasks["side"].gpu_usage is not None and not tasks["side"].gpu_usage.running
    assert tasks["eval"].gpu_usage is not None and tasks["eval"].gpu_usage.running
    assert len(published) == 1, "the idle event is raised once"


def test_a_stale_attempt_never_overwrites_a_newer_one(db: Engine) -> None:
    run_id = _run(db)
    with db.begin() as conn:
        conn.execute(TASK_RUNS.update().where(TASK_RUNS.c.name == "train").values(attempt=2))
    executor = _Executor()
    executor.holdings = [GpuHolding(run_id, "train", 1, (0,), since=0.0)]
    sampler = GpuSampler(
        db, executor, lambda: GpuSample((reading(0, 50),)), interval=5.0, policy=IdlePolicy(), clock=lambda: 10.0
    )
    sampler.sample_once()
    assert {t.name: t for t in get_run(db, run_id).tasks}["train"].gpu_usage is None


@pytest.mark.parametrize("broken", ["source", "store"])
def test_sampling_survives_a_failing_source_or_store(db: Engine, broken: str) -> None:
    run_id = _run(db)
    executor = _Executor()
    executor.holdings = [GpuHolding(run_id, "train", 1, (0,), since=0.0)]

    def source() -> GpuSample:
        if broken == "source":
            raise RuntimeError("NVML went away")
        return GpuSample((reading(0, 50),))

    target = db
    if broken == "store":
        target = sa.create_engine("sqlite:////nonexistent/dir/odin.db")
    sampler = GpuSampler(target, executor, source, interval=5.0, policy=IdlePolicy(), clock=lambda: 10.0)
    sampler.sample_once()  # logged, not raised
    assert {t.name: t for t in get_run(db, run_id).tasks}["train"].gpu_usage is None


def test_odinctl_watch_marks_a_task_flagged_idle() -> None:
    """`odinctl watch` folds the `task.gpu_idle` event into its view; a new attempt starts unflagged."""
    now = datetime.now(UTC)
    task = TaskOut(
        name="train", status="running", attempt=1, reason=None, message=None, exit_code=None, resource_kind=None,
        resource_name=None, namespace=None, node=None, started_at=now, finished_at=None,
    )  # fmt: skip
    run = RunDetail(
        id="r", pipeline="p", commit_sha=None, branch=None, trigger="manual", triggered_by=None, status="running",
        message=None, parent_run=None, created_at=now, started_at=now, finished_at=None, params={},
        spec={"tasks": [{"name": "train"}]}, work_tree=None, run_path_id=None, absorbed_commits=[], conditions=[],
        tasks=[task],
    )  # fmt: skip
    state = _State(run)

    def event(kind: str, **data: Any) -> EventOut:
        return EventOut(id=1, time=now, kind=kind, run_id="r", task="train", commit_sha=None, data=data)

    flagged = state.apply(event("task.gpu_idle", attempt=1, gpus=["GPU-0"]))
    assert flagged is not None and flagged.gpu_idle
    assert state.apply(event("task.gpu_idle", attempt=1)) is None, "once"
    console = Console(width=200, record=True)
    console.print(dag_table(state.run, state.tasks))
    assert "IDLE GPU" in console.export_text()
    retried = state.apply(event("task.status", status="starting", attempt=2))
    assert retried is not None and not retried.gpu_idle


def test_a_restarted_controller_continues_the_recorded_figures(db: Engine) -> None:
    run_id = _run(db)
    executor = _Executor()
    executor.holdings = [GpuHolding(run_id, "train", 1, (0,), since=0.0)]
    now = [10.0]
    util = [0]
    published: list[dict[str, Any]] = []

    def sampler() -> GpuSampler:
        return GpuSampler(
            db, executor, lambda: GpuSample((reading(0, util[0], 3 * GIB),)), interval=5.0,
            policy=IdlePolicy(5, 4), publish=published.append, clock=lambda: now[0],
        )  # fmt: skip

    first = sampler()
    for t in (10.0, 15.0):
        now[0] = t
        first.sample_once()
    assert len(published) == 1
    # The controller restarts (a new sampler, nothing in memory); the task kept running and gets busy.
    second = sampler()
    now[0], util[0] = 20.0, 100
    second.sample_once()
    usage = {t.name: t for t in get_run(db, run_id).tasks}["train"].gpu_usage
    assert usage is not None and usage.samples == 3 and usage.gpu_seconds == 15.0
    assert usage.utilization_mean_percent == round(100 * 5 / 15, 1) and usage.utilization_peak_percent == 100
    assert usage.idle is not None and not usage.idle.active and len(published) == 1, "flagged once, kept"
