"""Run one pipeline directory once, in-process, on the local executor — no server, no repository.

This is the same engine `odin serve` uses (same decisions, same store schema, same executor), wired for a single
run: the store is a SQLite file in the data directory, so a run can still be inspected afterwards, and the
pipeline's files are used where they are on disk (there is no commit to materialise).

    >>> from odin.controller.embedded import run_pipeline
    >>> result = run_pipeline("sample-pipelines/hello", params={"who": "Odin"})
    >>> result.status
    <RunStatus.SUCCEEDED: 'succeeded'>
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odin.controller.bus import EventDict
from odin.controller.engine.decide import RetryPolicy
from odin.controller.engine.loop import Engine
from odin.controller.executors.local import LocalExecutor
from odin.controller.gpus import GpuProbe
from odin.controller.store.db import DbEngine, create_db_engine, migrate, transaction
from odin.controller.store.runs import NewRun, create_run, task_rows
from odin.controller.vocabulary import RunStatus, Trigger
from odin.schema import ValidationResult, load_pipeline, resolve_params
from odin.schema.problems import PipelineInvalid

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskOutcome:
    name: str
    status: str
    attempt: int
    exit_code: int | None
    reason: str | None
    message: str | None
    log_path: str | None
    results: dict[str, Any] = field(default_factory=dict)  # declared results, as recorded when it succeeded
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # {path, location, type, size, digest}


@dataclass(frozen=True)
class RunResult:
    """What a finished embedded run produced. `status` is the run's final status."""

    run_id: str
    status: RunStatus
    run_path: Path
    data_dir: Path
    tasks: list[TaskOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == RunStatus.SUCCEEDED


def run_pipeline(
    directory: str | os.PathLike[str],
    *,
    params: Mapping[str, str] | None = None,
    parallelism: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    on_event: Callable[[EventDict], None] | None = None,
    retry_backoff: float = 1.0,
    kill_grace: float = 5.0,
    timeout: float | None = None,
    gpus: GpuProbe | None = None,
) -> RunResult:
    """Validate `directory/main.yml` (or render `directory/main.yml.jinja2` with `params`, as the original Odin's
    `odin-run --x:key value` did), run it to the end, and return the outcome.

    Raises `PipelineInvalid` (with located problems) for an invalid pipeline and `ParamError` for bad parameters;
    task failures are not exceptions, they are in the result. `on_event` receives every state change as it is
    recorded (the same events the API streams). `KeyboardInterrupt` cancels the run before propagating.
    """
    pipeline_dir = Path(directory).resolve()
    given = dict(params or {})
    result, rendered_with = _load(pipeline_dir, given)
    if result.spec is None or result.problems:
        raise PipelineInvalid(result.problems)
    own = {k: v for k, v in given.items() if k not in rendered_with}  # the rest: the rendered pipeline's `params:`
    resolved = {**rendered_with, **resolve_params(result.spec, own)}
    base = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="odin-run-"))
    base.mkdir(parents=True, exist_ok=True)
    db = create_db_engine(f"sqlite:///{base / 'odin.db'}")
    try:
        migrate(db)
        executor = LocalExecutor(base, kill_grace=kill_grace, gpus=gpus)
        engine = Engine(
            db,
            executor,
            policy=RetryPolicy(base=retry_backoff, maximum=max(retry_backoff, 60.0)),
            max_active_tasks=max(parallelism or 8, 1),
            default_parallelism=parallelism or 8,
            rescan_interval=3600.0,
        )
        if on_event is not None:
            engine.bus.subscribe(on_event)
        new = NewRun(
            pipeline=pipeline_dir.name,
            spec=result.spec,
            trigger=Trigger.MANUAL,
            params=resolved,
            triggered_by="odin run",
            work_path=str(pipeline_dir),
            parallelism=parallelism,
        )
        with transaction(db) as conn:
            run_id = create_run(conn, new).run_id
        del new, result  # the engine loads its own copy of the frozen spec: keep one, not two, in memory
        engine.start()
        try:
            engine.submit(run_id)
            status = engine.wait(run_id, timeout)
        except KeyboardInterrupt:
            engine.cancel(run_id, by="odin run (interrupted)")
            engine.wait(run_id, kill_grace + 10)
            raise
        finally:
            engine.stop()
            # Its launch threads and reaper: a process calling run_pipeline again and again (a notebook, a test
            # suite) kept two or more idle threads and their descriptors per call. Running tasks are left alone.
            executor.shutdown()
        if status is None:
            engine_status = RunStatus.ERROR
            log.error("run %s did not finish within %ss", run_id, timeout)
        else:
            engine_status = status
        return RunResult(
            run_id=run_id,
            status=engine_status,
            run_path=base / "runs" / run_id,
            data_dir=base,
            tasks=_task_outcomes(db, run_id),
        )
    finally:
        db.dispose()


def _load(pipeline_dir: Path, params: Mapping[str, str]) -> tuple[ValidationResult, dict[str, str]]:
    """The validated pipeline, and the parameters a template consumed (a `main.yml.jinja2` reads its variables from
    the run's parameters; the rest go to the rendered pipeline's own `params:`)."""
    main = pipeline_dir / "main.yml"
    if main.is_file():
        return load_pipeline(main.read_bytes(), file=str(main), default_name=pipeline_dir.name), {}
    from odin.schema.template import TEMPLATE_FILE, load_template_pipeline  # jinja2 only for a template's run

    template = pipeline_dir / TEMPLATE_FILE
    if not template.is_file():
        raise FileNotFoundError(f"{main}: no main.yml (nor {TEMPLATE_FILE}) in this directory")
    rendered, result = load_template_pipeline(
        template.read_bytes(), file=str(template), default_name=pipeline_dir.name, params=params
    )
    used = rendered.variables if rendered is not None else frozenset()
    return result, {k: v for k, v in params.items() if k in used}


def _task_outcomes(db: DbEngine, run_id: str) -> list[TaskOutcome]:
    return [
        TaskOutcome(
            r["name"], r["status"], r["attempt"], r["exit_code"], r["reason"], r["message"], r["log_path"],
            results=r["results"] or {}, artifacts=r["artifacts"] or {},
        )
        for r in task_rows(db, run_id)
    ]  # fmt: skip
