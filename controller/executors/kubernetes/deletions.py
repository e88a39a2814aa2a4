"""Clean-up deletions grouped into `deletecollection` requests: which label selector deletes exactly which objects.

A DELETE per ended pod made clean-up the dearest part of a task (a third of its API requests). The apiserver's
`deletecollection` verb deletes every object a label selector matches in one request, each exactly as a DELETE
would (watchers see each go, propagation applies). The hard part is the selector: it must match the objects meant
and never a live one. Two shapes do:

* **a whole run** that has ended: `odin.dev/run in (r1,r2,...)`. A run that ended starts no attempt again (a rerun is
  a new run with a new id), so nothing alive can match. Its `${WORK_PATH}` ConfigMaps go in the same way.
* **ended attempts of a run still going**, of one attempt number: `odin.dev/run=r,odin.dev/attempt=n,odin.dev/task in
  (t1,t2,...)`. A task's next attempt has a higher number, so a retry already running never matches, and the
  attempt numbers of a task are never reused (names are deterministic per attempt).

Pairs of (task, attempt) cannot be written as one set-based selector (`task in (...),attempt in (...)` is their cross
product and could match a retry), hence one request per attempt number; in practice nearly every ended attempt is
attempt 1. Lists are cut so that a selector stays short (`MAX_VALUES` values): a URL of a few KiB, well inside any
proxy's limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from odin.controller.executors.kubernetes import names
from odin.controller.executors.kubernetes.api import Kind

MAX_VALUES = 100  # values in one `in (...)` list


@dataclass(frozen=True, slots=True)
class Target:
    """Where one group of objects lives and how it is deleted."""

    namespace: str
    kind: Kind
    propagation: str


@dataclass(frozen=True, slots=True)
class Batch:
    """One `deletecollection` request: `selector` matches exactly the objects of `keys` (attempt keys) or `runs`."""

    target: Target
    selector: str
    keys: tuple[tuple[str, str, int], ...] = ()
    runs: tuple[str, ...] = ()


def _chunks(values: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(values), MAX_VALUES):
        yield values[i : i + MAX_VALUES]


def attempt_batches(base: str, ended: Mapping[Target, Iterable[tuple[str, str, int]]]) -> list[Batch]:
    """Requests that delete the objects of these ended attempts (run id, task, attempt) and nothing else: one per
    (target, run, attempt number), at most `MAX_VALUES` tasks each. `base` is the executor's own selector."""
    batches: list[Batch] = []
    for target, keys in ended.items():
        by_run: dict[tuple[str, int], dict[str, tuple[str, str, int]]] = {}
        for key in keys:
            run_id, task, attempt = key
            by_run.setdefault((run_id, attempt), {})[names.label_value(task)] = key
        for (run_id, attempt), tasks in sorted(by_run.items()):
            values = sorted(tasks)
            for chunk in _chunks(values):
                selector = (
                    f"{base},{names.LABEL_RUN}={names.label_value(run_id)},{names.LABEL_ATTEMPT}={attempt},"
                    f"{names.LABEL_TASK} in ({','.join(chunk)})"
                )
                batches.append(Batch(target, selector, keys=tuple(tasks[t] for t in chunk)))
    return batches


def run_batches(base: str, ended: Mapping[Target, Iterable[str]]) -> list[Batch]:
    """Requests that delete every object of these ended runs, by target: `MAX_VALUES` runs a request."""
    batches: list[Batch] = []
    for target, run_ids in ended.items():
        by_label = {names.label_value(r): r for r in run_ids}
        for chunk in _chunks(sorted(by_label)):
            selector = f"{base},{names.LABEL_RUN} in ({','.join(chunk)})"
            batches.append(Batch(target, selector, runs=tuple(by_label[v] for v in chunk)))
    return batches
