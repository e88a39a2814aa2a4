"""Which changed pipelines a push starts, after the repository's `.odin.yml` branch and path filters.

The sync computes what a push changed (`ChangeSet`: the pipelines whose directories changed, and every changed path)
and asks this module which pipelines to run. With no `.odin.yml` at the commit the answer is exactly the changed
pipelines, as before filters existed. With one, each pipeline of the commit is considered on its own:

- it must run on the followed branch (`branches`);
- at least one changed path must count for it: a path inside its directory (the nearest enclosing pipeline owns a
  path, as for `changed_pipelines`) or one matching its extra `paths`, and not matching its `ignore_paths`.

A new or moved tag the repository follows (`controller/tags.py`) asks `select_tagged` instead: every pipeline at the
tagged commit is considered, and only its `tags` filter (and `branches: []`, "only by hand") can leave it out; a tag is
no change, so the path filters do not apply.

The file is read from the commit's own tree, like `main.yml`, so what decided a run is what the commit says. An invalid
`.odin.yml` starts nothing: its problems are recorded on the commit (running everything instead could start dozens of
trainings the file was written to prevent).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from odin.controller.git.errors import FileMissing, GitError
from odin.controller.git.mirror import Mirror
from odin.controller.git.models import ChangeSet
from odin.controller.git.paths import ancestors
from odin.schema import REPO_CONFIG_FILE, Limits, RepoConfig, load_repo_config
from odin.schema.problems import Problem

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Selection:
    """The pipelines to run; those the filters left out; problems that stop the commit from running anything."""

    pipelines: list[str]
    filtered: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def read_repo_config(mirror: Mirror, sha: str, *, limits: Limits) -> tuple[RepoConfig | None, list[Problem]]:
    """The commit's `.odin.yml`: (None, []) when there is none, (None, problems) when it is invalid."""
    try:
        data = mirror.read_file(sha, REPO_CONFIG_FILE, max_size=limits.max_bytes)
    except FileMissing:
        return None, []
    except GitError as e:
        return None, [Problem(REPO_CONFIG_FILE, 1, 1, f"cannot read the file: {e.message}")]
    result = load_repo_config(data, file=REPO_CONFIG_FILE, limits=limits)
    return result.config, result.problems


def select_pipelines(mirror: Mirror, sha: str, change: ChangeSet, *, branch: str, limits: Limits) -> Selection:
    """Apply the commit's `.odin.yml` to what the push changed."""
    config, problems = read_repo_config(mirror, sha, limits=limits)
    if problems:
        return Selection(pipelines=[], filtered=list(change.changed), problems=problems)
    if config is None or config.is_default:
        return Selection(pipelines=list(change.changed))
    return Selection(*_apply(config, mirror.list_pipelines(sha), change.changed, change.files, branch))


def select_tagged(mirror: Mirror, sha: str, pipelines: Sequence[str], *, tag: str, limits: Limits) -> Selection:
    """Which of the commit's `pipelines` a new or moved `tag` starts, by the commit's `.odin.yml` (all of them
    without one); an invalid one starts nothing and its problems say why."""
    config, problems = read_repo_config(mirror, sha, limits=limits)
    if problems:
        return Selection(pipelines=[], filtered=list(pipelines), problems=problems)
    if config is None or config.is_default:
        return Selection(pipelines=list(pipelines))
    selected = [p for p in pipelines if config.filters_for(p).runs_on_tag(tag)]
    return Selection(pipelines=selected, filtered=[p for p in pipelines if p not in selected])


def _apply(
    config: RepoConfig, pipelines: Sequence[str], changed: Sequence[str], files: Sequence[str], branch: str
) -> tuple[list[str], list[str]]:
    existing = set(pipelines)
    owner_of = {path: _owner(path, existing) for path in files}
    owned: dict[str | None, list[str]] = {}
    for path, owner in owner_of.items():
        owned.setdefault(owner, []).append(path)
    selected: list[str] = []
    filtered: list[str] = []
    for pipeline in pipelines:
        filters = config.filters_for(pipeline)
        if not filters.runs_on(branch):
            if pipeline in changed:
                filtered.append(pipeline)
            continue
        # Only a pipeline with extra `paths` needs to look beyond its own directory.
        candidates = files if filters.paths else owned.get(pipeline, ())
        if any(filters.counts(path, owned=owner_of[path] == pipeline) for path in candidates):
            selected.append(pipeline)
        elif pipeline in changed:
            filtered.append(pipeline)
    return selected, filtered


def _owner(path: str, pipelines: set[str]) -> str | None:
    """The nearest pipeline directory enclosing `path` (nested pipelines own their own subtree)."""
    for directory in ancestors(path):
        if directory in pipelines:
            return directory
    return None
