"""What the engine knows about one run: the DAG's shape and each task's observed state.

`RunState` keeps small indexes (tasks ready to start, tasks holding a slot, tasks blocked by a failed upstream) up to
date on every change, so the decision step never scans the whole DAG: on a 10,000-task run each decision costs what
changed, not what exists. `update()` is the only mutator, which keeps those indexes honest.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from odin.controller.vocabulary import Failure, TaskStatus
from odin.schema.model import PipelineSpec


@dataclass(frozen=True, slots=True)
class Dag:
    """The shape of a pipeline, precomputed once per run: order, dependencies, dependents, per-task limits."""

    names: tuple[str, ...]
    index: Mapping[str, int]
    deps: Mapping[str, tuple[str, ...]]
    dependents: Mapping[str, tuple[str, ...]]
    retries: Mapping[str, int]
    timeouts: Mapping[str, float | None]
    run_timeout: float | None = None  # the pipeline's `timeout` (seconds): the whole run's limit

    @classmethod
    def from_spec(cls, spec: PipelineSpec) -> Dag:
        names = tuple(t.name for t in spec.tasks)
        dependents: dict[str, list[str]] = {n: [] for n in names}
        for t in spec.tasks:
            for d in t.depends:
                dependents[d].append(t.name)
        return cls(
            names=names,
            index={n: i for i, n in enumerate(names)},
            deps={t.name: tuple(t.depends) for t in spec.tasks},
            dependents={n: tuple(v) for n, v in dependents.items()},
            retries={t.name: t.retries for t in spec.tasks},
            timeouts={t.name: t.timeout for t in spec.tasks},
            run_timeout=spec.timeout,
        )

    @classmethod
    def from_edges(
        cls,
        deps: Mapping[str, Iterable[str]],
        *,
        retries: Mapping[str, int] | None = None,
        timeouts: Mapping[str, float | None] | None = None,
        run_timeout: float | None = None,
    ) -> Dag:
        """For tests and tools: a DAG from `{task: [dependencies]}` in insertion order."""
        names = tuple(deps)
        dependents: dict[str, list[str]] = {n: [] for n in names}
        for n, ds in deps.items():
            for d in ds:
                dependents[d].append(n)
        return cls(
            names=names,
            index={n: i for i, n in enumerate(names)},
            deps={n: tuple(ds) for n, ds in deps.items()},
            dependents={n: tuple(v) for n, v in dependents.items()},
            retries={n: (retries or {}).get(n, 0) for n in names},
            timeouts={n: (timeouts or {}).get(n) for n in names},
            run_timeout=run_timeout,
        )


@dataclass(frozen=True, slots=True)
class TaskState:
    """One task as last observed. Times are epoch seconds (the engine's clock)."""

    status: TaskStatus = TaskStatus.PENDING
    attempt: int = 0  # attempts started so far; the current one when active
    user_failures: int = 0
    infra_failures: int = 0
    started_at: float | None = None
    not_before: float | None = None  # RETRYING: the next attempt may start then
    failure: Failure | None = None  # of the last failed attempt
    # The last attempt failed and the engine has not yet chosen to retry or give up. Such a task is RETRYING (not
    # FAILED: its dependents must not be skipped before the decision) and sits in no other index.
    undecided: bool = False
    kill_reason: str | None = None  # set once a kill was requested (timeout, cancelled), so it is asked once
    reason: str | None = None
    message: str | None = None


_BLOCKING = {TaskStatus.FAILED, TaskStatus.SKIPPED, TaskStatus.CANCELLED}


@dataclass
class RunState:
    """Observed state of every task of one run, with indexes the decision step reads in O(what changed)."""

    dag: Dag
    cancel_requested: bool = False
    cancel_message: str | None = None  # what the cancelled run records when a newer run replaced it, not a user
    deadline: float | None = None  # the run's `timeout` passes at this time (epoch seconds); None: no limit
    tasks: dict[str, TaskState] = field(default_factory=dict)
    _unmet: dict[str, int] = field(default_factory=dict)  # dependencies not (yet) succeeded
    _failed_deps: dict[str, int] = field(default_factory=dict)  # dependencies failed, skipped or cancelled
    _ready: list[int] = field(default_factory=list)  # sorted DAG indexes of PENDING tasks with all deps succeeded
    _active: set[str] = field(default_factory=set)
    _retrying: set[str] = field(default_factory=set)
    _undecided: set[str] = field(default_factory=set)
    _blocked: set[str] = field(default_factory=set)  # PENDING/RETRYING tasks with a failed/skipped/cancelled dep
    _terminal: int = 0
    _failed: int = 0

    @classmethod
    def new(
        cls,
        dag: Dag,
        tasks: Mapping[str, TaskState] | None = None,
        *,
        cancel_requested: bool = False,
        deadline: float | None = None,
    ) -> RunState:
        """Build the state and its indexes from scratch (a new run, or one resumed from the store)."""
        state = cls(dag=dag, cancel_requested=cancel_requested, deadline=deadline)
        given = tasks or {}
        state.tasks = {n: given.get(n, TaskState()) for n in dag.names}
        for n in dag.names:
            state._unmet[n] = sum(1 for d in dag.deps[n] if state.tasks[d].status != TaskStatus.SUCCEEDED)
            state._failed_deps[n] = sum(1 for d in dag.deps[n] if state.tasks[d].status in _BLOCKING)
        for n in dag.names:
            state._index(n, None, state.tasks[n])
        return state

    # -- reading ----------------------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> TaskState:
        return self.tasks[name]

    @property
    def ready(self) -> list[str]:
        """PENDING tasks whose dependencies all succeeded, in pipeline order."""
        names = self.dag.names
        return [names[i] for i in self._ready]

    @property
    def has_ready(self) -> bool:
        """Whether any task is ready, without listing them (asked once per step: a wide fan-out must not pay O(n))."""
        return bool(self._ready)

    def first_ready(self, limit: int) -> list[str]:
        names = self.dag.names
        return [names[i] for i in self._ready[:limit]]

    @property
    def active(self) -> frozenset[str]:
        return frozenset(self._active)

    @property
    def active_count(self) -> int:
        return len(self._active)

    @property
    def retrying(self) -> frozenset[str]:
        return frozenset(self._retrying)

    @property
    def undecided(self) -> frozenset[str]:
        return frozenset(self._undecided)

    @property
    def blocked(self) -> frozenset[str]:
        return frozenset(self._blocked)

    @property
    def all_terminal(self) -> bool:
        return self._terminal == len(self.dag.names)

    @property
    def any_failed(self) -> bool:
        return self._failed > 0

    # -- writing ----------------------------------------------------------------------------------------------
    def update(self, name: str, **changes: object) -> TaskState:
        """Replace fields of one task and keep every index consistent. Returns the new state."""
        old = self.tasks[name]
        new = replace(old, **changes)  # type: ignore[arg-type]
        self.tasks[name] = new
        self._unindex(name, old)
        self._index(name, old, new)
        if old.status != new.status:
            was_ok, is_ok = old.status == TaskStatus.SUCCEEDED, new.status == TaskStatus.SUCCEEDED
            if was_ok != is_ok:
                delta = -1 if is_ok else 1
                for child in self.dag.dependents[name]:
                    self._unindex(child, self.tasks[child])
                    self._unmet[child] += delta
                    self._index(child, None, self.tasks[child])
            was_blocking, is_blocking = old.status in _BLOCKING, new.status in _BLOCKING
            if was_blocking != is_blocking:
                delta = 1 if is_blocking else -1
                for child in self.dag.dependents[name]:
                    self._unindex(child, self.tasks[child])
                    self._failed_deps[child] += delta
                    self._index(child, None, self.tasks[child])
        return new

    def _unindex(self, name: str, st: TaskState) -> None:
        i = self.dag.index[name]
        pos = bisect.bisect_left(self._ready, i)
        if pos < len(self._ready) and self._ready[pos] == i:
            del self._ready[pos]
        self._active.discard(name)
        self._retrying.discard(name)
        self._undecided.discard(name)
        self._blocked.discard(name)
        if st.status.terminal:
            self._terminal -= 1
            if st.status == TaskStatus.FAILED:
                self._failed -= 1

    def _index(self, name: str, _old: TaskState | None, st: TaskState) -> None:
        status = st.status
        if status.terminal:
            self._terminal += 1
            if status == TaskStatus.FAILED:
                self._failed += 1
        if st.undecided:
            self._undecided.add(name)
            return
        if status.active:
            self._active.add(name)
        elif status in (TaskStatus.PENDING, TaskStatus.RETRYING):
            if self._failed_deps[name]:
                self._blocked.add(name)
            elif status == TaskStatus.RETRYING:
                self._retrying.add(name)
            elif self._unmet[name] == 0:
                bisect.insort(self._ready, self.dag.index[name])
