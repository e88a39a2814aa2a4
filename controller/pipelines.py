"""A pipeline as it is at one commit: its spec or its problems, and its files' content address.

Everything here reads from the commit's tree through the git adapter — never from a working copy — so what is
validated is exactly what will run, whatever the branch tip has become since.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from odin.controller.git.errors import FileMissing, FileTooLarge, GitError
from odin.controller.git.mirror import Mirror
from odin.controller.git.paths import TEMPLATE_FILE
from odin.controller.validation import IN_PROCESS, Validator
from odin.schema import Limits
from odin.schema.model import PipelineSpec
from odin.schema.problems import Problem, cap_problems

MAIN_FILE = "main.yml"

_Cached = tuple[PipelineSpec | None, list[Problem], list[Problem], bool, frozenset[str]]
"""What the validator's cache keeps of a pipeline: spec, problems, warnings, template?, its variables."""


@dataclass(frozen=True, slots=True)
class PipelineAt:
    """The outcome of reading one pipeline directory at one commit."""

    pipeline: str
    sha: str
    spec: PipelineSpec | None
    problems: list[Problem] = field(default_factory=list)
    tree: str | None = None  # git tree oid of the directory: the content address of ${WORK_PATH}
    warnings: list[Problem] = field(default_factory=list)  # never make it invalid; shown with the problems
    template: bool = False  # rendered from `main.yml.jinja2` (with the template's own defaults, or a run's params)
    variables: frozenset[str] = frozenset()  # a template's variables: parameters a run (or a schedule) may give it

    @property
    def ok(self) -> bool:
        return self.spec is not None and not self.problems

    @property
    def shown(self) -> list[Problem]:
        """The errors then the warnings: what the commit and the API list."""
        return [*self.problems, *self.warnings]


def main_file(pipeline: str) -> str:
    return posixpath.join(pipeline, MAIN_FILE) if pipeline else MAIN_FILE


def template_file(pipeline: str) -> str:
    return posixpath.join(pipeline, TEMPLATE_FILE) if pipeline else TEMPLATE_FILE


def read_pipeline(
    mirror: Mirror, sha: str, pipeline: str, *, limits: Limits | None = None, validator: Validator | None = None
) -> PipelineAt:
    """Validate one pipeline at a commit. Never raises for bad content: problems are values.

    The outcome is cached by the directory's git tree id (with its path and the limits): an unchanged pipeline is
    validated once, whichever commit or ref it is read at. `validator` is where validation runs (the controller's
    worker processes, with a time budget); by default in this thread."""
    limits = limits or Limits()
    validator = validator or IN_PROCESS
    path = main_file(pipeline)
    template = False
    try:
        tree = mirror.pipeline_tree_id(sha, pipeline)
        key = (pipeline, tree, limits)
        cached: _Cached | None = validator.cache.get(key)
        if cached is not None:
            return PipelineAt(pipeline, sha, cached[0], list(cached[1]), tree, list(cached[2]), *cached[3:])
        problems = list(mirror.check_pipeline_dir(sha, pipeline))
        try:
            data = mirror.read_file(sha, path, max_size=limits.max_bytes)
        except FileMissing:
            path, template = template_file(pipeline), True
            data = mirror.read_file(sha, path, max_size=limits.max_bytes)
    except FileTooLarge as e:
        return PipelineAt(pipeline, sha, None, [Problem(path, 1, 1, e.message)])
    except FileMissing:
        path = main_file(pipeline)
        return PipelineAt(pipeline, sha, None, [Problem(path, 1, 1, f"{MAIN_FILE} is missing at this commit")])
    except GitError as e:
        return PipelineAt(pipeline, sha, None, [Problem(path, 1, 1, f"cannot read the pipeline: {e.message}")])
    default_name = posixpath.basename(pipeline) or "pipeline"
    variables: frozenset[str] = frozenset()
    if template:
        rendered = validator.validate_template(data, file=path, default_name=default_name, limits=limits)
        result, variables = rendered.result, rendered.variables
    else:
        result = validator.validate(data, file=path, default_name=default_name, limits=limits)
    problems = cap_problems([*problems, *result.problems], limits.max_problems) if problems else result.problems
    spec = result.spec if not problems else None
    validator.cache.put(key, (spec, problems, result.warnings, template, variables), len(data) + 1024)
    return PipelineAt(pipeline, sha, spec, list(problems), tree, list(result.warnings), template, variables)


def render_with(
    mirror: Mirror,
    at: PipelineAt,
    params: Mapping[str, str],
    *,
    limits: Limits | None = None,
    validator: Validator | None = None,
) -> tuple[PipelineAt, dict[str, str]]:
    """A templated pipeline rendered with a run's parameters (an API start, a schedule's `params`): the pipeline as
    those parameters make it, and the parameters the template consumed (recorded on the run; the others go to the
    rendered pipeline's own `params:`). A pipeline that is no template, or parameters the template does not read,
    leave `at` as it is."""
    if not at.template:
        return at, {}
    limits = limits or Limits()
    validator = validator or IN_PROCESS
    consumed = {k: v for k, v in params.items() if k in at.variables}
    if not consumed:
        return at, {}
    path = template_file(at.pipeline)
    try:
        data = mirror.read_file(at.sha, path, max_size=limits.max_bytes)
    except GitError as e:
        problem = Problem(path, 1, 1, f"cannot read the pipeline: {e.message}")
        return PipelineAt(at.pipeline, at.sha, None, [problem], at.tree, template=True), consumed
    default_name = posixpath.basename(at.pipeline) or "pipeline"
    rendered = validator.validate_template(data, file=path, default_name=default_name, params=consumed, limits=limits)
    result = rendered.result
    spec = result.spec if result.ok else None
    return PipelineAt(
        at.pipeline, at.sha, spec, result.problems, at.tree, result.warnings, True, at.variables
    ), consumed


def materialize(mirror: Mirror, sha: str, pipeline: str, trees_dir: Path) -> Path:
    """The pipeline's files at `sha`, read-only and content-addressed under `trees_dir`."""
    return mirror.materialize(sha, pipeline, trees_dir)
