"""The engine's picture of one run, built from the store: on submit, on a rescan, and on recovery after a restart.

The store is the truth the engine starts from: a run's frozen spec and task rows become an `ActiveRun` (its DAG,
task states, variables and paths), and after a restart the attempts the store believes active are handed back to
the executor (`active_attempts`), which re-attaches to those still running and reports what became of the others.
A task that ran while the engine was down is thus adopted, never started twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from odin.controller.engine import references
from odin.controller.engine.decide import Gate
from odin.controller.engine.references import RecordedOutputs, Unresolved
from odin.controller.engine.state import Dag, RunState, TaskState
from odin.controller.executors.base import Executor
from odin.controller.executors.outputs import AttemptDirs
from odin.controller.store.runs import LoadedRun, datetime_to_epoch
from odin.controller.vocabulary import (
    REPLACED,
    ActiveAttempt,
    Failure,
    InputArtifact,
    RunContext,
    RunStatus,
    TaskLaunch,
    TaskPaths,
    TaskStatus,
)
from odin.schema import substitute
from odin.schema.model import PipelineSpec, TaskSpec

_RESOURCE_COLUMNS = ("pid", "resource_kind", "resource_name", "namespace", "node", "log_path")
"""Where an attempt runs, as recorded on its task row: what the executor needs to find it again."""


@dataclass
class ActiveRun:
    """A run the engine drives: everything `decide` and the launches need, kept in memory."""

    ctx: RunContext
    spec: PipelineSpec
    dag: Dag
    state: RunState
    tasks: Mapping[str, TaskSpec]
    params: Mapping[str, str]
    parallelism: int
    started: bool
    paths: TaskPaths
    variables: dict[str, str]
    wake_at: float | None = None
    recorded: RecordedOutputs = field(default_factory=RecordedOutputs)  # succeeded tasks' outputs, for references
    gated: frozenset[str] = frozenset()  # tasks with a `when`
    producers: dict[str, tuple[TaskSpec, ...]] = field(default_factory=dict)  # cache of spec.producers(name)
    no_cache: bool = False  # started with --no-cache: cached tasks run (their keys are still recorded)


def run_context(loaded: LoadedRun) -> RunContext:
    r = loaded.run
    return RunContext(
        run_id=r["id"],
        pipeline=r["pipeline"],
        commit_sha=r["commit_sha"],
        repo_url=r.get("repo_url"),
        trigger=r["trigger"],
        work_tree=r["work_tree"],
        work_path=r["work_path"],
        namespace=r.get("repo_namespace"),
        run_path_id=r.get("run_path_id"),
        secrets_withheld=bool(r.get("secrets_withheld")),
    )


class CannotDrive(Exception):
    """A run whose frozen spec or task rows do not load (corrupt, or from an incompatible version): it cannot be
    driven, and must not take the engine down. The message says why."""


def active_run(loaded: LoadedRun, ctx: RunContext, executor: Executor, *, default_parallelism: int) -> ActiveRun:
    """The run as the engine drives it; `CannotDrive` if its frozen spec or task rows do not load."""
    r = loaded.run
    try:
        spec = PipelineSpec.from_dict(r["spec"])
        dag = Dag.from_spec(spec)
        states = {t["name"]: task_state(t) for t in loaded.tasks}
        paths = executor.paths(ctx)
    except Exception as e:
        raise CannotDrive(str(e)) from e
    deadline = run_deadline(spec, r)
    state = RunState.new(dag, states, cancel_requested=bool(r["cancel_requested"]), deadline=deadline)
    if r["cancel_requested"] and r.get("reason") == REPLACED:
        state.cancel_message = r.get("message")
    params = dict(r["params"] or {})
    variables = {
        "RUN_PATH": paths.run_path,
        "WORK_PATH": paths.work_path,
        "ROOT_PATH": paths.root_path,
        "DATA_PATH": paths.root_path,  # the original Odin's shared data directory (docs/migrating-from-odin.md)
        "TASK_IDS": json.dumps([task_id(ctx.run_id, t.name) for t in spec.tasks]),
        "PIPE_ID": ctx.run_id,
        "COMMIT_SHA": ctx.commit_sha or "",
        **{f"params.{k}": v for k, v in params.items()},
    }
    run = ActiveRun(
        ctx=ctx,
        spec=spec,
        dag=dag,
        state=state,
        tasks={t.name: t for t in spec.tasks},
        params=params,
        parallelism=r["parallelism"] or default_parallelism,
        started=r["status"] == RunStatus.RUNNING,
        paths=paths,
        variables=variables,
        gated=frozenset(t.name for t in spec.tasks if t.when is not None),
        no_cache=bool(r.get("no_cache")),
    )
    for row in loaded.tasks:  # outputs of tasks that succeeded before a restart, or were reused by a rerun
        if row["status"] == TaskStatus.SUCCEEDED:
            run.recorded.record(row["name"], row.get("results"), row.get("artifacts"))
    return run


def run_deadline(spec: PipelineSpec, run: Mapping[str, Any]) -> float | None:
    """When the run's `timeout` passes (epoch seconds), or None: no timeout, or not started yet.

    It counts from when the run started running (`started_at`, set as its first task starts), not from its
    creation: a run that waited queued for its pipeline's concurrency slot or the controller's `ODIN_MAX_ACTIVE_RUNS`
    gets its whole timeout once it runs. The engine sets it as the run starts (`Engine._act`); this reads it back
    after a restart. A run recorded running without a start time (never written so) counts from its creation."""
    if spec.timeout is None:
        return None
    started = datetime_to_epoch(run.get("started_at"))
    if started is None and run.get("status") == RunStatus.RUNNING:
        started = datetime_to_epoch(run.get("created_at"))
    return None if started is None else started + spec.timeout


def active_attempts(run: ActiveRun, loaded: LoadedRun) -> list[ActiveAttempt]:
    """The attempts the store believes starting or running, for the executor to re-attach to (or report lost)."""
    rows = {t["name"]: t for t in loaded.tasks}
    attempts: list[ActiveAttempt] = []
    for name in run.state.active:
        row = rows[name]
        resource = {k: row[k] for k in _RESOURCE_COLUMNS if row.get(k) is not None}
        attempts.append(ActiveAttempt(run.ctx, run.tasks[name], row["attempt"], TaskStatus(row["status"]), resource))
    return attempts


def task_state(row: Mapping[str, Any]) -> TaskState:
    failure = row.get("failure")
    return TaskState(
        status=TaskStatus(row["status"]),
        attempt=row["attempt"],
        user_failures=row.get("user_failures") or 0,
        infra_failures=row.get("infra_failures") or 0,
        started_at=datetime_to_epoch(row.get("started_at")),
        not_before=datetime_to_epoch(row.get("not_before")),
        failure=Failure(failure) if failure else None,
        reason=row.get("reason"),
        message=row.get("message"),
    )


def task_id(run_id: str, task: str) -> str:
    """`${TASK_ID}`: unique for each task of each run."""
    return f"{run_id}--{task}"


def task_path(paths: TaskPaths, task: str) -> str:
    """`${TASK_PATH}`, the original Odin's per-task directory: `<RUN_PATH>/<task name>` (the executor creates it)."""
    return f"{paths.run_path}/{task}"


