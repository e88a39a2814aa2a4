"""Resolving what a task reads from earlier tasks (`${tasks.T.results.R}`, `${tasks.T.artifacts.A}`) and its `when`.

Pure functions over what the engine holds in memory: the outputs recorded for each succeeded task of the run (loaded
from the store when a run is adopted, so restarts and reruns that reuse tasks see them too). The loop calls them on
its own thread before a task starts; nothing here touches the store or the files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from odin.controller.engine.decide import Gate
from odin.schema.conditions import Condition, ConditionError, Ref, parse
from odin.schema.model import PipelineSpec, TaskSpec
from odin.schema.outputs import sweep_value, value_text


class Unresolved(Exception):
    """A reference whose producer did not record the output (e.g. a task reused from a run older than outputs)."""


@dataclass
class RecordedOutputs:
    """Per task name: its results and artifacts as recorded when it succeeded."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    artifacts: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def record(self, task: str, results: Mapping[str, Any] | None, artifacts: Mapping[str, Any] | None) -> None:
        if results is None and artifacts is None:
            return
        self.results[task] = dict(results or {})
        self.artifacts[task] = dict(artifacts or {})

    def forget(self, task: str) -> None:
        self.results.pop(task, None)
        self.artifacts.pop(task, None)

    def value(self, task: str, kind: str, output: str, artifact_field: str = "location") -> Any:
        """A result's value, or an artifact's location (or another field of its record, e.g. the `digest` a cache
        key uses); raises KeyError when it was not recorded."""
        if kind == "results":
            return self.results[task][output]
        return self.artifacts[task][output][artifact_field]


def resolve(
    spec: PipelineSpec,
    task: TaskSpec,
    recorded: RecordedOutputs,
    succeeded: Callable[[str], bool],
    producers: Callable[[str], tuple[TaskSpec, ...]] | None = None,
    artifact_field: str = "location",
) -> dict[str, Any]:
    """Each reference's `variable` → its value: the producer's result or artifact location (`artifact_field` of its
    record), or for a sweep the `sweep_value` of the members that succeeded and recorded it. Raises `Unresolved`."""
    find = producers or spec.producers
    values: dict[str, Any] = {}
    for ref in task.references:
        if ref.variable in values:
            continue
        found = find(ref.task)
        if not found:
            raise Unresolved(f"`${{{ref.variable}}}`: the pipeline has no task {ref.task!r}")
        if found[0].sweep == ref.task:
            members = []
            for member in found:
                if succeeded(member.name):
                    try:
                        members.append((member, recorded.value(member.name, ref.kind, ref.output, artifact_field)))
                    except KeyError:
                        continue
            values[ref.variable] = sweep_value(members)
            continue
        try:
            values[ref.variable] = recorded.value(ref.task, ref.kind, ref.output, artifact_field)
        except KeyError:
            raise Unresolved(
                f"`${{{ref.variable}}}`: task {ref.task!r} has no recorded {ref.kind[:-1]} {ref.output!r}"
                + ("" if succeeded(ref.task) else " (it did not succeed)")
            ) from None
    return values


def texts(values: Mapping[str, Any]) -> dict[str, str]:
    """Resolved values as they are substituted into command, args and env."""
    return {name: value_text(value) for name, value in values.items()}


def gate(text: str, variables: Mapping[str, str], values: Mapping[str, Any]) -> Gate:
    """The outcome of a `when`: `values` (resolved references) first, then the task's variables."""
    try:
        condition = parse(text)
        known = {**variables, **values}
        if condition.evaluate(known):
            return Gate(run=True)
    except ConditionError as e:
        return Gate(run=False, error=True, message=f"`when: {text}` cannot be evaluated: {e.message}")
    shown = ", ".join(f"{r.name} = {_short(value_text(known[r.name]))}" for r in _unique(condition) if r.name in known)
    return Gate(run=False, message=f"`when: {text}` is false" + (f" ({shown})" if shown else ""))


def _unique(condition: Condition) -> list[Ref]:
    seen: dict[str, Ref] = {}
    for ref in condition.references:
        seen.setdefault(ref.name, ref)
    return list(seen.values())


def _short(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
