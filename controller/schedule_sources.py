"""The schedules of a commit: each valid pipeline's own `schedule:` and the `.odin.yml` `schedules:` entries.

A `.odin.yml` entry names a pipeline and gives its runs' parameters, which only that pipeline's `params:` can judge,
so an entry is resolved here, against the pipeline read from the same commit: a pipeline that is missing or invalid,
or a parameter it does not declare or whose value does not fit, is a problem at its line of `.odin.yml` (recorded on
the commit by the sync) and that entry starts nothing; the other entries and every `main.yml` schedule still do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from odin.controller.pipelines import PipelineAt
from odin.schema import RepoConfig
from odin.schema.model import ParamSpec, Schedule
from odin.schema.problems import Problem


@dataclass(frozen=True, slots=True)
class ScheduledPipeline:
    """One schedule of one valid pipeline at a commit."""

    pipeline: str
    schedule: Schedule
    at: PipelineAt


@dataclass(frozen=True, slots=True)
class CommitSchedules:
    schedules: list[ScheduledPipeline] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)  # on `.odin.yml`


def commit_schedules(
    pipelines: Iterable[PipelineAt], config: RepoConfig | None, read: Callable[[str], PipelineAt | None]
) -> CommitSchedules:
    """Every schedule of the valid `pipelines` (their `main.yml`), then `config`'s entries, each resolved against
    the pipeline `read` returns for its directory (None: no pipeline there). Two entries that come to the same
    schedule (same cron, zone and parameters) are one schedule: its slots start once."""
    found: list[ScheduledPipeline] = []
    seen: set[tuple[str, str]] = set()

    def add(pipeline: str, schedule: Schedule, at: PipelineAt) -> None:
        if (pipeline, schedule.key) not in seen:
            seen.add((pipeline, schedule.key))
            found.append(ScheduledPipeline(pipeline, schedule, at))

    for at in pipelines:
        if at.ok and at.spec is not None:
            for schedule in at.spec.schedules:
                add(at.pipeline, schedule, at)
    problems: list[Problem] = []
    for entry in config.schedules if config is not None else ():
        target = read(entry.pipeline)
        spec = target.spec if target is not None and target.ok else None
        declared = None if spec is None or target is None else (*spec.params, *_template_params(target))
        resolved, entry_problems = entry.resolve(declared)
        problems.extend(entry_problems)
        if resolved is not None and target is not None:
            add(entry.pipeline, resolved, target)
    return CommitSchedules(found, problems)


def _template_params(at: PipelineAt) -> tuple[ParamSpec, ...]:
    """A `main.yml.jinja2`'s variables, as optional string parameters a schedule may give (the launcher renders the
    template with them); the rendered pipeline's own `params:` are declared as usual."""
    own = {p.name for p in at.spec.params} if at.spec is not None else set()
    return tuple(ParamSpec(name, default="") for name in sorted(at.variables - own))
