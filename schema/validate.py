"""The entry points: `main.yml` bytes → a `ValidationResult`, and files or directories → results for each pipeline.

The stages run in a fixed order, each adding located problems: safe YAML loading, the JSON Schema (a compiled yes/no
check first, jsonschema's explanations only for files that fail it), checks across tasks, then normalisation into the
`PipelineSpec`. Nothing here raises for bad input: a hostile or broken file is a list of problems like any other.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .checks import check_pipeline
from .legacy import accept_legacy
from .limits import DEFAULT_LIMITS, Limits, size_message
from .located import JsonPath
from .model import PipelineSpec
from .normalize import build_spec
from .problems import Problem, cap_problems, errors_and_warnings
from .schemaerrors import schema_problems
from .schemafile import fast_check
from .suggest import suggestion_budget
from .yamlload import load_yaml

PIPELINE_FILE = "main.yml"


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """The outcome for one file: the normalised spec when it is valid, else the problems (sorted by position).

    `problems` are the errors. `warnings` (severity `warning`) never make a file invalid or block a run, but are shown
    wherever problems are, valid file or not. `notes` never make a file invalid either: they say what Odin ignored
    of the original Odin's format (`schema/legacy.py`) and are only printed by `odinctl validate`."""

    spec: PipelineSpec | None
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.spec is not None and not self.problems

    @property
    def shown(self) -> list[Problem]:
        """The errors then the warnings: what the commit, the API and `odinctl validate` list."""
        return [*self.problems, *self.warnings]


def load_pipeline(data: bytes, *, file: str, default_name: str, limits: Limits | None = None) -> ValidationResult:
    """Validate and normalise one `main.yml`.

    `file` is how problems name the file (repository-relative path, or as given on the command line);
    `default_name` is the pipeline name used when the file has no `name:` (the directory's name).
    """
    limits = limits or DEFAULT_LIMITS
    notes: list[Problem] = []
    with suggestion_budget():
        spec, problems, incomplete = _load(data, file, default_name, limits, notes)
    notes = cap_problems(notes, limits.max_problems)
    errors, warned = errors_and_warnings(problems)
    warnings = cap_problems(warned, limits.max_problems)
    if errors:
        return ValidationResult(None, cap_problems(errors, limits.max_problems, incomplete=incomplete), notes, warnings)
    return ValidationResult(spec, [], notes, warnings)


def _load(
    data: bytes, file: str, default_name: str, limits: Limits, notes: list[Problem]
) -> tuple[PipelineSpec | None, list[Problem], bool]:
    doc, problems = load_yaml(data, file=file, limits=limits)
    if doc is None:
        return None, problems, False
    root = doc.value
    if root is None:
        return None, [*problems, Problem(file, 1, 1, "file is empty; expected a mapping with `tasks:`")], False
    if not isinstance(root, dict):
        kind = "a list" if isinstance(root, list) else "a single value"
        message = f"the top level must be a mapping with `tasks:`, not {kind}"
        return None, [*problems, doc.problem(file, (), message)], False
    notes.extend(accept_legacy(doc, file))
    invalid: set[JsonPath] = set()
    incomplete = False
    if not fast_check()(root):
        found, invalid, incomplete = schema_problems(doc, file, max_errors=10 * limits.max_problems)
        problems.extend(found)
    problems.extend(check_pipeline(doc, file))

    def skip(path: JsonPath) -> bool:
        return () in invalid or path in invalid

    spec, found = build_spec(doc, file, default_name, skip, limits)
    problems.extend(found)
    return spec, problems, incomplete


def validate_path(paths: Iterable[Path], *, limits: Limits | None = None) -> list[tuple[Path, ValidationResult]]:
    """Validate `main.yml` files, pipeline directories or whole repositories, offline (`odinctl validate`).

    A file is validated whatever its name; a directory is searched for `main.yml` files at any depth, the way the
    controller finds pipelines in a commit: never inside `.git`, never through symlinked directories, and a symlink
    named `main.yml` is not a pipeline. Each pipeline's default name is its directory's name. Results come in
    the order found, each file once. A path that does not exist raises FileNotFoundError (a usage error, not a
    problem with a pipeline).
    """
    limits = limits or DEFAULT_LIMITS
    results: list[tuple[Path, ValidationResult]] = []
    seen: set[Path] = set()
    for path in paths:
        for file in _pipeline_files(Path(path)):
            key = file.resolve()
            if key in seen:
                continue
            seen.add(key)
            results.append((file, validate_file(file, limits=limits)))
    return results


def validate_file(path: Path, *, limits: Limits | None = None) -> ValidationResult:
    """Validate one file from disk; an oversized file is rejected from its size alone, without reading it."""
    limits = limits or DEFAULT_LIMITS
    name = str(path)
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:
            return ValidationResult(None, [Problem(name, 1, 1, size_message(size, limits))])
        data = path.read_bytes()
    except OSError as error:
        return ValidationResult(None, [Problem(name, 1, 1, f"cannot read file: {error.strerror or error}")])
    return load_pipeline(data, file=name, default_name=path.resolve().parent.name, limits=limits)


def _pipeline_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no such file or directory: {path}")
    found: list[Path] = []
    for directory, subdirs, files in os.walk(path):
        subdirs[:] = sorted(d for d in subdirs if d != ".git")
        candidate = Path(directory) / PIPELINE_FILE
        if PIPELINE_FILE in files and not candidate.is_symlink():  # as the controller sees a commit's tree
            found.append(candidate)
    return found
