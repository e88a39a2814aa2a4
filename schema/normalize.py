"""Turn a schema-valid document into the normalised `PipelineSpec`: shorthands expanded, legacy spellings folded,
scalars stringified, durations in seconds, camelCase security keys in snake_case.

This is the only place that knows every shorthand, so the engine never re-interprets YAML. The few checks that need a
value's meaning rather than its shape (a command shlex cannot split, requests above limits, a default outside its
choices) happen here, while the value is in hand. Parts the schema rejected are skipped (the caller says which), so
their problems are not reported twice in different words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from . import shellwords
from .expand import expand_sweeps, resolve_references
from .limits import DEFAULT_LIMITS, Limits
from .located import JsonPath, LocatedDocument
from .model import (
    Artifact,
    Concurrency,
    ConfigMapMount,
    EphemeralVolume,
    MatrixValue,
    Mount,
    ParamSpec,
    PipelineSpec,
    Resources,
    Result,
    Schedule,
    SecretMount,
    TaskSpec,
)
from .notify import notify_entries
from .outputs import RESULTS_FILE, artifact_path
from .params import check_given, coerce, in_choices, infer_type
from .problems import Problem
from .schedules import cron_problem, timezone_problem
from .units import parse_duration, parse_quantity, stringify

SECRETS_DIR = "/etc/odin/secrets"
CONFIG_DIR = "/etc/odin/config"

LEGACY_ALIASES = {"mounts": "mount", "secrets": "secret", "config_maps": "config_map"}
"""Canonical field → the singular spelling older Odin pipelines use."""

SECURITY_CONTEXT_KEYS = {
    "runAsUser": "run_as_user",
    "runAsGroup": "run_as_group",
    "fsGroup": "fs_group",
    "supplementalGroups": "supplemental_groups",
    "runAsNonRoot": "run_as_non_root",
    "readOnlyRootFilesystem": "read_only_root_filesystem",
    "allowPrivilegeEscalation": "allow_privilege_escalation",
    "seccompProfile": "seccomp_profile",
    "localhostProfile": "localhost_profile",
}
"""Kubernetes' camelCase spelling → Odin's snake_case one (the spec stores snake_case)."""

_DNS_LABEL_MAX = 63
_MAX_TIMEOUT = 366 * 86400.0
_NOT_SIMPLE = re.compile(r"['\"\\]|(?![ \t\r\n])\s")
"""A quote, a backslash, or whitespace shlex does not split on: without any, `str.split()` gives shlex's answer. One
character at a time, so the search is linear (the former `[^…]*(?:[ \t\r\n]+[^…]*)*` backtracked exponentially over
a run of spaces followed by a quote)."""


class _Context:
    """Where problems go and how they are located, shared by the helpers below."""

    def __init__(self, doc: LocatedDocument, file: str, limits: Limits = DEFAULT_LIMITS) -> None:
        self.doc = doc
        self.file = file
        self.limits = limits
        self.problems: list[Problem] = []
        self.matrices: dict[JsonPath, dict[str, list[tuple[MatrixValue, str]]]] = {}
        """Each task's `matrix` (by the task's path): values as YAML typed them and as written."""

    def report(self, path: JsonPath, message: str, *, at_key: bool = False) -> None:
        self.problems.append(self.doc.problem(self.file, path, message, at_key=at_key))

    def text(self, path: JsonPath, value: Any) -> str:
        """A scalar as the string a process will see: exactly as written for plain YAML numbers and booleans
        (`0.10`, `NO`, `1:30` stay so, instead of YAML 1.1's 0.1, false and 90), else `stringify`'s spelling."""
        if isinstance(value, str):
            return value
        return self.doc.scalar_text(path, value) or stringify(value)


def build_spec(
    doc: LocatedDocument,
    file: str,
    default_name: str,
    skip: Callable[[JsonPath], bool],
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[PipelineSpec | None, list[Problem]]:
    """Normalise every part of the document that `skip` does not exclude. Returns the spec only if nothing was
    skipped and nothing was wrong."""
    ctx = _Context(doc, file, limits)
    root: dict[str, Any] = doc.value
    name = _pipeline_name(ctx, root, default_name)
    params: list[ParamSpec] = []
    raw_params = root.get("params")
    complete = not skip(("params",)) and not skip(("tasks",))
    if isinstance(raw_params, dict):
        for param_name, raw in raw_params.items():
            if skip(("params", param_name)):
                complete = False
                continue
            params.append(_param(ctx, param_name, raw))
    tasks: list[tuple[JsonPath, TaskSpec]] = []
    raw_tasks = root.get("tasks")
    for i, raw_task in enumerate(raw_tasks if isinstance(raw_tasks, list) else []):
        if skip(("tasks", i)) or not isinstance(raw_task, dict):
            complete = False
            continue
        task = _task(ctx, ("tasks", i), raw_task)
        if root.get("cache") is True and "cache" not in raw_task:
            task = replace(task, cache=True)  # the pipeline's default; a task's own `cache: false` wins
        tasks.append((("tasks", i), task))
    schedules = () if skip(("schedule",)) else _schedules(ctx, root.get("schedule"), params)
    raw_timeout = root.get("timeout")
    timeout = None if raw_timeout is None or skip(("timeout",)) else _timeout(ctx, ("timeout",), raw_timeout)
    raw_concurrency = root.get("concurrency")
    concurrency = (
        Concurrency(limit=raw_concurrency.get("limit", 1), policy=raw_concurrency.get("policy", "queue"))
        if isinstance(raw_concurrency, dict) and not skip(("concurrency",))
        else None
    )
    raw_priority = root.get("priority")
    priority = raw_priority if isinstance(raw_priority, int) and not skip(("priority",)) else 0
    if not complete or ctx.problems or not tasks:
        return None, ctx.problems
    resolved = resolve_references(tasks)
    expanded = expand_sweeps(resolved, ctx.matrices, ctx.limits, ctx.report)
    if ctx.problems or expanded is None:
        return None, ctx.problems
    description = root.get("description")
    notify = _notify(ctx, root.get("notify"))
    if ctx.problems:
        return None, ctx.problems
    spec = PipelineSpec(
        name=name,
        tasks=expanded,
        params=tuple(params),
        description=description,
        notify=notify,
        schedules=schedules,
        timeout=timeout,
        concurrency=concurrency,
        priority=priority,
    )
    return spec, ctx.problems


def _notify(ctx: _Context, raw: Any) -> tuple[dict[str, Any], ...]:
    """`notify:` entries (their shape checked by the JSON Schema), each with exactly one channel."""
    entries: list[dict[str, Any]] = []
    for i, entry, problem in notify_entries(raw):
        if problem is not None:
            ctx.report(("notify", i), problem)
        else:
            entries.append(entry)
    return tuple(entries)


def _pipeline_name(ctx: _Context, root: dict[str, Any], default_name: str) -> str:
    name = root.get("name")
    if isinstance(name, str):
        return name
    if not _is_dns_label(default_name):
        ctx.report(
            (),
            f"the pipeline has no `name:` and its directory name `{default_name}` is not a valid pipeline name "
            "(lowercase letters, digits and `-`, at most 63 characters); add a `name:`",
        )
    return default_name


def _is_dns_label(text: str) -> bool:
    if not text or len(text) > _DNS_LABEL_MAX or text[0] == "-" or text[-1] == "-":
        return False
    return all(c.isascii() and (c.islower() or c.isdigit() or c == "-") for c in text)


def _param(ctx: _Context, name: str, raw: Any) -> ParamSpec:
    path: JsonPath = ("params", name)
    if not isinstance(raw, dict):  # shorthand: the default itself, or nothing for a required string parameter
        if raw is None:
            return ParamSpec(name=name)
        type_ = infer_type(raw)
        try:
            return ParamSpec(name=name, default=_param_value(ctx, path, raw, type_), type=type_)
        except ValueError as error:
            ctx.report(path, f"default {error}")
            return ParamSpec(name=name, type=type_)
    default_raw = raw.get("default")
    type_ = raw.get("type") or (infer_type(default_raw) if default_raw is not None else "string")
    choices: list[str] = []
    for j, choice in enumerate(raw.get("choices", ())):
        try:
            choices.append(_param_value(ctx, (*path, "choices", j), choice, type_))
        except ValueError as error:
            ctx.report((*path, "choices", j), f"choice {error}")
    default: str | None = None
    if default_raw is not None:
        try:
            default = _param_value(ctx, (*path, "default"), default_raw, type_)
        except ValueError as error:
            ctx.report((*path, "default"), f"default {error}")
    param = ParamSpec(
        name=name, default=default, description=raw.get("description"), type=type_, choices=tuple(choices)
    )
    if default is not None and not in_choices(param, default):
        ctx.report((*path, "default"), f"default `{default}` is not one of the choices: {', '.join(choices)}")
    return param


def _param_value(ctx: _Context, path: JsonPath, raw: Any, type_: str) -> str:
    """A default or choice as the parameter's canonical string: as written when that fits the type (`0.10`), else
    the YAML value's own spelling (`0x10` → `16`, `1_000` → `1000`), so any number YAML reads is a number here too."""
    try:
        return coerce(type_, ctx.text(path, raw))
    except ValueError:
        if isinstance(raw, str):
            raise
        return coerce(type_, stringify(raw))


def _task(ctx: _Context, path: JsonPath, raw: dict[str, Any]) -> TaskSpec:
    """Only the fields present are normalised; TaskSpec's defaults stand for the rest."""
    fields: dict[str, Any] = {}
    for key, value in raw.items():
        field, convert = _TASK_FIELDS[key]
        if field in fields:
            ctx.report(
                (*path, key),
                f"use either `{field}` or its older spelling `{LEGACY_ALIASES[field]}`, not both",
                at_key=True,
            )
        fields[field] = convert(ctx, (*path, key), value)
    outputs = fields.pop("outputs", None)
    if outputs is not None:
        fields["artifacts"], fields["results"] = outputs
    fields.pop("inputs", None)
    matrix = fields.pop("matrix", None)
    if matrix is not None:
        ctx.matrices[path] = matrix
    if "mounts" in fields or "secrets" in fields or "config_maps" in fields:
        _check_volumes(ctx, path, raw, fields)
    if "mounts" in fields or "ephem_volumes" in fields:
        _attach_ephemeral(ctx, path, raw, fields)
    if fields.get("timeout", 0.0) is None:
        del fields["timeout"]
    return TaskSpec(**fields)


def _same(ctx: _Context, path: JsonPath, value: Any) -> Any:
    return value


def _strings(ctx: _Context, path: JsonPath, value: list[Any]) -> tuple[str, ...]:
    return tuple([ctx.text((*path, j), item) for j, item in enumerate(value)])


def _string_map(ctx: _Context, path: JsonPath, value: dict[str, Any]) -> dict[str, str]:
    return {key: ctx.text((*path, key), item) for key, item in value.items()}


def _integer(ctx: _Context, path: JsonPath, value: float) -> int:
    return int(value)  # the schema's "integer" admits 2.0


def _listed(value: Any) -> list[Any]:
    """The single-entry shorthand (`mounts: {…}`, `secrets: name`) as a one-entry list."""
    return value if isinstance(value, list) else [value]


def _command(ctx: _Context, path: JsonPath, raw: str | list[Any]) -> tuple[str, ...]:
    if isinstance(raw, list):
        return _strings(ctx, path, raw)
    if _NOT_SIMPLE.search(raw) is None:
        words = raw.split()  # what shlex.split returns when there is nothing to unquote, 5x faster
    else:
        try:
            words = shellwords.split(raw)  # shlex.split's answer, in linear time
        except ValueError as error:
            ctx.report(path, f"`command` cannot be split into words: {error}; quote carefully or write it as a list")
            return ()
    if not words:
        ctx.report(path, "`command` is empty")
    return tuple(words)


def _depends(ctx: _Context, path: JsonPath, raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    return tuple(dict.fromkeys(raw))  # a name listed twice is harmless; keep the first


def _mounts(ctx: _Context, path: JsonPath, raw: Any) -> tuple[Mount, ...]:
    return tuple(
        [
            Mount(
                name=m["name"],
                path=m["path"],
                claim=m.get("claim", ""),  # none: an ephemeral volume's mount (`_attach_ephemeral`)
                read_only=bool(m.get("read_only", False)),
                sub_path=m.get("sub_path"),
            )
            for m in _listed(raw)
        ]
    )


def _secrets(ctx: _Context, path: JsonPath, raw: Any) -> tuple[SecretMount, ...]:
    out: list[SecretMount] = []
    for s in _listed(raw):
        if isinstance(s, str):
            out.append(SecretMount(name=s, path=f"{SECRETS_DIR}/{s}"))
        else:
            out.append(SecretMount(name=s["name"], path=s["path"], sub_path=s.get("sub_path"), mode=s.get("mode")))
    return tuple(out)


def _config_maps(ctx: _Context, path: JsonPath, raw: Any) -> tuple[ConfigMapMount, ...]:
    out: list[ConfigMapMount] = []
    for c in _listed(raw):
        if isinstance(c, str):
            out.append(ConfigMapMount(name=c, path=f"{CONFIG_DIR}/{c}"))
        else:
            out.append(ConfigMapMount(name=c["name"], path=c["path"], sub_path=c.get("sub_path")))
    return tuple(out)


def _check_volumes(ctx: _Context, path: JsonPath, raw: dict[str, Any], fields: dict[str, Any]) -> None:
    """Two volumes at one path, or two mounts with one name, make Kubernetes reject the pod at run time; say so at
    commit time instead."""
    seen: dict[str, str] = {}
    for field in ("mounts", "secrets", "config_maps"):
        key = field if field in raw else LEGACY_ALIASES[field]
        single = not isinstance(raw.get(key), list)
        for j, volume in enumerate(fields.get(field, ())):
            where = key if single else f"{key}[{j}]"
            mount_path = volume.path.rstrip("/") or "/"
            if mount_path in seen:
                location: JsonPath = (*path, key) if single else (*path, key, j)
                ctx.report(location, f"`{where}` mounts at `{mount_path}`, which `{seen[mount_path]}` already uses")
            else:
                seen[mount_path] = where
    names: set[str] = set()
    key = "mounts" if "mounts" in raw else "mount"
    for j, mount in enumerate(fields.get("mounts", ())):
        if mount.name in names:
            ctx.report((*path, key, j, "name"), f"mount name `{mount.name}` is used twice in this task")
        names.add(mount.name)


def _ephem_volumes(ctx: _Context, path: JsonPath, raw: Any) -> tuple[EphemeralVolume, ...]:
    return tuple(
        EphemeralVolume(
            name=v["name"],
            medium=v.get("medium") or None,
            size_limit=None if v.get("size_limit") is None else stringify(v["size_limit"]),
        )
        for v in raw
    )


def _attach_ephemeral(ctx: _Context, path: JsonPath, raw: dict[str, Any], fields: dict[str, Any]) -> None:
    """The original Odin's ephemeral volumes: a `mounts` entry without `claim` mounts the `ephem_volumes` entry of
    its name. Each such mount moves to its volume's `paths`; a claim-less mount naming no volume, and a volume no
    mount uses, are problems (one would fail at run time, the other does nothing)."""
    volumes: dict[str, EphemeralVolume] = {}
    for j, volume in enumerate(fields.get("ephem_volumes", ())):
        if volume.name in volumes:
            ctx.report((*path, "ephem_volumes", j, "name"), f"ephemeral volume `{volume.name}` is declared twice")
        volumes[volume.name] = volume
    key = "mounts" if "mounts" in raw else "mount"
    single = not isinstance(raw.get(key), list)
    paths: dict[str, list[str]] = {name: [] for name in volumes}
    kept: list[Mount] = []
    for j, mount in enumerate(fields.get("mounts", ())):
        if mount.claim:
            kept.append(mount)
        elif mount.name in paths:
            paths[mount.name].append(mount.path)
        else:
            where: JsonPath = (*path, key) if single else (*path, key, j)
            ctx.report(
                where,
                f"mount `{mount.name}` has no `claim`: name a PersistentVolumeClaim, or declare `{mount.name}` "
                "under `ephem_volumes`",
                at_key=True,
            )
    for j, volume in enumerate(fields.get("ephem_volumes", ())):
        if not paths.get(volume.name):
            ctx.report(
                (*path, "ephem_volumes", j),
                f"ephemeral volume `{volume.name}` is not mounted: add `{{name: {volume.name}, path: /...}}` to "
                "`mounts`",
            )
    if "mounts" in fields:
        fields["mounts"] = tuple(kept)
    if volumes:
        fields["ephem_volumes"] = tuple(
            EphemeralVolume(v.name, tuple(paths.get(v.name, ())), v.medium, v.size_limit) for v in volumes.values()
        )


def _resources(ctx: _Context, path: JsonPath, raw: dict[str, Any]) -> Resources:
    requests = raw.get("requests")
    limits = raw.get("limits")
    # Numbers in canonical form (`0.50` → "0.5", `1_000` → "1000"): Kubernetes parses these, not the user's spelling.
    resources = Resources(
        requests=None if requests is None else stringify(requests),
        limits=None if limits is None else stringify(limits),
    )
    amounts = {}
    for field, quantity in (("requests", resources.requests), ("limits", resources.limits)):
        if quantity is not None:
            try:
                amounts[field] = parse_quantity(quantity)
            except ValueError:
                ctx.report((*path, field), f"`{path[-1]}.{field}` ({quantity}) is out of range")
    if len(amounts) == 2 and amounts["requests"] > amounts["limits"]:
        ctx.report(
            (*path, "requests"),
            f"`{path[-1]}.requests` ({resources.requests}) is more than `{path[-1]}.limits` ({resources.limits})",
        )
    return resources


def _timeout(ctx: _Context, path: JsonPath, raw: str | float) -> float | None:
    try:
        seconds = float(raw) if not isinstance(raw, str) else parse_duration(raw)
    except (OverflowError, ValueError):
        seconds = math.inf
    if not 0 < seconds < _MAX_TIMEOUT:
        ctx.report(path, f"`timeout` must be more than 0 seconds and less than a year, not `{raw}`")
        return None
    return seconds


def _schedules(ctx: _Context, raw: Any, declared: Sequence[ParamSpec]) -> tuple[Schedule, ...]:
    """`schedule:` as written (a string, a mapping, or a list of them) → `Schedule`s; a cron expression croniter
    cannot read, a time zone zoneinfo does not know, or a `params:` value the pipeline's `params:` refuses is a
    problem at the value."""
    if raw is None:
        return ()
    entries: list[tuple[JsonPath, Any]] = (
        [(("schedule", i), entry) for i, entry in enumerate(raw)] if isinstance(raw, list) else [(("schedule",), raw)]
    )
    found: list[Schedule] = []
    for path, written in entries:
        if isinstance(written, str):
            entry: dict[str, Any] = {"cron": written}
            cron_path = path
        elif isinstance(written, dict) and isinstance(written.get("cron"), str):
            entry, cron_path = written, (*path, "cron")
        else:
            continue  # the schema reported it
        problem = cron_problem(entry["cron"])
        if problem is not None:
            ctx.report(cron_path, problem)
            continue
        zone = entry.get("timezone", "UTC")
        problem = timezone_problem(zone) if isinstance(zone, str) else None
        if problem is not None:
            ctx.report((*path, "timezone"), problem)
            continue
        given: dict[str, Any] = entry.get("params") or {}
        values, param_problems = check_given(declared, given)
        for bad in param_problems:
            if bad.name is None:
                ctx.report((*path, "params") if "params" in entry else path, bad.message)
            else:
                unknown = all(p.name != bad.name for p in declared)
                ctx.report((*path, "params", bad.name), bad.message, at_key=unknown)
        if param_problems:
            continue
        cron = " ".join(entry["cron"].split())
        params = tuple(sorted(values.items()))
        found.append(Schedule(cron=cron, timezone=zone, catchup=entry.get("catchup", "none"), params=params))
    return tuple(found)


def _snake_case(ctx: _Context, path: JsonPath, raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        snake = SECURITY_CONTEXT_KEYS.get(key, key)
        if snake in out:
            ctx.report((*path, key), f"`{key}` and `{snake}` are the same setting; keep one", at_key=True)
        out[snake] = _snake_case(ctx, (*path, key), value) if isinstance(value, dict) else value
    return out


def _security_context(ctx: _Context, path: JsonPath, raw: dict[str, Any]) -> dict[str, Any]:
    return _snake_case(ctx, path, raw)


def _tolerations(ctx: _Context, path: JsonPath, raw: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    return tuple([_toleration(ctx, (*path, j), toleration) for j, toleration in enumerate(raw)])


def _toleration(ctx: _Context, path: JsonPath, raw: dict[str, Any]) -> dict[str, Any]:
    """Kept in Kubernetes' own spelling (`tolerationSeconds`): the executor passes tolerations through unchanged."""
    out = dict(raw)
    if "toleration_seconds" in out:
        if "tolerationSeconds" in out:
            ctx.report(
                (*path, "toleration_seconds"),
                "`toleration_seconds` and `tolerationSeconds` are the same setting; keep one",
                at_key=True,
            )
        out["tolerationSeconds"] = out.pop("toleration_seconds")
    return out


def _elastic(ctx: _Context, path: JsonPath, raw: dict[str, Any]) -> dict[str, Any]:
    low, high = raw.get("min_replicas"), raw.get("max_replicas")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        ctx.report((*path, "min_replicas"), f"`elastic.min_replicas` ({low}) is more than `max_replicas` ({high})")
    return dict(raw)


def _inputs(ctx: _Context, path: JsonPath, raw: Any) -> None:
    ctx.report(
        path,
        "`inputs` (paths recorded for lineage) is no longer used: read another task's outputs as "
        "`${tasks.TASK.artifacts.NAME}` or `${tasks.TASK.results.NAME}` in command, args or env, and the run records "
        "what each task read; delete `inputs`",
        at_key=True,
    )


def _outputs(ctx: _Context, path: JsonPath, raw: Any) -> tuple[tuple[Artifact, ...], tuple[Result, ...]] | None:
    """Declared artifacts and results: names unique across both, artifact paths normalised, inside `${OUTPUT_PATH}`
    and not inside one another (each file is recorded once)."""
    if isinstance(raw, list):
        ctx.report(
            path,
            "`outputs` is now a mapping of named outputs, not a list of paths: write files under `${OUTPUT_PATH}` and "
            "declare them as `outputs: {artifacts: [{name: model, path: model.pt}], results: [accuracy]}` "
            "(see docs/pipeline-format.md, Outputs)",
        )
        return None
    names: dict[str, JsonPath] = {}
    artifacts: list[Artifact] = []
    results: list[Result] = []
    paths: dict[str, str] = {}
    for kind in ("artifacts", "results"):
        for j, entry in enumerate(raw.get(kind) or ()):
            where: JsonPath = (*path, kind, j)
            name = entry if isinstance(entry, str) else entry["name"]
            name_path = where if isinstance(entry, str) else (*where, "name")
            if name in names:
                line, _ = ctx.doc.position(names[name])
                ctx.report(name_path, f"output `{name}` is declared twice (first at line {line})")
                continue
            names[name] = name_path
            description = None if isinstance(entry, str) else entry.get("description")
            if kind == "results":
                results.append(Result(name=name, description=description))
                continue
            written = name if isinstance(entry, str) else entry.get("path", name)
            normalised = artifact_path(written)
            if isinstance(normalised, tuple):
                ctx.report(where if isinstance(entry, str) else (*where, "path"), normalised[0])
                continue
            artifacts.append(Artifact(name=name, path=normalised, description=description))
            paths[normalised] = name
    for artifact in artifacts:  # one pass over each path's parents: linear in the total length of the paths
        parts = artifact.path.split("/")
        for k in range(1, len(parts)):
            parent = "/".join(parts[:k])
            if parent in paths:
                ctx.report(
                    names[artifact.name],
                    f"artifact `{artifact.name}` (`{artifact.path}`) is inside artifact `{paths[parent]}` "
                    f"(`{parent}`); declare one or the other",
                )
                break
    seen_paths: dict[str, str] = {}
    for artifact in artifacts:
        if artifact.path in seen_paths:
            ctx.report(
                names[artifact.name],
                f"artifacts `{seen_paths[artifact.path]}` and `{artifact.name}` have the same path `{artifact.path}`",
            )
        seen_paths.setdefault(artifact.path, artifact.name)
    if RESULTS_FILE in names:  # an identifier cannot contain `.`; kept as a guard should the name rule change
        ctx.report(names[RESULTS_FILE], f"`{RESULTS_FILE}` is reserved")
    return tuple(artifacts), tuple(results)


_PER_KEY = 20
"""Problems reported for the values of one matrix key; the rest are counted."""


def _bad_value(ctx: _Context, path: JsonPath, key: str, value: Any, first: int | None) -> str:
    if first is None:
        return f"`matrix.{key}` values must be finite numbers, not `{value}`"
    line, _ = ctx.doc.position((*path, first))
    return f"`matrix.{key}` lists `{value}` twice (first at line {line})"


def _when(ctx: _Context, path: JsonPath, raw: str) -> str:
    return raw.strip()  # parsed and checked with the other references (checks.py); kept as text for the frozen spec


def _matrix(ctx: _Context, path: JsonPath, raw: dict[str, list[Any]]) -> dict[str, list[tuple[MatrixValue, str]]]:
    matrix: dict[str, list[tuple[MatrixValue, str]]] = {}
    for key, values in raw.items():
        seen: dict[tuple[str, Any], int] = {}
        entries: list[tuple[MatrixValue, str]] = []
        bad = 0
        for j, value in enumerate(values):
            identity = ("bool" if isinstance(value, bool) else "str" if isinstance(value, str) else "num", value)
            if identity in seen or (isinstance(value, float) and not math.isfinite(value)):
                bad += 1
                if bad <= _PER_KEY:
                    ctx.report((*path, key, j), _bad_value(ctx, (*path, key), key, value, seen.get(identity)))
                continue
            seen[identity] = j
            entries.append((value, ctx.text((*path, key, j), value)))
        if bad > _PER_KEY:
            ctx.report((*path, key), f"and {bad - _PER_KEY} more values listed twice in `matrix.{key}`", at_key=True)
        matrix[key] = entries
    total = 1
    for entries in matrix.values():
        total *= len(entries)
        if total > ctx.limits.max_matrix:
            ctx.report(
                path,
                f"`matrix` makes more than {ctx.limits.max_matrix} combinations (the limit per task); "
                "split the sweep or shorten its lists",
                at_key=True,
            )
            break
    return matrix


_Convert = Callable[[_Context, JsonPath, Any], Any]
_TASK_FIELDS: dict[str, tuple[str, _Convert]] = {
    "name": ("name", _same),
    "image": ("image", _same),
    "command": ("command", _command),
    "args": ("args", _strings),
    "depends": ("depends", _depends),
    "env": ("env", _string_map),
    "mounts": ("mounts", _mounts),
    "mount": ("mounts", _mounts),
    "ephem_volumes": ("ephem_volumes", _ephem_volumes),
    "secrets": ("secrets", _secrets),
    "secret": ("secrets", _secrets),
    "config_maps": ("config_maps", _config_maps),
    "config_map": ("config_maps", _config_maps),
    "num_gpus": ("num_gpus", _integer),
    "num_workers": ("num_workers", _integer),
    "cpu": ("cpu", _resources),
    "memory": ("memory", _resources),
    "node_selector": ("node_selector", _string_map),
    "pull_policy": ("pull_policy", _same),
    "security_context": ("security_context", _security_context),
    "resource_type": ("resource_type", _same),
    "queue": ("queue", _same),
    "inputs": ("inputs", _inputs),
    "outputs": ("outputs", _outputs),
    "when": ("when", _when),
    "matrix": ("matrix", _matrix),
    "retries": ("retries", _integer),
    "timeout": ("timeout", _timeout),
    "service_account": ("service_account", _same),
    "image_pull_secrets": ("image_pull_secrets", _strings),
    "tolerations": ("tolerations", _tolerations),
    "elastic": ("elastic", _elastic),
    "cache": ("cache", _same),
}
"""main.yml task key → (TaskSpec field, converter). Legacy spellings map onto the same field."""
