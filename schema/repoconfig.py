"""`.odin.yml`: the repository-level file that says which pushes start which pipelines automatically.

Without it, a push runs every pipeline whose directory changed (docs/git-sync.md). Teams need more than that: a
training pipeline that must also run when a shared library changes (`paths`), notebooks and READMEs that should not
start a GPU job (`ignore_paths`), a nightly evaluation that only ever starts by hand (`branches: []`). This module reads
and validates the file the same way `main.yml` is read — safe, bounded YAML with `file:line:column` problems — and
answers the sync's two questions: does a pipeline run on this branch, and does this changed path count for it; and the
tag follower's one: does a pipeline run for this tag.

Patterns are gitignore patterns (via `pathspec`), the syntax every user of git already writes: `*.md` matches in any
directory, a leading `/` anchors to the repository root, a trailing `/` means a directory and everything below it.
They are matched with RE2 (pathspec's "re2" backend), not Python's backtracking `re`: a pattern such as `a*a*a*a*b`
against a long path costs Python's engine time polynomial in the path (14 s for a 400-character path) in the sync's
thread, where RE2 is linear whatever the pattern.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from .limits import Limits
from .located import LocatedDocument, format_path
from .model import ParamSpec, Schedule
from .notify import SECRET_REFERENCE_PATTERN, literal_secret_problem, notify_entries
from .params import check_given
from .problems import Problem, cap_problems
from .schedules import cron_problem, timezone_problem
from .suggest import did_you_mean, suggestion_budget
from .yamlload import load_yaml

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator, ValidationError
    from pathspec import GitIgnoreSpec

REPO_CONFIG_FILE = ".odin.yml"
REPO_SCHEMA_FILE = "repo.schema.json"
_FILTER_KEYS = ("branches", "tags", "paths", "ignore_paths")
_EMPTY_MESSAGE = "file is empty; expected a mapping with `tasks:`"  # how `load_yaml` reports a document-less file


@dataclass(frozen=True, slots=True)
class PipelineFilters:
    """When one pipeline runs automatically. `branches=None` means any branch; `()` means never. `tags`: the tags
    (of those the repository follows) whose runs include it; None: every one, unless `branches` is `()`."""

    branches: tuple[str, ...] | None = None
    paths: tuple[str, ...] = ()
    ignore_paths: tuple[str, ...] = ()
    tags: tuple[str, ...] | None = None

    @property
    def is_default(self) -> bool:
        return self.branches is None and self.tags is None and not self.paths and not self.ignore_paths

    def runs_on(self, branch: str) -> bool:
        return self.branches is None or (bool(self.branches) and _spec(self.branches).match_file(branch))

    def runs_on_tag(self, tag: str) -> bool:
        """Does a new or moved tag start the pipeline? Its `tags` patterns decide; without them every followed tag
        does, except for a pipeline that starts only by hand (`branches: []`). A tag is no change, so `paths` and
        `ignore_paths` do not apply (as GitHub Actions and GitLab's `changes:` treat tag pushes)."""
        if self.tags is not None:
            return bool(self.tags) and _spec(self.tags).match_file(tag)
        return self.branches != ()

    def counts(self, path: str, *, owned: bool) -> bool:
        """Does a change to `path` count for the pipeline? `owned`: the path is inside the pipeline's directory."""
        if not owned and not (self.paths and _spec(self.paths).match_file(path)):
            return False
        return not (self.ignore_paths and _spec(self.ignore_paths).match_file(path))


@dataclass(frozen=True, slots=True)
class RepoSchedule:
    """One entry of `.odin.yml`'s `schedules:`, its cron and zone checked. Its `params` can only be checked against
    the pipeline they start, which the controller reads from the same commit (`resolve`); the positions of the entry
    and of each parameter are kept so that a bad parameter is a problem at its own line of `.odin.yml`."""

    pipeline: str
    cron: str
    timezone: str = "UTC"
    catchup: str = "none"
    params: Mapping[str, Any] = field(default_factory=dict)
    file: str = REPO_CONFIG_FILE
    at: tuple[int, int] = (1, 1)  # the entry
    pipeline_at: tuple[int, int] = (1, 1)
    params_at: Mapping[str, tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=dict)  # (key, value)

    def resolve(self, declared: Sequence[ParamSpec] | None) -> tuple[Schedule | None, list[Problem]]:
        """The schedule for a pipeline declaring `declared` parameters (None: no valid pipeline there), or the
        problems on `.odin.yml` that keep it from starting."""
        if declared is None:
            line, column = self.pipeline_at
            message = f"schedule for `{self.pipeline}`: no valid pipeline in that directory at this commit"
            return None, [Problem(self.file, line, column, message)]
        values, param_problems = check_given(declared, self.params)
        if param_problems:
            problems: list[Problem] = []
            for problem in param_problems:
                key_at, value_at = self.params_at.get(problem.name or "", (self.at, self.at))
                unknown = all(p.name != problem.name for p in declared)
                line, column = key_at if unknown else value_at
                problems.append(Problem(self.file, line, column, f"schedule for `{self.pipeline}`: {problem.message}"))
            return None, problems
        params = tuple(sorted(values.items()))
        return Schedule(self.cron, self.timezone, self.catchup, params, source=self.file), []


@dataclass(frozen=True, slots=True)
class RepoConfig:
    """A valid `.odin.yml`. `pipelines` keys are pipeline directories."""

    defaults: PipelineFilters = field(default_factory=PipelineFilters)
    pipelines: Mapping[str, Mapping[str, tuple[str, ...]]] = field(default_factory=dict)
    notify: tuple[dict[str, Any], ...] = ()
    """Notifications for every pipeline's runs (docs/notifications.md); no part of the filters (`is_default`)."""
    schedules: tuple[RepoSchedule, ...] = ()
    """Schedules of pipelines (`schedules:`); no part of the filters (`is_default`)."""

    def schedules_for(self, pipeline: str) -> tuple[RepoSchedule, ...]:
        return tuple(s for s in self.schedules if s.pipeline == pipeline)

    def filters_for(self, pipeline: str) -> PipelineFilters:
        """The pipeline's filters: its own keys, and the defaults for the keys it does not set."""
        own = self.pipelines.get(pipeline, {})
        return PipelineFilters(
            branches=own.get("branches", self.defaults.branches),
            paths=own.get("paths", self.defaults.paths),
            ignore_paths=own.get("ignore_paths", self.defaults.ignore_paths),
            tags=own.get("tags", self.defaults.tags),
        )

    @property
    def is_default(self) -> bool:
        return self.defaults.is_default and not self.pipelines


@dataclass(frozen=True, slots=True)
class RepoConfigResult:
    config: RepoConfig | None
    problems: list[Problem] = field(default_factory=list)


def load_repo_config(data: bytes, *, file: str = REPO_CONFIG_FILE, limits: Limits | None = None) -> RepoConfigResult:
    """Validate `.odin.yml` bytes. Never raises for bad content: problems are values, located in the file, at most
    `limits.max_problems` of them (then "and N more problems")."""
    limits = limits or Limits()
    with suggestion_budget():
        result = _load(data, file, limits)
    if result.problems:
        return RepoConfigResult(result.config, cap_problems(result.problems, limits.max_problems))
    return result


def _load(data: bytes, file: str, limits: Limits) -> RepoConfigResult:
    doc, problems = load_yaml(data, file=file, limits=limits)
    if doc is None:
        if [p.message for p in problems] == [_EMPTY_MESSAGE]:
            return RepoConfigResult(RepoConfig())  # empty, or only comments: configures nothing
        return RepoConfigResult(None, problems)
    root = doc.value
    if root is None:  # an empty file (or only comments) configures nothing
        return RepoConfigResult(RepoConfig(), problems) if not problems else RepoConfigResult(None, problems)
    if not isinstance(root, dict):
        return RepoConfigResult(None, [*problems, doc.problem(file, (), "the top level must be a mapping")])
    problems.extend(_schema_problems(doc, file))
    if not problems:
        problems.extend(_pattern_problems(doc, file))
        notify = notify_entries(root.get("notify"))
        problems.extend(doc.problem(file, ("notify", i), message) for i, _, message in notify if message)
        schedules, schedule_problems = _schedules(doc, file)
        problems.extend(schedule_problems)
    if problems:
        return RepoConfigResult(None, sorted(set(problems)))
    defaults = root.get("defaults") or {}
    config = RepoConfig(
        defaults=PipelineFilters(
            branches=tuple(defaults["branches"]) if "branches" in defaults else None,
            paths=tuple(defaults.get("paths", ())),
            ignore_paths=tuple(defaults.get("ignore_paths", ())),
            tags=tuple(defaults["tags"]) if "tags" in defaults else None,
        ),
        pipelines={
            name: {key: tuple(value) for key, value in (entry or {}).items()}
            for name, entry in (root.get("pipelines") or {}).items()
        },
        notify=tuple(entry for _, entry, _ in notify),
        schedules=schedules,
    )
    return RepoConfigResult(config)


def _schedules(doc: LocatedDocument, file: str) -> tuple[tuple[RepoSchedule, ...], list[Problem]]:
    """`schedules:` entries (their shape checked by the JSON Schema) with their cron and zone checked."""
    found: list[RepoSchedule] = []
    problems: list[Problem] = []
    for i, entry in enumerate(doc.value.get("schedules") or ()):
        path = ("schedules", i)
        cron = " ".join(entry["cron"].split())
        problem = cron_problem(cron)
        if problem is not None:
            problems.append(doc.problem(file, (*path, "cron"), problem))
            continue
        zone = entry.get("timezone", "UTC")
        problem = timezone_problem(zone)
        if problem is not None:
            problems.append(doc.problem(file, (*path, "timezone"), problem))
            continue
        params = dict(entry.get("params") or {})
        found.append(
            RepoSchedule(
                pipeline=entry["pipeline"],
                cron=cron,
                timezone=zone,
                catchup=entry.get("catchup", "none"),
                params=params,
                file=file,
                at=doc.position(path),
                pipeline_at=doc.position((*path, "pipeline")),
                params_at={
                    name: (doc.key_position((*path, "params", name)), doc.position((*path, "params", name)))
                    for name in params
                },
            )
        )
    return tuple(found), problems


def repo_schema() -> dict[str, Any]:
    """The JSON Schema of `.odin.yml` (a copy: callers may modify it)."""
    return copy.deepcopy(_schema())


@functools.cache
def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(files(__package__).joinpath(REPO_SCHEMA_FILE).read_text(encoding="utf-8"))
    return loaded


@functools.cache
def _validator() -> Draft202012Validator:
    from jsonschema import Draft202012Validator  # on first use: `odin run` never reads a `.odin.yml`

    return Draft202012Validator(_schema(), format_checker=None)


_BACKEND = "re2"  # linear-time matching; pathspec raises at once if google-re2 is missing, rather than backtracking


@functools.lru_cache(maxsize=256)
def _spec(patterns: tuple[str, ...]) -> GitIgnoreSpec:
    from pathspec import GitIgnoreSpec  # on first use: `odin run` and the CLIs' start-up never match patterns

    return GitIgnoreSpec.from_lines(patterns, backend=_BACKEND)


def _schema_problems(doc: LocatedDocument, file: str) -> list[Problem]:
    out: list[Problem] = []
    for error in _validator().iter_errors(doc.value):
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = list((error.schema or {}).get("properties", {})) if isinstance(error.schema, dict) else []
            for key in error.instance:
                if key not in allowed:
                    hint = did_you_mean(str(key), allowed)
                    where = f" in `{format_path(path)}`" if path else ""
                    out.append(doc.problem(file, (*path, key), f"unknown field `{key}`{where}{hint}", at_key=True))
            continue
        out.append(doc.problem(file, path, _message(error, path), at_key=error.validator == "propertyNames"))
    return out


_TYPE_WORDS = {"array": "a list", "object": "a mapping", "string": "a string", "integer": "an integer"}


def _message(error: ValidationError, path: Sequence[str | int]) -> str:
    label = f"`{format_path(path)}`" if path else "the document"
    keyword = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    if keyword == "type":
        return f"{label} must be {_TYPE_WORDS.get(str(error.validator_value), str(error.validator_value))}"
    if keyword == "const":
        return f"{label} must be {json.dumps(error.validator_value)}"
    if keyword == "uniqueItems":
        return f"{label} lists the same pattern twice"
    if keyword == "minLength":
        return f"{label} must not be empty"
    if keyword == "pattern" and error.validator_value == SECRET_REFERENCE_PATTERN:
        return literal_secret_problem(label, error.instance)
    if keyword == "pattern" and schema.get("patternErrorMessage"):
        return f"{label}: `{error.instance}` {schema['patternErrorMessage']}"
    if keyword == "enum" and isinstance(error.validator_value, list):
        return f"{label} must be one of {', '.join(map(str, error.validator_value))}, not `{error.instance}`"
    if "propertyNames" in error.absolute_schema_path:
        hint = schema.get("patternErrorMessage") or "is not allowed here"
        return f"`{error.instance}` {hint}"
    return f"{label}: {error.message}"


def _pattern_problems(doc: LocatedDocument, file: str) -> list[Problem]:
    """Patterns that gitignore syntax cannot compile (`[z-a]`, a lone `\\`), located at the pattern itself."""
    from pathspec import GitIgnoreSpec

    out: list[Problem] = []
    root: dict[str, Any] = doc.value
    sections: list[tuple[tuple[str | int, ...], Mapping[str, Any]]] = []
    if isinstance(root.get("defaults"), dict):
        sections.append((("defaults",), root["defaults"]))
    for name, entry in (root.get("pipelines") or {}).items():
        if isinstance(entry, dict):
            sections.append((("pipelines", name), entry))
    for prefix, section in sections:
        for key in _FILTER_KEYS:
            for index, pattern in enumerate(section.get(key) or ()):
                try:
                    GitIgnoreSpec.from_lines([pattern], backend=_BACKEND)
                except re.error as e:  # e.msg leaves out the position inside the translated regex
                    out.append(doc.problem(file, (*prefix, key, index), f"`{pattern}` is not a valid pattern: {e.msg}"))
                except ValueError:
                    message = f"`{pattern}` is not a valid gitignore-style pattern"
                    out.append(doc.problem(file, (*prefix, key, index), message))
    return out
