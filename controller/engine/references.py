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
from odin.controller.vocabulary import InputArtifact
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

    def value(
        self, task: str, kind: str, output: str, locate: Locate | None = None, artifact_field: str = "location"
    ) -> Any:
        """A result's value, or an artifact's location (as `locate` maps it for the executor) or another field of its
        record (e.g. the `digest` a cache key uses); raises KeyError when it was not recorded."""
        if kind == "results":
            return self.results[task][output]
        record = self.artifacts[task][output]
        if artifact_field != "location":
            return record[artifact_field]
        return locate(task, record) if locate is not None else record["location"]


Locate = Callable[[str, Mapping[str, Any]], str]
"""Where a task sees an artifact recorded by task `name`: the executor's `input_location` (a local path as recorded;
on Kubernetes the path where the pod's init step downloads it)."""


def resolve(
    spec: PipelineSpec,
    task: TaskSpec,
    recorded: RecordedOutputs,
    succeeded: Callable[[str], bool],
    producers: Callable[[str], tuple[TaskSpec, ...]] | None = None,
    locate: Locate | None = None,
    inputs: list[InputArtifact] | None = None,
    artifact_field: str = "location",
) -> dict[str, Any]:
    """Each reference's `variable` → its value: the producer's result or artifact location (or
    `artifact_field` of its record), or for a sweep the
    `sweep_value` of the members that succeeded and recorded it. Raises `Unresolved`. Every artifact referenced is
    appended to `inputs` when given (what an executor must bring to the task)."""

    def note(task_name: str, kind: str, output: str) -> None:
        if inputs is None or kind != "artifacts":
            return
        record = recorded.artifacts[task_name][output]
        inputs.append(
            InputArtifact(
                task=task_name, name=output, path=str(record.get("path") or output), digest=str(record["digest"]),
                location=str(record["location"]), tree=bool(record.get("tree")),
            )
        )  # fmt: skip

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
                if succeeded(member.name) and not _gone(recorded, member.name, ref.kind, ref.output):
                    try:
                        members.append(
                            (member, recorded.value(member.name, ref.kind, ref.output, locate, artifact_field))
                        )
                    except KeyError:
                        continue
                    note(member.name, ref.kind, ref.output)
            values[ref.variable] = sweep_value(members)
            continue
        if ref.kind == "artifacts" and recorded.artifacts.get(ref.task, {}).get(ref.output, {}).get("gone"):
            raise Unresolved(
                f"`${{{ref.variable}}}`: the artifact {ref.output!r} of task {ref.task!r} was deleted by artifact "
                "retention (docs/artifacts.md); run the pipeline again rather than reusing that task"
            )
        try:
            values[ref.variable] = recorded.value(ref.task, ref.kind, ref.output, locate, artifact_field)
            note(ref.task, ref.kind, ref.output)
        except KeyError:
            raise Unresolved(
                f"`${{{ref.variable}}}`: task {ref.task!r} has no recorded {ref.kind[:-1]} {ref.output!r}"
                + ("" if succeeded(ref.task) else " (it did not succeed)")
            ) from None
    return values


def _gone(recorded: RecordedOutputs, task: str, kind: str, output: str) -> bool:
    """An artifact retention deleted (its record is marked `gone`): a sweep reads the members that still have it."""
    return kind == "artifacts" and bool(recorded.artifacts.get(task, {}).get(output, {}).get("gone"))


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
