"""The normalised, typed form of a pipeline, as the engine and the executors consume it.

`main.yml` allows shorthands (a string where a list is meant, a single mount instead of a list, `depends: null`);
validation turns a document into these frozen dataclasses once, so nothing downstream re-interprets YAML. The same
objects serialise to the JSON "frozen spec" stored on every run (`to_dict` / `from_dict` round-trip exactly), which is
what makes a run reproducible without going back to git.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, is_dataclass
from typing import Any

RESOURCE_TYPES: tuple[str, ...] = ("Pod", "Job", "PyTorchJob", "TFJob", "MPIJob", "ElasticJob", "TrainJob")
"""Values `resource_type` may take; `Pod` is the default."""

BUILTIN_VARIABLES: tuple[str, ...] = (
    "RUN_PATH",
    "TASK_ID",
    "TASK_NAME",
    "WORK_PATH",
    "ROOT_PATH",
    "PIPE_ID",
    "COMMIT_SHA",
    "OUTPUT_PATH",
    "RESULTS_PATH",
    "DATA_PATH",
    "TASK_PATH",
    "TASK_IDS",
)
"""`${NAME}` variables substituted in command, args and env; `${params.X}` names a declared parameter, `${matrix.X}`
a sweep's value (substituted at normalisation) and `${tasks.T.results.R}` / `${tasks.T.artifacts.A}` an ancestor's
output (see `TaskReference`). `OUTPUT_PATH` and `RESULTS_PATH` are the task's own directories for its declared
artifacts and results: one pair per task attempt, chosen by the executor. `DATA_PATH`, `TASK_PATH` and `TASK_IDS`
are the original Odin's (docs/migrating-from-odin.md): `${ROOT_PATH}`, `${RUN_PATH}/<task name>` and the JSON list of
every task's `${TASK_ID}`."""

MatrixValue = str | int | float | bool
"""One value of a `matrix:` list, as YAML typed it (so the JSON of a sweep's results says `0.1`, not `"0.1"`)."""


@dataclass(frozen=True, slots=True)
class Artifact:
    """A declared artifact: a file or directory the task writes at `${OUTPUT_PATH}/<path>`.

    `path` is relative, normalised (no `.`, `..`, empty or duplicate components), and defaults to the name."""

    name: str
    path: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """A declared result: a small JSON value the task writes to `${RESULTS_PATH}/<name>` (the file's text, read as
    JSON when it parses, else as a string) or as a key of `${RESULTS_PATH}/results.json` (the per-name file wins)."""

    name: str
    description: str | None = None


@dataclass(frozen=True, slots=True)
class TaskReference:
    """One use of another task's output, as the engine must resolve it before the task starts.

    `task` is the producer as written: a task name, or a sweep's name (then the value is the JSON list of every
    member's output, see `odin.schema.outputs.sweep_value`). `kind` is `results` or `artifacts`. `where` says where
    the reference is used (`command[0]`, `args[3]`, `env.MODEL`, `when`); `variable` is the key of the value in the
    substitution map (`tasks.train.results.accuracy`), the same in every place that uses it. Legacy `^train.key`
    references are rewritten to the `${tasks...}` form at normalisation, so the engine sees only this one."""

    task: str
    kind: str
    output: str
    where: str

    @property
    def variable(self) -> str:
        return f"tasks.{self.task}.{self.kind}.{self.output}"


@dataclass(frozen=True, slots=True)
class Mount:
    """A PersistentVolumeClaim mounted into the task's container(s)."""

    name: str
    path: str
    claim: str
    read_only: bool = False
    sub_path: str | None = None


@dataclass(frozen=True, slots=True)
class EphemeralVolume:
    """A volume living as long as the task's pod: a Kubernetes `emptyDir` (`medium: Memory` is a tmpfs), locally a
    temporary directory per attempt. The original Odin's `ephem_volumes`, mounted at `paths` by the task's `mounts`
    entries of the same name that have no `claim`."""

    name: str
    paths: tuple[str, ...] = ()
    medium: str | None = None
    size_limit: str | None = None


@dataclass(frozen=True, slots=True)
class SecretMount:
    """A Kubernetes Secret mounted as files (by reference: Odin never reads its content)."""

    name: str
    path: str
    sub_path: str | None = None
    mode: int | None = None


@dataclass(frozen=True, slots=True)
class ConfigMapMount:
    """A Kubernetes ConfigMap mounted as files."""

    name: str
    path: str
    sub_path: str | None = None


@dataclass(frozen=True, slots=True)
class Resources:
    """Kubernetes quantities as written by the user (e.g. `"500m"`, `"4Gi"`); None when not given."""

    requests: str | None = None
    limits: str | None = None


