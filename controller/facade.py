"""What the API and the webhooks may ask of the controller: its one public surface.

Why a facade: the HTTP layers used to reach into the controller's parts (the git mirror, the edit module, the sync's
request type, the launcher's errors), so any change inside the controller rippled into api/ and webhooks/. Here they
find everything they need, and an import-linter contract in pyproject.toml ("The API and webhooks use the
controller's facade") keeps them from importing `odin.controller.git`, `sync`, `launcher`, `pipelines`, `service`,
`validation` and the other internals directly. What they may still import besides this module: the settings, the
store, the shared vocabulary (`odin.controller.vocabulary`), the event bus, the backoff and the metrics registry.

The surface, by what is asked:

- the controller and a followed repository: `Controller` (start, rerun, cancel a run; request a sync by repository
  id) and `FollowedRepo`;
- git, on a followed repository: `resolve_ref`, `list_pipelines`, `read_pipeline` (validated, cached by tree id),
  `read_file`, `commit_file` (one file as a commit on the followed branch, pushed), `has_commit` (does the remote
  have this commit), `request_sync` (with a trigger); `check_ref` and `resolve_secret_ref` for webhook payloads and
  secrets;
- Midgard agents found through Kubernetes (`MidgardDiscovery`, `PodProvenance`, `KubeApiError`): imported on first
  use, so the API loads the kubernetes client only when it discovers agents;
- what a run produced (`artifact_reader`, `ArtifactReader`, `FileSource`, `DirectoryFile`, `tar_stream`, and the
  artifact errors `ArtifactError`, `ArtifactNotFound`, `UnsafeArtifactPath`, `ArtifactStoreUnavailable`): reading
  recorded artifacts back from the attempt's files or the artifact store, by range, never whole;
- links to a run's MLflow runs (`mlflow_run_url`, with `TrackingSettings` saying where the UI is);
- the requests and results they exchange (`StartRequest`, `RerunRequest`, `SyncRequest`, `SyncOutcome`, `Created`,
  `PipelineAt`, `Author`, `FileCommit`) and the errors they map to answers (the `RunRejected` and `GitError` trees).

The functions are thin on purpose: they name an operation and hide which part of the controller does it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from odin.controller.artifacts.errors import ArtifactError, ArtifactNotFound, UnsafeArtifactPath
from odin.controller.artifacts.errors import StoreUnavailable as ArtifactStoreUnavailable
from odin.controller.artifacts.reading import ArtifactReader, DirectoryFile, FileSource
from odin.controller.artifacts.tarstream import tar_stream
from odin.controller.filters import read_repo_config as _read_repo_config
from odin.controller.git.credentials import resolve_secret_ref
from odin.controller.git.edit import Author, EditConflict, FileCommit, NotAPipeline, pipeline_file_path
from odin.controller.git.edit import commit_file as _commit_file
from odin.controller.git.errors import (
    AmbiguousRef,
    AuthenticationFailed,
    CertificateRejected,
    FileMissing,
    FileTooLarge,
    GitError,
    InvalidRef,
    PathEscapes,
    RefNotFound,
    RepositoryNotFound,
    SecretUnavailable,
    UnsupportedEntry,
)
from odin.controller.git.models import FileChange, FileChanges
from odin.controller.git.paths import TEMPLATE_FILE
from odin.controller.git.refs import check_ref
from odin.controller.launcher import (
    InvalidPipeline,
    RerunRequest,
    RunConflict,
    RunRejected,
    StartRequest,
)
from odin.controller.pipelines import MAIN_FILE, PipelineAt
from odin.controller.pipelines import read_pipeline as _read_pipeline
from odin.controller.pulls import PullOutcome, PullRequest, PullRequestRejected, PullRequestUnavailable
from odin.controller.repo_specs import InvalidRepoSpec, matches_branch
from odin.controller.repo_specs import check_name as check_repo_name
from odin.controller.repo_specs import check_spec as check_repo_spec
from odin.controller.schedule_sources import ScheduledPipeline, commit_schedules
from odin.controller.service import Controller, FollowedRepo
from odin.controller.settings import Settings
from odin.controller.store.runs import Created
from odin.controller.sync import SyncOutcome, SyncRequest
from odin.controller.tracking.links import run_url as mlflow_run_url
from odin.controller.tracking.settings import TrackingSettings
from odin.controller.validation import Validator
from odin.controller.vocabulary import Trigger
from odin.schema import Limits

if TYPE_CHECKING:
    from odin.controller.artifacts.store import ArtifactStore
    from odin.controller.executors.kubernetes.discovery import MidgardDiscovery, PodProvenance
    from odin.controller.executors.kubernetes.errors import KubeApiError

__all__ = [
    "MAIN_FILE",
    "TEMPLATE_FILE",
    "AmbiguousRef",
    "ArtifactError",
    "ArtifactNotFound",
    "ArtifactReader",
    "ArtifactStoreUnavailable",
    "AuthenticationFailed",
    "Author",
    "CertificateRejected",
    "Controller",
    "Created",
    "DirectoryFile",
    "EditConflict",
    "FileChange",
    "FileChanges",
    "FileCommit",
    "FileMissing",
    "FileSource",
    "FileTooLarge",
    "FollowedRepo",
    "GitError",
    "InvalidPipeline",
    "InvalidRef",
    "InvalidRepoSpec",
    "KubeApiError",
    "MidgardDiscovery",
    "NotAPipeline",
    "PathEscapes",
    "PipelineAt",
    "PodProvenance",
    "PullOutcome",
    "PullRequest",
    "PullRequestRejected",
    "PullRequestUnavailable",
    "RefNotFound",
    "RepositoryNotFound",
    "RerunRequest",
    "RunConflict",
    "RunRejected",
    "ScheduledPipeline",
    "SecretUnavailable",
    "StartRequest",
    "SyncOutcome",
    "SyncRequest",
    "TrackingSettings",
    "UnsafeArtifactPath",
    "UnsupportedEntry",
    "Validator",
    "artifact_reader",
    "check_ref",
    "check_repo_name",
    "check_repo_spec",
    "commit_file",
    "files_changed",
    "has_commit",
    "list_pipelines",
    "matches_branch",
    "mlflow_run_url",
    "pipeline_file_path",
    "read_file",
    "read_pipeline",
    "request_sync",
    "resolve_ref",
    "resolve_secret_ref",
    "tar_stream",
]


def resolve_ref(repo: FollowedRepo, ref: str | None) -> tuple[str, str]:
    """(ref as asked, full sha), the followed branch by default: from the mirror's cache, fetching once if the ref is
    not there yet (`InvalidRef` before any of it for a name git would refuse)."""
    wanted = ref or repo.mirror.branch
    return wanted, repo.mirror.resolve_fetching(wanted)


def list_pipelines(repo: FollowedRepo, sha: str) -> list[str]:
    """The pipeline directories (those holding a main.yml) at a commit."""
    return repo.mirror.list_pipelines(sha)


def read_pipeline(repo: FollowedRepo, sha: str, pipeline: str) -> PipelineAt:
    """One pipeline at a commit, validated in the controller's validator (cached by the directory's tree id)."""
    return _read_pipeline(repo.mirror, sha, pipeline, validator=repo.validator)


def pipeline_schedules(repo: FollowedRepo, sha: str, found: Sequence[PipelineAt]) -> list[ScheduledPipeline]:
    """The schedules at a commit of the pipelines `found` there: their `main.yml`'s, then the `.odin.yml` entries
    naming them (an invalid entry is left out: the sync recorded its problem on the commit)."""
    by_name = {at.pipeline: at for at in found}
    config, _ = _read_repo_config(repo.mirror, sha, limits=Limits())
    return commit_schedules(found, config, by_name.get).schedules


def read_file(repo: FollowedRepo, sha: str, path: str, *, max_size: int) -> bytes:
    """A file's bytes at a commit (`FileMissing`, `FileTooLarge`...)."""
    return repo.mirror.read_file(sha, path, max_size=max_size)


