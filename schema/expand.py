"""The last steps of normalisation, across tasks: references recorded (and `^task.key` rewritten), sweeps expanded.

Both run on tasks that checks and per-task normalisation found valid, so what they look up exists; they still skip
anything unexpected rather than trusting it, since a bug here would take the whole pipeline down at load time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence

from . import conditions
from .limits import Limits
from .located import JsonPath
from .matrix import combinations, member_names
from .model import MatrixValue, TaskReference, TaskSpec
from .references import OutputName, legacy_references, names_in, parse_name, rewrite_legacy
from .variables import substitute_some

Report = Callable[..., None]


def resolve_references(tasks: Sequence[tuple[JsonPath, TaskSpec]]) -> list[tuple[JsonPath, TaskSpec]]:
    """Each task with its legacy references rewritten and `references` filled in."""
    kind_of: dict[tuple[str, str], str] = {}
    for _, task in tasks:
        kind_of.update({(task.name, a.name): "artifacts" for a in task.artifacts})
        kind_of.update({(task.name, r.name): "results" for r in task.results})
    names = frozenset(task.name for _, task in tasks)
    out: list[tuple[JsonPath, TaskSpec]] = []
    for path, task in tasks:
        found: list[TaskReference] = []

        def resolve(text: str, where: str, found: list[TaskReference] = found) -> str:
            legacy = legacy_references(text, names) if "^" in text else []
            if legacy and all((ref.task, ref.key) in kind_of for ref in legacy):
                text = rewrite_legacy(text, legacy, kind_of)
            found.extend(_references(names_in(text), where))
            return text

        if not _may_refer(task):
            out.append((path, task))
            continue
        command = tuple(resolve(word, f"command[{j}]") for j, word in enumerate(task.command))
        args = tuple(resolve(arg, f"args[{j}]") for j, arg in enumerate(task.args))
        env = {key: resolve(value, f"env.{key}") for key, value in task.env.items()}
        if task.when is not None:
            try:
                condition = conditions.parse(task.when)
            except conditions.ConditionError:
                pass  # reported by the checks
            else:
                found.extend(_references((ref.name for ref in condition.references), "when"))
        unique = tuple(dict.fromkeys(found))
        out.append((path, dataclasses.replace(task, command=command, args=args, env=env, references=unique)))
    return out


def _may_refer(task: TaskSpec) -> bool:
    """Whether any string of the task could hold a reference: most tasks hold none and are kept as they are."""
    if task.when is not None:
        return True
    strings = (*task.command, *task.args, *task.env.values())
    return any("${tasks." in text or "^" in text for text in strings)


def _references(names: Iterable[str], where: str) -> Iterable[TaskReference]:
    for name in names:
        parsed = parse_name(name)
        if isinstance(parsed, OutputName):
            yield TaskReference(task=parsed.task, kind=parsed.kind, output=parsed.output, where=where)


def expand_sweeps(
    tasks: Sequence[tuple[JsonPath, TaskSpec]],
    matrices: Mapping[JsonPath, Mapping[str, Sequence[tuple[MatrixValue, str]]]],
    limits: Limits,
    report: Report,
) -> tuple[TaskSpec, ...] | None:
    """Every task, a sweep replaced in place by its members; `depends` on a sweep becomes `depends` on each member.
    None (with a problem reported) when the expansion would pass `limits.max_tasks`."""
    total = 0
    for path, _ in tasks:
        size = 1
        for values in matrices.get(path, {}).values():
            size *= len(values)
        total += size
    if total > limits.max_tasks:
        report(("tasks",), f"the pipeline expands to {total} tasks with its sweeps; the limit is {limits.max_tasks}")
        return None
    taken: dict[str, JsonPath] = {task.name: path for path, task in tasks if path not in matrices}
    members: dict[str, list[str]] = {}
    expanded: list[TaskSpec] = []
    for path, task in tasks:
        matrix = matrices.get(path)
        if matrix is None:
            expanded.append(task)
            continue
        chosen = combinations(matrix)
        names = member_names(task.name, chosen, taken)
        members[task.name] = names
        for name, combination in zip(names, chosen, strict=True):
            if name in taken:
                report((*path, "matrix"), f"sweep member `{name}` has the name of another task; rename one of them")
                continue
            taken[name] = path
            expanded.append(_member(task, name, combination))
    if not members:
        return tuple(expanded)
    return tuple(_depend_on_members(task, members) for task in expanded)


def _depend_on_members(task: TaskSpec, members: Mapping[str, Sequence[str]]) -> TaskSpec:
    if not any(dependency in members for dependency in task.depends):
        return task
    depends = (member for dependency in task.depends for member in members.get(dependency, [dependency]))
    return dataclasses.replace(task, depends=tuple(dict.fromkeys(depends)))


def _member(task: TaskSpec, name: str, combination: Mapping[str, tuple[MatrixValue, str]]) -> TaskSpec:
    as_written = {f"matrix.{key}": text for key, (_, text) in combination.items()}
    as_literals = {f"matrix.{key}": conditions.literal(value) for key, (value, _) in combination.items()}
    return dataclasses.replace(
        task,
        name=name,
        command=tuple(substitute_some(word, as_written) for word in task.command),
        args=tuple(substitute_some(arg, as_written) for arg in task.args),
        env={key: substitute_some(value, as_written) for key, value in task.env.items()},
        when=None if task.when is None else substitute_some(task.when, as_literals),
        sweep=task.name,
        matrix={key: value for key, (value, _) in combination.items()},
    )