@dataclass(frozen=True, slots=True)
class ParamSpec:
    """A declared pipeline parameter. A parameter without a default is required when a run is created."""

    name: str
    default: str | None = None
    description: str | None = None
    type: str = "string"  # one of: string, integer, number, boolean
    choices: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One node of the DAG after normalisation. Values are as written: `${...}` is substituted at run time."""

    name: str
    image: str | None
    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    depends: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()
    ephem_volumes: tuple[EphemeralVolume, ...] = ()
    secrets: tuple[SecretMount, ...] = ()
    config_maps: tuple[ConfigMapMount, ...] = ()
    num_gpus: int = 0
    num_workers: int = 1
    cpu: Resources | None = None
    memory: Resources | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    pull_policy: str | None = None
    security_context: dict[str, Any] | None = None
    resource_type: str = "Pod"
    queue: str | None = None
    artifacts: tuple[Artifact, ...] = ()
    results: tuple[Result, ...] = ()
    references: tuple[TaskReference, ...] = ()
    when: str | None = None  # a condition (odin.schema.conditions), matrix values already substituted
    sweep: str | None = None  # for a member of a `matrix` sweep: the sweep's name (the task name as written)
    matrix: dict[str, MatrixValue] = field(default_factory=dict)  # a sweep member's values, in the order written
    retries: int = 0
    timeout: float | None = None  # seconds
    service_account: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    tolerations: tuple[dict[str, Any], ...] = ()
    elastic: dict[str, Any] | None = None  # {min_replicas, max_replicas, max_restarts, rdzv_backend} for elastic jobs
    cache: bool = False  # reuse the outputs of an earlier run with the same cache key (the task's or the pipeline's)

    def uses_variable(self, name: str) -> bool:
        """Whether `command`, `args` or an `env` value uses `${name}` (an executor prepares `${TASK_PATH}` only for
        the tasks that use it)."""
        wanted = f"${{{name}}}"
        return any(wanted in text for text in (*self.command, *self.args, *self.env.values()))

    def to_dict(self) -> dict[str, Any]:
        """Only the fields that differ from their defaults (plus the identifying ones): a wide fan-out's frozen
        spec stays a fraction of the size, and reads as what the user wrote. `from_dict` restores the defaults."""
        result: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _ALWAYS_KEPT or value != _DEFAULTS[f.name]:
                result[f.name] = _jsonable(value)
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        d = dict(data)
        d["command"] = tuple(d.get("command", ()))
        # Frozen specs stored before issue 11 carry lineage-only `inputs`/`outputs` path lists: nothing reads them.
        d.pop("inputs", None)
        if isinstance(d.get("outputs"), list):
            del d["outputs"]
        for key in ("args", "depends", "image_pull_secrets"):
            d[key] = tuple(d.get(key, ()))
        d["artifacts"] = tuple(Artifact(**a) for a in d.get("artifacts", ()))
        d["results"] = tuple(Result(**r) for r in d.get("results", ()))
        d["references"] = tuple(TaskReference(**r) for r in d.get("references", ()))
        d["matrix"] = dict(d.get("matrix", {}))
        d["tolerations"] = tuple(dict(t) for t in d.get("tolerations", ()))
        d["mounts"] = tuple(Mount(**m) for m in d.get("mounts", ()))
        d["ephem_volumes"] = tuple(
            EphemeralVolume(**{**v, "paths": tuple(v.get("paths", ()))}) for v in d.get("ephem_volumes", ())
        )
        d["secrets"] = tuple(SecretMount(**s) for s in d.get("secrets", ()))
        d["config_maps"] = tuple(ConfigMapMount(**c) for c in d.get("config_maps", ()))
        d["cpu"] = Resources(**d["cpu"]) if d.get("cpu") else None
        d["memory"] = Resources(**d["memory"]) if d.get("memory") else None
        d["env"] = dict(d.get("env", {}))
        d["node_selector"] = dict(d.get("node_selector", {}))
        return cls(**d)


CATCHUP_POLICIES: tuple[str, ...] = ("none", "latest", "all")
"""What a schedule does with the slots it missed while no leader ran: start none, the most recent, or each."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """One `schedule:` entry: a valid cron expression read in an IANA time zone, and its catch-up policy."""

    cron: str
    timezone: str = "UTC"
    catchup: str = "none"
    params: tuple[tuple[str, str], ...] = ()
    """The run's parameters, sorted by name (each checked against the pipeline's `params:`); the rest take defaults."""
    source: str = "main.yml"
    """Where the schedule is written: the pipeline's `main.yml`, or the repository's `.odin.yml`."""

    @property
    def key(self) -> str:
        """How the store tells this schedule's slots from another's of the same pipeline: `<cron>@<zone>`, and a
        digest of the parameters when there are any, so two schedules of one pipeline that differ only in their
        parameters (a nightly `epochs: 10` and a weekly `epochs: 100`) each start their own slot. The source is no
        part of it: moving a schedule from `main.yml` to `.odin.yml` keeps its history."""
        if not self.params:
            return f"{self.cron}@{self.timezone}"
        digest = hashlib.sha256(json.dumps(self.params).encode()).hexdigest()[:12]
        return f"{self.cron}@{self.timezone}#{digest}"

    def to_dict(self) -> dict[str, Any]:
        """`params` and `source` only when set: frozen specs of schedules without them read as before."""
        result: dict[str, Any] = {"cron": self.cron, "timezone": self.timezone, "catchup": self.catchup}
        if self.params:
            result["params"] = dict(self.params)
        if self.source != "main.yml":
            result["source"] = self.source
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Schedule:
        params = tuple(sorted((str(k), str(v)) for k, v in dict(data.get("params") or {}).items()))
        return cls(
            cron=data["cron"],
            timezone=data.get("timezone", "UTC"),
            catchup=data.get("catchup", "none"),
            params=params,
            source=data.get("source", "main.yml"),
        )


CONCURRENCY_POLICIES: tuple[str, ...] = ("queue", "replace", "skip")
"""What a run started while its pipeline's `concurrency.limit` runs are active does: wait Queued for a slot, cancel
the oldest active run(s) and start, or be recorded as skipped."""


@dataclass(frozen=True, slots=True)
class Concurrency:
    """`concurrency:` of a pipeline: at most `limit` runs of it active at once per repository, and the `policy` of a
    run started beyond that."""

    limit: int = 1
    policy: str = "queue"


@dataclass(frozen=True, slots=True)
class PipelineSpec:
    """A validated pipeline: its tasks in file order, its declared parameters, when it starts on its own
    (`schedules`) and how long a run may take (`timeout`, seconds)."""

    name: str
    tasks: tuple[TaskSpec, ...]
    params: tuple[ParamSpec, ...] = ()
    description: str | None = None
    notify: tuple[dict[str, Any], ...] = ()
    """`notify:` entries as validated by the JSON Schema (plain JSON): read by the notifier when a run ends."""
    schedules: tuple[Schedule, ...] = ()
    timeout: float | None = None
    concurrency: Concurrency | None = None
    priority: int = 0
    """Order in the controller's global queue (ODIN_MAX_ACTIVE_RUNS): higher starts first, then oldest first."""

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)

    def producers(self, name: str) -> tuple[TaskSpec, ...]:
        """The tasks a reference to `name` reads: the task itself, or every member of the sweep `name`, in
        expansion order. Empty when there is no such task or sweep."""
        return tuple(t for t in self.tasks if name in (t.name, t.sweep))

    def param(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """`schedules`, `timeout`, `concurrency`, `priority` only when set: frozen specs without them read as before."""
        result: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "params": [_jsonable(asdict(p)) for p in self.params],
            "tasks": [t.to_dict() for t in self.tasks],
        }
        if self.notify:  # only when present: frozen specs of pipelines without notifications stay as they were
            result["notify"] = _jsonable(self.notify)
        if self.schedules:
            result["schedules"] = [s.to_dict() for s in self.schedules]
        if self.timeout is not None:
            result["timeout"] = self.timeout
        if self.concurrency is not None:
            result["concurrency"] = asdict(self.concurrency)
        if self.priority:
            result["priority"] = self.priority
        return result

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineSpec:
        return cls(
            name=data["name"],
            description=data.get("description"),
            params=tuple(ParamSpec(**{**p, "choices": tuple(p.get("choices", ()))}) for p in data.get("params", ())),
            tasks=tuple(TaskSpec.from_dict(t) for t in data["tasks"]),
            notify=tuple(dict(n) for n in data.get("notify", ())),
            schedules=tuple(Schedule.from_dict(s) for s in data.get("schedules", ())),
            timeout=data.get("timeout"),
            concurrency=Concurrency(**data["concurrency"]) if data.get("concurrency") else None,
            priority=int(data.get("priority", 0)),
        )


_ALWAYS_KEPT = frozenset({"name", "image", "command"})


def _default(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    assert f.default_factory is not MISSING, f"{f.name} has no default"
    return f.default_factory()


_DEFAULTS: dict[str, Any] = {
    f.name: _default(f) for f in fields(TaskSpec) if f.default is not MISSING or f.default_factory is not MISSING
}


def _jsonable(value: Any) -> Any:
    """Tuples become lists so the frozen spec is plain JSON (and compares equal after a round-trip)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    return value
