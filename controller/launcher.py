"""Starting a run on request: a pipeline at a branch, tag or commit, with parameters, for a user or a system.

The API (`POST /v1/runs`), `odinctl run` and the generic webhook all come through here, so every manual start is
validated, materialised and recorded exactly like an automatic one — only the trigger and who asked differ.
Errors are `RunRejected` subclasses carrying a user-facing message; the API maps them to 4xx once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine as DbEngine

from odin.controller.git.errors import GitError, RefNotFound
from odin.controller.git.mirror import Mirror
from odin.controller.pipelines import materialize, read_pipeline
from odin.controller.store.db import transaction
from odin.controller.store.models import Trigger
from odin.controller.store.runs import Created, NewRun, create_run
from odin.schema import ParamError, resolve_params
from odin.schema.problems import Problem

log = logging.getLogger(__name__)


class RunRejected(Exception):
    """A run cannot be started as asked. `status` is the HTTP status the API answers with."""

    status = 422

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PipelineNotFound(RunRejected):
    status = 404


class ReferenceNotFound(RunRejected):
    status = 404


class InvalidPipeline(RunRejected):
    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


class InvalidParams(RunRejected):
    pass


class RepositoryUnavailable(RunRejected):
    status = 503


@dataclass(frozen=True)
class StartRequest:
    pipeline: str
    ref: str | None = None  # branch, tag, full sha or a unique prefix >= 7; default: the followed branch
    params: Mapping[str, str] = field(default_factory=dict)
    trigger: Trigger = Trigger.MANUAL
    by: str | None = None
    parallelism: int | None = None


class RunLauncher:
    def __init__(
        self,
        db: DbEngine,
        repo_id: int,
        mirror: Mirror,
        *,
        branch: str,
        trees_dir: Path,
        submit: Callable[[str], None],
    ) -> None:
        self.db = db
        self.repo_id = repo_id
        self.mirror = mirror
        self.branch = branch
        self.trees_dir = trees_dir
        self.submit = submit

    def resolve(self, ref: str | None) -> str:
        """A ref to a full sha; the followed branch (the default) is fetched first so "latest" means latest."""
        wanted = ref or self.branch
        if wanted == self.branch:
            try:
                return self.mirror.fetch().tip
            except GitError as e:
                log.warning("start: fetch failed (%s); using the cached %s", e.message, self.branch)
        try:
            return self.mirror.resolve(wanted)
        except RefNotFound:
            try:
                self.mirror.fetch()
                return self.mirror.resolve(wanted)
            except RefNotFound as e:
                raise ReferenceNotFound(f"no branch, tag or commit {wanted!r} in the repository") from e
            except GitError as e:
                raise RepositoryUnavailable(f"cannot read the repository: {e.message}") from e
        except GitError as e:
            raise ReferenceNotFound(e.message) from e

    def start(self, request: StartRequest) -> Created:
        sha = self.resolve(request.ref)
        pipeline = request.pipeline.strip("/")
        if pipeline not in self.mirror.list_pipelines(sha):
            raise PipelineNotFound(f"no pipeline {pipeline!r} at {sha[:12]} (a directory with a main.yml)")
        at = read_pipeline(self.mirror, sha, pipeline)
        if at.spec is None or at.problems:
            raise InvalidPipeline(f"pipeline {pipeline!r} is invalid at {sha[:12]}", at.problems)
        try:
            params = resolve_params(at.spec, dict(request.params))
        except ParamError as e:
            raise InvalidParams(str(e)) from e
        work_path = materialize(self.mirror, sha, pipeline, self.trees_dir)
        new = NewRun(
            pipeline=pipeline,
            spec=at.spec,
            trigger=request.trigger,
            params=params,
            commit_sha=sha,
            branch=self.branch if request.ref in (None, self.branch) else None,
            repo_id=self.repo_id,
            triggered_by=request.by,
            work_tree=at.tree,
            work_path=str(work_path),
            parallelism=request.parallelism,
        )
        with transaction(self.db) as conn:
            created = create_run(conn, new)
        log.info("run %s started by %s (%s) at %s", created.run_id, request.by, request.trigger, sha[:12])
        self.submit(created.run_id)
        return created
