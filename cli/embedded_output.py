"""`odin run`: prints each task's outcome as it happens, then a summary; exit 0 only when the run succeeded."""

from __future__ import annotations

import threading
from pathlib import Path

from rich.console import Console

from odin.controller.bus import EventDict
from odin.schema import ParamError
from odin.schema.problems import PipelineInvalid

_MARKS = {
    "succeeded": "[green]✓[/]",
    "failed": "[red]✗[/]",
    "retrying": "[yellow]↻[/]",
    "skipped": "[yellow]-[/]",
    "cancelled": "[yellow]⊘[/]",
}


def run_and_report(directory: Path, params: dict[str, str], parallelism: int | None, data_dir: Path | None) -> int:
    from odin.cli.local_gpus import local_gpu_probe
    from odin.controller.embedded import run_pipeline

    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
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
            out.print(f"{_MARKS.get(status, '?')} {event.get('task')}  {status}  [dim]{detail}[/]")

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
    out.print(f"run [bold]{result.run_id}[/]: [{colour}]{result.status.value}[/]")
    out.print(f"[dim]outputs: {result.run_path}[/]", soft_wrap=True)
    out.print(f"[dim]logs:    {result.data_dir / 'tasks' / result.run_id}[/]", soft_wrap=True)
    return 0 if result.ok else 1