def files_changed(repo: FollowedRepo, sha: str, base: str | None = None, *, limit: int = 1000) -> FileChanges:
    """The files a commit changed against its first parent, or against `base` (another commit: comparing runs)."""
    return repo.mirror.files_changed(sha, base, limit=limit)


def commit_file(
    repo: FollowedRepo,
    *,
    pipeline: str,
    path: str,
    content: bytes,
    author: Author,
    committer: Author,
    message: str | None = None,
    expected_base: str | None = None,
) -> FileCommit:
    """Write one file of a pipeline as a new commit on the followed branch and push it (`EditConflict` when the
    branch moved past `expected_base` or someone pushed in between). The commit is attributed to `author` before it
    is pushed, so its runs say who made it even when the regular poll finds it before `request_sync` is served."""
    attributed: list[str] = []

    def attribute(sha: str) -> None:
        repo.sync.expect(sha, SyncRequest(trigger=Trigger.POLL, by=author.name))
        attributed.append(sha)

    try:
        return _commit_file(
            repo.mirror,
            pipeline=pipeline,
            path=path,
            content=content,
            author=author,
            committer=committer,
            message=message,
            expected_base=expected_base,
            before_push=attribute,
        )
    except BaseException:
        for sha in attributed:  # the push failed: the commit will never be seen
            repo.sync.forget(sha)
        raise


def has_commit(repo: FollowedRepo, sha: str, *, fetch: bool = False) -> bool:
    """Does the remote have this commit, on the followed branch or a tag? From the last fetch, or after a new one when
    `fetch` is true. A `GitError` when the remote cannot be reached."""
    if fetch:
        repo.mirror.fetch()
    return repo.mirror.has_commit(sha)


def request_sync(
    controller: Controller,
    repo: FollowedRepo,
    trigger: Trigger,
    *,
    branch: str | None = None,
    by: str | None = None,
    on_done: Callable[[SyncOutcome | None], None] | None = None,
) -> bool:
    """Ask for a sync of the repository's `branch` (default: its own) as soon as possible; False when its poller is
    not running: a replica that is not the leader wakes the leader instead (on Postgres), whose sync then runs at
    once without `on_done`. Through the controller, not the poller: a poller of a replica that does not lead drops
    requests, and the leader then waited for its next poll. `on_done` as in `SyncRequest`."""
    return controller.request_sync(repo.id, SyncRequest(trigger=trigger, by=by, on_done=on_done), branch=branch)


def artifact_reader(settings: Settings) -> ArtifactReader:
    """What reads a run's artifacts back for the API: the local executor's attempt directories under the data
    directory, then the configured artifact store (`ODIN_ARTIFACTS_*`), opened on first need."""
    from odin.controller.artifacts.settings import ArtifactSettings, open_store

    def store() -> ArtifactStore:
        return open_store(ArtifactSettings(), settings.data_dir)

    return ArtifactReader(settings.data_dir / "outputs", store)


def __getattr__(name: str) -> Any:
    """The Kubernetes adapter's parts, imported on first use (PEP 562): only an API that discovers Midgard agents
    through Kubernetes loads the kubernetes client."""
    if name in ("MidgardDiscovery", "PodProvenance"):
        from odin.controller.executors.kubernetes import discovery

        return getattr(discovery, name)
    if name == "KubeApiError":
        from odin.controller.executors.kubernetes import errors

        return errors.KubeApiError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
