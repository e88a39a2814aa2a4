"""The normalised, typed form of a pipeline, as the engine and the executors consume it.

`main.yml` allows shorthands (a string where a list is meant, a single mount instead of a list, `depends: null`);
validation turns a document into these frozen dataclasses once, so nothing downstream re-interprets YAML. The same
objects serialise to the JSON "frozen spec" stored on every run (`to_dict` / `from_dict` round-trip exactly), which is
what makes a run reproducible without going back to git.
"""

from __future__ import annotations

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
)
"""`${NAME}` variables substituted in command, args and env; `${params.X}` names a declared parameter."""


@dataclass(frozen=True, slots=True)
class Mount:
    """A PersistentVolumeClaim mounted into the task's container(s)."""

    name: str
    path: str
    claim: str
    read_only: bool = False
    sub_path: str | None = None


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
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    retries: int = 0
    timeout: float | None = None  # seconds
    service_account: str | None = None
    image_pull_secrets: tuple[str, ...] = ()
    tolerations: tuple[dict[str, Any], ...] = ()
    elastic: dict[str, Any] | None = None  # {min_replicas, max_replicas, max_restarts, rdzv_backend} for elastic jobs

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
        for key in ("args", "depends", "inputs", "outputs", "image_pull_secrets"):
            d[key] = tuple(d.get(key, ()))
        d["tolerations"] = tuple(dict(t) for t in d.get("tolerations", ()))
        d["mounts"] = tuple(Mount(**m) for m in d.get("mounts", ()))
        d["secrets"] = tuple(SecretMount(**s) for s in d.get("secrets", ()))
        d["config_maps"] = tuple(ConfigMapMount(**c) for c in d.get("config_maps", ()))
        d["cpu"] = Resources(**d["cpu"]) if d.get("cpu") else None
        d["memory"] = Resources(**d["memory"]) if d.get("memory") else None
        d["env"] = dict(d.get("env", {}))
        d["node_selector"] = dict(d.get("node_selector", {}))
        return cls(**d)


@dataclass(frozen=True, slots=True)
class PipelineSpec:
    """A validated pipeline: its tasks in file order, its declared parameters."""

    name: str
    tasks: tuple[TaskSpec, ...]
    params: tuple[ParamSpec, ...] = ()
    description: str | None = None

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)

    def param(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "params": [_jsonable(asdict(p)) for p in self.params],
            "tasks": [t.to_dict() for t in self.tasks],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PipelineSpec:
        return cls(
            name=data["name"],
            description=data.get("description"),
            params=tuple(ParamSpec(**{**p, "choices": tuple(p.get("choices", ()))}) for p in data.get("params", ())),
            tasks=tuple(TaskSpec.from_dict(t) for t in data["tasks"]),
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
