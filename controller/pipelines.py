"""A pipeline as it is at one commit: its spec or its problems, and its files' content address.

Everything here reads from the commit's tree through the git adapter — never from a working copy — so what is
validated is exactly what will run, whatever the branch tip has become since.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from odin.controller.git.errors import FileMissing, FileTooLarge, GitError
from odin.controller.git.mirror import Mirror
from odin.controller.validation import IN_PROCESS, Validator
from odin.schema import Limits
from odin.schema.model import PipelineSpec
from odin.schema.problems import Problem, cap_problems

MAIN_FILE = "main.yml"


@dataclass(frozen=True, slots=True)
class PipelineAt:
    """The outcome of reading one pipeline directory at one commit."""

    pipeline: str
    sha: str
    spec: PipelineSpec | None
    problems: list[Problem] = field(default_factory=list)
    tree: str | None = None  # git tree oid of the directory: the content address of ${WORK_PATH}
    warnings: list[Problem] = field(default_factory=list)  # never make it invalid; shown with the problems

    @property
    def ok(self) -> bool:
        return self.spec is not None and not self.problems

    @property
    def shown(self) -> list[Problem]:
        """The errors then the warnings: what the commit and the API list."""
        return [*self.problems, *self.warnings]


def main_file(pipeline: str) -> str:
    return posixpath.join(pipeline, MAIN_FILE) if pipeline else MAIN_FILE


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
    try:
        tree = mirror.pipeline_tree_id(sha, pipeline)
        key = (pipeline, tree, limits)
        cached: tuple[PipelineSpec | None, list[Problem], list[Problem]] | None = validator.cache.get(key)
        if cached is not None:
            return PipelineAt(pipeline, sha, cached[0], list(cached[1]), tree, list(cached[2]))
        problems = list(mirror.check_pipeline_dir(sha, pipeline))
        data = mirror.read_file(sha, path, max_size=limits.max_bytes)
    except FileTooLarge as e:
        return PipelineAt(pipeline, sha, None, [Problem(path, 1, 1, e.message)])
    except FileMissing:
        return PipelineAt(pipeline, sha, None, [Problem(path, 1, 1, f"{MAIN_FILE} is missing at this commit")])
    except GitError as e:
        return PipelineAt(pipeline, sha, None, [Problem(path, 1, 1, f"cannot read the pipeline: {e.message}")])
    default_name = posixpath.basename(pipeline) or "pipeline"
    result = validator.validate(data, file=path, default_name=default_name, limits=limits)
    problems = cap_problems([*problems, *result.problems], limits.max_problems) if problems else result.problems
    spec = result.spec if not problems else None
    validator.cache.put(key, (spec, problems, result.warnings), len(data) + 1024)
    return PipelineAt(pipeline, sha, spec, list(problems), tree, list(result.warnings))


def materialize(mirror: Mirror, sha: str, pipeline: str, trees_dir: Path) -> Path:
    """The pipeline's files at `sha`, read-only and content-addressed under `trees_dir`."""
    return mirror.materialize(sha, pipeline, trees_dir)
