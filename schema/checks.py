"""Checks no JSON Schema can express: the DAG (unique names, known dependencies, no cycles), variables, and which
resource types can run several workers.

They run on the raw document even when the schema found problems elsewhere, so a user sees a typo in one task and a
cycle between two others in the same round; every access is therefore guarded by a type test instead of trusting the
schema.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from .located import JsonPath, LocatedDocument, SourceFinder
from .model import BUILTIN_VARIABLES
from .problems import Problem
from .refchecks import Pipeline, Scope, condition_problems, declared_outputs, legacy_problems, matrix_keys
from .references import Ancestry
from .suggest import did_you_mean
from .variables import PARAMS_PREFIX, unknown_references, unterminated

SINGLE_WORKER_TYPES = ("Pod", "Job")
PER_VALUE = 20
"""Problems reported for the variables of one string; one 1 MiB command can hold half a million unclosed `${`."""
PER_FILE = 1000
"""Variable problems located and explained per file (ten times what a file's report shows); the rest are counted."""
ELASTIC_TYPES = ("ElasticJob", "PyTorchJob")
ELASTICJOB_DEPRECATED = (
    "resource_type ElasticJob is deprecated: its CRD (apiextensions.k8s.io/v1beta1) cannot be installed on "
    "Kubernetes 1.22 or later; use resource_type PyTorchJob with `elastic:` (the training operator's elasticPolicy) "
    "or TrainJob instead"
)
"""A warning, not an error: the handler still runs ElasticJobs on the clusters that have the CRD (issue 14)."""


def check_pipeline(doc: LocatedDocument, file: str) -> list[Problem]:
    root = doc.value
    tasks = root.get("tasks") if isinstance(root, dict) else None
    if not isinstance(tasks, list):
        return []
    params = root.get("params")
    declared = frozenset(params) if isinstance(params, dict) else frozenset()
    known = frozenset(BUILTIN_VARIABLES).union(PARAMS_PREFIX + name for name in declared)
    problems: list[Problem] = []
    first_index = _task_names(doc, file, tasks, problems)
    edges = _dependencies(doc, file, tasks, first_index, problems)
    pipeline = _pipeline(tasks, first_index, edges)
    tally = _Tally(PER_FILE)
    for i, task in enumerate(tasks):
        if isinstance(task, dict):
            _workers(doc, file, i, task, problems)
            scope = Scope(pipeline, i, task.get("name"), known, declared, matrix_keys(task))
            _variables(doc, file, i, task, scope, problems, tally)
            when = task.get("when")
            if isinstance(when, str):
                problems.extend(condition_problems(doc, file, scope, when, ("tasks", i, "when"), limit=PER_VALUE))
    if tally.more:
        assert tally.first_left_out is not None
        message = f"and {tally.more} more problems with variables"
        problems.append(doc.problem(file, tally.first_left_out, message))
    return problems


class _Tally:
    """How many more variable problems may be located and explained; once none, whole strings are only counted (a
    file can hold a hundred thousand strings, each with its own unknown `${x}`)."""

    def __init__(self, left: int) -> None:
        self.left = left
        self.more = 0
        self.first_left_out: JsonPath | None = None

    def count(self, more: int, path: JsonPath) -> None:
        if more and self.first_left_out is None:
            self.first_left_out = path
        self.more += more


def _task_names(doc: LocatedDocument, file: str, tasks: list[Any], problems: list[Problem]) -> dict[str, int]:
    first_index: dict[str, int] = {}
    for i, task in enumerate(tasks):
        name = task.get("name") if isinstance(task, dict) else None
        if not isinstance(name, str):
            continue
        if name in first_index:
            line, _ = doc.position(("tasks", first_index[name], "name"))
            problems.append(
                doc.problem(file, ("tasks", i, "name"), f"duplicate task name `{name}` (first at line {line})")
            )
        else:
            first_index[name] = i
    return first_index


def _depends_entries(task: dict[str, Any], i: int) -> Iterator[tuple[str, JsonPath]]:
    depends = task.get("depends")
    if isinstance(depends, str):
        yield depends, ("tasks", i, "depends")
    elif isinstance(depends, list):
        for j, name in enumerate(depends):
            if isinstance(name, str):
                yield name, ("tasks", i, "depends", j)


def _pipeline(tasks: list[Any], first_index: dict[str, int], edges: dict[int, list[tuple[int, JsonPath]]]) -> Pipeline:
    """The shared part of every task's scope."""

    def askers() -> Iterator[int]:  # the tasks that may name another task's outputs, found by a cheap scan
        for i in first_index.values():
            strings = _variable_strings(tasks[i], i)
            if "when" in tasks[i] or any("${tasks." in text or "^" in text for text, _ in strings):
                yield i

    ancestry = Ancestry({i: [target for target, _ in targets] for i, targets in edges.items()}, askers)
    outputs: dict[str, dict[str, str]] = {}
    sweeps: set[str] = set()
    for name, i in first_index.items():
        task = tasks[i]
        if "outputs" in task:
            outputs[name] = declared_outputs(task)
        if "matrix" in task and isinstance(task["matrix"], dict) and task["matrix"]:
            sweeps.add(name)
    return Pipeline(first_index, outputs, frozenset(sweeps), ancestry)


def _dependencies(
    doc: LocatedDocument, file: str, tasks: list[Any], first_index: dict[str, int], problems: list[Problem]
) -> dict[int, list[tuple[int, JsonPath]]]:
    # edges[i]: the tasks i depends on, in the order written, with where each is named.
    edges: dict[int, list[tuple[int, JsonPath]]] = {}
    for i, task in enumerate(tasks):
        if not isinstance(task, dict):
            continue
        own = task.get("name")
        # Only a task's first definition joins the graph; a duplicate is reported already.
        joins_graph = not isinstance(own, str) or first_index.get(own) == i
        targets: list[tuple[int, JsonPath]] = []
        for name, path in _depends_entries(task, i):
            if name == own:
                problems.append(doc.problem(file, path, f"task `{name}` depends on itself"))
            elif name not in first_index:
                hint = did_you_mean(name, first_index)
                problems.append(doc.problem(file, path, f"depends on unknown task `{name}`{hint}"))
            elif joins_graph:
                targets.append((first_index[name], path))
        edges[i] = targets
    for cycle, path in _cycles(edges):
        names = [str(tasks[i]["name"]) for i in cycle]
        chain = " → ".join([*names, names[0]])
        problems.append(doc.problem(file, path, f"dependency cycle: {chain}"))
    return edges


def _cycles(edges: dict[int, list[tuple[int, JsonPath]]]) -> list[tuple[list[int], JsonPath]]:
    """One cycle per strongly connected component (a cluster of tasks that all wait on each other), found
    deterministically: the shortest one through the component's first task in file order, following `depends` in
    the order written. Returns the task indices (each depends on the next) and where the first dependency is named."""
    found: list[tuple[list[int], JsonPath]] = []
    if _is_acyclic(edges):
        return found  # the usual case, settled by a cheaper pass
    for component in _strongly_connected(edges):
        if len(component) < 2:
            continue  # a task depending on itself is reported on its own
        members = set(component)
        start = min(component)
        came_from: dict[int, tuple[int, JsonPath]] = {}
        queue: deque[int] = deque([start])
        closing: tuple[int, JsonPath] | None = None
        while queue and closing is None:
            node = queue.popleft()
            for target, path in edges.get(node, ()):
                if target == start:
                    closing = (node, path)
                    break
                if target in members and target not in came_from:
                    came_from[target] = (node, path)
                    queue.append(target)
        assert closing is not None, "a strongly connected component always closes a cycle through its start"
        chain = [closing[0]]
        while chain[-1] != start:
            chain.append(came_from[chain[-1]][0])
        chain.reverse()  # start → ... → closing node; each entry depends on the next, the last on start
        first_path = came_from[chain[1]][1] if len(chain) > 1 else closing[1]
        found.append((chain, first_path))
    return found


def _is_acyclic(edges: dict[int, list[tuple[int, JsonPath]]]) -> bool:
    """Kahn's algorithm: peel off tasks with no unfinished dependencies; a cycle is what cannot be peeled."""
    waiting = {node: len(targets) for node, targets in edges.items()}
    dependents: dict[int, list[int]] = {}
    for node, targets in edges.items():
        for target, _ in targets:
            dependents.setdefault(target, []).append(node)
    ready = [node for node, count in waiting.items() if count == 0]
    done = 0
    while ready:
        node = ready.pop()
        done += 1
        for dependent in dependents.get(node, ()):
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                ready.append(dependent)
    return done == len(waiting)


def _strongly_connected(edges: dict[int, list[tuple[int, JsonPath]]]) -> list[list[int]]:
    """Tarjan's algorithm, iterative so a ten-thousand-task chain cannot exhaust the Python stack."""
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    components: list[list[int]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work: list[tuple[int, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = edges.get(node, [])
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child][0]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if low[node] == index[node]:
                component: list[int] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    components.sort()
    return components


def _workers(doc: LocatedDocument, file: str, i: int, task: dict[str, Any], problems: list[Problem]) -> None:
    resource_type = task.get("resource_type", "Pod")
    if resource_type == "ElasticJob":
        path = ("tasks", i, "resource_type")
        problems.append(doc.problem(file, path, ELASTICJOB_DEPRECATED, severity="warning"))
    workers = task.get("num_workers")
    if (
        isinstance(workers, int)
        and not isinstance(workers, bool)
        and workers > 1
        and resource_type in SINGLE_WORKER_TYPES
    ):
        problems.append(
            doc.problem(
                file,
                ("tasks", i, "num_workers"),
                f"num_workers: {workers} needs a distributed resource_type (PyTorchJob, TFJob, MPIJob, ElasticJob "
                f"or TrainJob); a {resource_type} runs one worker",
            )
        )
    if "elastic" in task and isinstance(resource_type, str) and resource_type not in ELASTIC_TYPES:
        problems.append(
            doc.problem(
                file,
                ("tasks", i, "elastic"),
                f"`elastic` needs resource_type ElasticJob or PyTorchJob, not {resource_type}",
                at_key=True,
            )
        )


def _variable_strings(task: dict[str, Any], i: int) -> Iterator[tuple[str, JsonPath]]:
    command = task.get("command")
    if isinstance(command, str):
        yield command, ("tasks", i, "command")
    elif isinstance(command, list):
        for j, word in enumerate(command):
            if isinstance(word, str):
                yield word, ("tasks", i, "command", j)
    args = task.get("args")
    if isinstance(args, list):
        for j, arg in enumerate(args):
            if isinstance(arg, str):
                yield arg, ("tasks", i, "args", j)
    env = task.get("env")
    if isinstance(env, dict):
        for key, value in env.items():
            if isinstance(value, str):
                yield value, ("tasks", i, "env", key)


def _variables(
    doc: LocatedDocument,
    file: str,
    i: int,
    task: dict[str, Any],
    scope: Scope,
    problems: list[Problem],
    tally: _Tally,
) -> None:
    command_path: JsonPath = ("tasks", i, "command")
    for text, path in _variable_strings(task, i):
        if "^" in text and tally.left > 0:
            found = legacy_problems(doc, file, scope, text, path, words=path == command_path, limit=PER_VALUE)
            problems.extend(found)
            tally.left -= len(found)
        if "${" not in text:
            continue
        if tally.left <= 0:  # only count: no objects, no positions, no hints
            _, count, maybe_unterminated = unknown_references(text, scope, 0)
            tally.count(count + (len(unterminated(text)) if maybe_unterminated else 0), path)
            continue
        unknown, count, maybe_unterminated = unknown_references(text, scope, PER_VALUE)
        finder = SourceFinder(doc, path, text)
        for reference in unknown:
            problems.append(finder.problem(file, reference.text, reference.start, scope.explain(reference.name)))
        if count > PER_VALUE:
            problems.append(doc.problem(file, path, f"and {count - PER_VALUE} more unknown variables here"))
        tally.left -= len(unknown)
        if maybe_unterminated:
            finder = SourceFinder(doc, path, text)
            offsets = unterminated(text)
            for offset in offsets[:PER_VALUE]:
                problems.append(finder.problem(file, "${", offset, "unterminated `${` (no closing `}`)"))
            if len(offsets) > PER_VALUE:
                problems.append(doc.problem(file, path, f"and {len(offsets) - PER_VALUE} more unterminated `${{` here"))
            tally.left -= min(len(offsets), PER_VALUE)