def task_variables(run: ActiveRun, spec: TaskSpec) -> dict[str, str]:
    return {
        **run.variables,
        "TASK_ID": task_id(run.ctx.run_id, spec.name),
        "TASK_NAME": spec.name,
        "TASK_PATH": task_path(run.paths, spec.name),
    }


def resolve(
    run: ActiveRun,
    spec: TaskSpec,
    locate: references.Locate | None = None,
    inputs: list[InputArtifact] | None = None,
    artifact_field: str = "location",
) -> dict[str, Any]:
    """The values of the task's references (issue 11), from what its producers recorded; raises `Unresolved`.
    Artifacts resolve to where the executor's task sees them (`locate`), or to another field of their record when
    `artifact_field` names one (the digest a cache key hashes)."""
    if not spec.references:
        return {}

    def producers(name: str) -> tuple[TaskSpec, ...]:
        found = run.producers.get(name)
        if found is None:
            found = run.producers[name] = run.spec.producers(name)
        return found

    def succeeded(name: str) -> bool:
        return run.state[name].status == TaskStatus.SUCCEEDED

    return references.resolve(run.spec, spec, run.recorded, succeeded, producers, locate, inputs, artifact_field)


def gates(run: ActiveRun) -> dict[str, Gate]:
    """The `when` of each ready task that has one, evaluated on the values recorded so far (fed to `decide`)."""
    found: dict[str, Gate] = {}
    for name in run.state.ready:
        if name not in run.gated:
            continue
        spec = run.tasks[name]
        assert spec.when is not None
        try:
            values = resolve(run, spec)
        except Unresolved as e:
            found[name] = Gate(run=False, error=True, message=f"`when: {spec.when}` cannot be evaluated: {e}")
            continue
        found[name] = references.gate(spec.when, task_variables(run, spec), values)
    return found


def task_launch(
    run: ActiveRun,
    spec: TaskSpec,
    attempt: int,
    dirs: AttemptDirs | None = None,
    locate: references.Locate | None = None,
) -> TaskLaunch:
    """What the executor is asked to start: the command, arguments and environment with the run's variables
    substituted, the attempt's `${OUTPUT_PATH}`/`${RESULTS_PATH}` (`dirs`) and the values of its references. Raises
    for a task whose substitution fails, `Unresolved` for a reference (the engine fails the task, permanently)."""
    variables = task_variables(run, spec)
    produced = {"OUTPUT_PATH": dirs.output_path, "RESULTS_PATH": dirs.results_path} if dirs is not None else {}
    variables.update(produced)
    inputs: list[InputArtifact] = []
    variables.update(references.texts(resolve(run, spec, locate, inputs)))
    env = {**produced, **{k: substitute(v, variables) for k, v in spec.env.items()}}
    env.update(
        ODIN_RUN=run.ctx.run_id,
        ODIN_TASK=spec.name,
        ODIN_TASK_ID=variables["TASK_ID"],
        ODIN_ATTEMPT=str(attempt),
        ODIN_PIPELINE=run.ctx.pipeline,
        ODIN_COMMIT_SHA=run.ctx.commit_sha or "",
        ODIN_RUN_PATH=run.paths.run_path,
        ODIN_WORK_PATH=run.paths.work_path,
        ODIN_ROOT_PATH=run.paths.root_path,
        **{f"ODIN_{k}": v for k, v in produced.items()},
    )
    return TaskLaunch(
        run=run.ctx,
        spec=spec,
        attempt=attempt,
        command=tuple(substitute(c, variables) for c in spec.command),
        args=tuple(substitute(a, variables) for a in spec.args),
        env=env,
        paths=run.paths,
        inputs=tuple(dict.fromkeys(inputs)),
    )
