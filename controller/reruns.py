"""What a rerun runs again and what it reuses: a pure function of the pipeline and the parent run's task states.

Three shapes, as users ask for them:
- **everything** (default): every task runs again, in a fresh ${RUN_PATH};
- **failed only**: the parent's succeeded tasks are reused (recorded as `succeeded`, reason `Reused`) and every other
  task runs again;
- **one task and its descendants**: the task and everything downstream of it run again; the parent's succeeded tasks
  outside that set are reused. Every task the set depends on must have succeeded in the parent, since nothing else
  would produce its outputs; otherwise the rerun is refused with the names of the culprits. Tasks that are neither
  in the set nor needed by it are left out (`skipped`, reason `NotSelected`) unless they succeeded (reused).

Reusing a task means reusing its outputs (its recorded results and artifacts, and its files), so a rerun that reuses
anything shares the parent's ${RUN_PATH} (`run_path_id`, followed through chains of reruns). Reuse is only offered at
the parent's own commit: at another commit the files a task used may have changed, and Odin cannot know which files a
task reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from odin.controller.vocabulary import REUSED, TaskStatus
from odin.schema.model import PipelineSpec

NOT_SELECTED = "NotSelected"


class RerunRefused(Exception):
    """The rerun cannot be planned as asked; `status` is the HTTP status that fits (409 or 422)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class RerunPlan:
    rerun: tuple[str, ...]  # tasks that run again, in pipeline order
    reused: tuple[str, ...]
    left_out: tuple[str, ...]
    initial_tasks: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def shares_run_path(self) -> bool:
        return bool(self.reused)


def plan_rerun(
    spec: PipelineSpec,
    parent_id: str,
    parent_tasks: Mapping[str, Mapping[str, Any]],
    *,
    failed_only: bool = False,
    task: str | None = None,
) -> RerunPlan:
    """Plan a rerun of `parent_id` (whose task rows, by name, are `parent_tasks`) on the same `spec`."""
    names = [t.name for t in spec.tasks]
    if failed_only and task is not None:
        raise RerunRefused("choose either failed_only or a task, not both")
    succeeded = {n for n in names if (parent_tasks.get(n) or {}).get("status") == TaskStatus.SUCCEEDED.value}
    if task is None and not failed_only:
        return RerunPlan(rerun=tuple(names), reused=(), left_out=())

    if task is None:
        selected = [n for n in names if n not in succeeded]
        if not selected:
            raise RerunRefused(f"every task of run {parent_id} succeeded; there is nothing to rerun", status=409)
    else:
        if task not in names:
            raise RerunRefused(f"run {parent_id} has no task {task!r} (tasks: {', '.join(names[:20])})")
        closure = _descendants(spec, task) | {task}
        selected = [n for n in names if n in closure]
        needed = _ancestors_of(spec, closure) - closure
        missing = sorted(n for n in needed if n not in succeeded)
        if missing:
            raise RerunRefused(
                f"cannot rerun {task!r} from run {parent_id}: it needs the outputs of {', '.join(missing)}, "
                "which did not succeed there; rerun with failed_only, or rerun the whole run",
                status=409,
            )

    chosen = set(selected)
    reused = [n for n in names if n not in chosen and n in succeeded]
    left_out = [n for n in names if n not in chosen and n not in succeeded]
    initial: dict[str, dict[str, Any]] = {}
    for n in reused:
        row = parent_tasks[n]
        initial[n] = {
            "status": TaskStatus.SUCCEEDED.value,
            "attempt": row.get("attempt") or 1,
            "exit_code": row.get("exit_code"),
            "reason": REUSED,
            "message": f"reused from {parent_id}",
            "started_at": row.get("started_at"),
            "finished_at": row.get("finished_at"),
            "node": row.get("node"),
            # Its outputs too: later tasks of the rerun read them (their files stay where the parent's attempt
            # wrote them; the local executor never reuses another run's output directories).
            "results": row.get("results"),
            "artifacts": row.get("artifacts"),
            "cache_key": row.get("cache_key"),
        }
    for n in left_out:
        initial[n] = {
            "status": TaskStatus.SKIPPED.value,
            "reason": NOT_SELECTED,
            "message": f"not part of the rerun of {task!r}",
        }
    return RerunPlan(rerun=tuple(selected), reused=tuple(reused), left_out=tuple(left_out), initial_tasks=initial)


def _descendants(spec: PipelineSpec, task: str) -> set[str]:
    children: dict[str, list[str]] = {t.name: [] for t in spec.tasks}
    for t in spec.tasks:
        for d in t.depends:
            children.setdefault(d, []).append(t.name)
    out: set[str] = set()
    stack = [task]
    while stack:
        for c in children.get(stack.pop(), []):
            if c not in out:
                out.add(c)
                stack.append(c)
    return out


def _ancestors_of(spec: PipelineSpec, tasks: set[str]) -> set[str]:
    deps = {t.name: t.depends for t in spec.tasks}
    out: set[str] = set()
    stack = list(tasks)
    while stack:
        for d in deps.get(stack.pop(), ()):
            if d not in out:
                out.add(d)
                stack.append(d)
    return out
