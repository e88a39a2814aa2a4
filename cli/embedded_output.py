"""`odin run`: prints each task's outcome as it happens, then a summary; exit 0 only when the run succeeded.

A failed run ends with its failing tasks' last log lines and the path of each whole log (`odin.cli.failure`): the
run's files are on this machine, so the command to see more is `less` on them.

The lines every run prints are written without rich (`odin.cli.styled`, issue 15 item 2: rich was 12-19 ms of a
300 ms budget); a failure's report and the error messages go through rich consoles made when first used.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from odin.cli.consoles import lazy_console
from odin.cli.styled import Piece, StyledLines
from odin.controller.bus import EventDict
from odin.schema import ParamError
from odin.schema.problems import PipelineInvalid

if TYPE_CHECKING:
    from rich.console import Console

    from odin.controller.embedded import RunResult

TAIL_BYTES = 64 * 1024  # a failed task's log is read from its end: enough for the last lines, whatever its size

_MARKS: dict[str, Piece] = {
    "succeeded": ("✓", "green"),
    "failed": ("✗", "red"),
    "retrying": ("↻", "yellow"),
    "skipped": ("-", "yellow"),
    "cancelled": ("⊘", "yellow"),
}


MAIN_FILE = "main.yml"


class NotAPipeline(Exception):
    pass


def pipeline_directory(given: Path) -> Path:
    """The pipeline directory `odin run` was pointed at: the directory itself, or the one holding the `main.yml`
    given (as `odinctl validate` accepts either)."""
    if given.is_file():
        if given.name not in (MAIN_FILE, f"{MAIN_FILE}.jinja2"):
            raise NotAPipeline(f"{given} is not a {MAIN_FILE}: pass a pipeline directory or its {MAIN_FILE}")
        return given.parent
    if not given.exists():
        raise NotAPipeline(f"{given}: no such file or directory, so no main.yml to run")
    return given


def run_and_report(directory: Path, params: dict[str, str], parallelism: int | None, data_dir: Path | None) -> int:
    from odin.cli.importing import gc_paused

    with gc_paused(freeze=True):  # the process ends with the run: nothing imported here is ever garbage
        from odin.cli.local_gpus import local_gpu_probe
        from odin.controller.embedded import run_pipeline

    out = StyledLines()
    err = lazy_console(stderr=True, highlight=False, soft_wrap=True)
    try:
        directory = pipeline_directory(directory)
    except NotAPipeline as e:
        err.print(f"[red]error:[/] {e}")
        return 2
    lock = threading.Lock()

    def on_event(event: EventDict) -> None:
        if event.get("kind") != "task.status":
            return
        data = event.get("data") or {}
        status = str(data.get("status"))
        if status not in _MARKS:
            return
        detail = data.get("message") or data.get("reason") or ""
        with lock:
            out.line(_MARKS[status], f" {event.get('task')}  {status}  ", (str(detail), "dim"))

    try:
        result = run_pipeline(
            directory,
            params=params,
            parallelism=parallelism,
            data_dir=data_dir,
            on_event=on_event,
            gpus=local_gpu_probe(),
        )
    except PipelineInvalid as e:
        for p in e.problems:
            err.print(str(p), markup=False)
        return 1
    except (ParamError, FileNotFoundError) as e:
        err.print(f"[red]error:[/] {e}")
        return 2
    except KeyboardInterrupt:
        err.print("[yellow]interrupted: run cancelled[/]")
        return 130
    colour = "green" if result.ok else "red"
    out.line("run ", (result.run_id, "bold"), ": ", (result.status.value, colour))
    out.line((f"outputs: {result.run_path}", "dim"))
    out.line((f"logs:    {result.data_dir / 'tasks' / result.run_id}", "dim"))
    if not result.ok:
        _report_failure(result, lazy_console(highlight=False, soft_wrap=True))
    return 0 if result.ok else 1


def _report_failure(result: RunResult, out: Console) -> None:
    from odin.cli.failure import FAILED, FailedTask, failure_report

    logs = {t.name: t.log_path for t in result.tasks}

    def read_log(task: str) -> str | None:
        path = logs.get(task)
        if not path:
            return None
        try:
            with Path(path).open("rb") as f:
                f.seek(max(0, os.fstat(f.fileno()).st_size - TAIL_BYTES))
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return None

    failed = [
        FailedTask(t.name, t.attempt, t.exit_code, t.message or t.reason) for t in result.tasks if t.status in FAILED
    ]
    for line in failure_report(failed, read_log, lambda task: f"less {logs.get(task) or '-'}"):
        out.print(line)
