"""The controller's view of one remote repository: a bare cache clone that follows one branch (plus tags), and
everything Odin reads from it.

Why a cache and not a checkout: Odin reads pipeline files *at a commit* (runs are tied to SHAs, and an old run
must be reproducible after the branch moved on), so everything here reads from commit trees and nothing ever
checks files out. The cache is fetched by the poller; API threads read from it at the same time, so every thread
gets its own libgit2 repository handle (libgit2 objects must not be used from two threads at once) and fetches are
serialised by a lock (in-process) and an flock (across processes sharing the cache directory).

Objects are never garbage-collected: a force-push removes commits from the branch, not from the cache, and runs
keep referring to them. The tips a force-push discarded are additionally pinned under `refs/odin/kept/` so that
even a `git gc` run by a person cannot drop them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import stat
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast

import pygit2
from pygit2.enums import FetchPrune, FileMode, ObjectType, RepositoryOpenFlag, SortMode

from odin.controller.git._blobs import CHUNK, STREAM_THRESHOLD, CorruptObject, stream_blob, write_chunks
from odin.controller.git._transport import CallbackRefusal, OdinCallbacks, configure_libgit2, translate_error
from odin.controller.git.credentials import Credentials
from odin.controller.git.errors import (
    AmbiguousRef,
    BranchNotFound,
    FileMissing,
    FileTooLarge,
    GitError,
    PathEscapes,
    RefNotFound,
    RemoteUnreachable,
    UnsupportedEntry,
    WorkTreeTooLarge,
)
from odin.controller.git.models import ChangeSet, CommitInfo, FetchResult, WorkLimits
from odin.controller.git.paths import (
    PIPELINE_FILE,
    ancestors,
    is_hidden,
    normalize_repo_path,
    symlink_problem,
    valid_entry_name,
)
from odin.controller.git.refs import MissedRefs, check_ref
from odin.controller.git.urls import RemoteUrl, UrlKind, cache_name, parse_remote_url
from odin.schema.problems import Problem

__all__ = ["Mirror"]

log = logging.getLogger(__name__)

_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX_PREFIX = re.compile(r"^[0-9a-f]{7,40}$")
_MIN_PREFIX = 7
_PIPELINES_CACHE_SIZE = 64
_KEPT_PREFIX = "refs/odin/kept/"

# Network errors surface from pygit2 as GitError subclasses, from our callbacks as CallbackRefusal, and from
# libgit2's OS layer occasionally as OSError (pygit2 maps some ENOTFOUND cases to it).
_NETWORK_ERRORS = (pygit2.GitError, CallbackRefusal, OSError)

_S_IFMT = 0o170000
MAX_LINK_TARGET = 4096
"""Longest symbolic link target read (Linux's PATH_MAX): a longer one could not be created anyway."""
_S_IFREG = 0o100000


class Mirror:
    """A bare cache clone of one remote repository, following one branch (plus all tags).

    Thread safety: `fetch` may run in one thread while any other method runs in others; fetches are serialised.
    All shas are full 40-character lowercase hex strings, in and out; use `resolve` to turn user input into one.
    """

    def __init__(
        self,
        url: str,
        cache_dir: Path,
        *,
        branch: str = "main",
        credentials: Credentials | None = None,
        allow_insecure_http: bool = False,
        proxy: bool | str = True,
        missed_ref_ttl: float = 30.0,
        miss_fetch_gap: float = 1.0,
        work_limits: WorkLimits | None = None,
    ) -> None:
        """`url`: a local path, `file://`, `https://`, `ssh://` or `git@host:org/repo.git` (plain `http://` only
        with `allow_insecure_http`). `proxy`: True honours the usual proxy environment/git configuration, False
        connects directly, a string is an explicit proxy URL. `missed_ref_ttl` and `miss_fetch_gap` (seconds) bound
        the fetches that refs missing from the cache may cause (see `resolve_fetching`). `work_limits`: the largest
        pipeline directory `materialize` copies (and `check_pipeline_dir` accepts); None for no limit. Raises
        `ValueError` (an `InvalidRemoteUrl`) for a URL or branch Odin does not accept; creates the cache repository if
        needed (no network).
        """
        configure_libgit2()
        self._url: RemoteUrl = parse_remote_url(url, allow_insecure_http=allow_insecure_http)
        if not pygit2.reference_is_valid_name(f"refs/heads/{branch}"):
            raise ValueError(f"{branch!r} is not a valid branch name")
        self.branch = branch
        self._credentials = credentials
        self._proxy: Literal[True] | str | None = proxy if proxy is True or isinstance(proxy, str) else None
        self.cache_dir = Path(cache_dir)
        self.path = self.cache_dir / cache_name(self._url)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._tracking_ref = f"refs/remotes/origin/{branch}"
        self._refspecs = [f"+refs/heads/{branch}:{self._tracking_ref}", "+refs/tags/*:refs/tags/*"]
        self._fetch_lock = threading.Lock()
        self._local = threading.local()
        self._pipelines_cache: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._pipelines_lock = threading.Lock()
        self._missed = MissedRefs(missed_ref_ttl)
        self._miss_fetch_gap = miss_fetch_gap
        self._miss_lock = threading.Lock()
        self._miss_fetch_started = float("-inf")
        self.work_limits = work_limits
        self._ensure_cache()

    # --- identity ----------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The remote URL as shown to people (no userinfo)."""
        return self._url.redacted

    def __repr__(self) -> str:
        return f"Mirror(url={self._url.redacted!r}, branch={self.branch!r}, path={str(self.path)!r})"

    # --- the cache repository ----------------------------------------------------------------------------------------

    def _ensure_cache(self) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with self._file_lock():
            if (self.path / "HEAD").is_file():
                return
            repo = pygit2.init_repository(str(self.path), bare=True)
            # Never prune unreachable objects: force-pushed commits must stay readable for the runs that use them.
            repo.config["gc.auto"] = 0
            repo.config["gc.pruneExpire"] = "never"
            repo.config["odin.url"] = self._url.redacted

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def _repo(self) -> pygit2.Repository:
        """This thread's handle on the cache. New objects written by a fetch in another thread are found anyway:
        libgit2 rescans the pack directory when a lookup misses, and references are read from disk."""
        repo = cast("pygit2.Repository | None", getattr(self._local, "repo", None))
        if repo is None:
            # NO_SEARCH: if the cache was deleted, fail instead of discovering some enclosing repository.
            repo = pygit2.Repository(str(self.path), RepositoryOpenFlag.NO_SEARCH | RepositoryOpenFlag.BARE)
            self._local.repo = repo
        return repo

    # --- fetching ----------------------------------------------------------------------------------------------------

    def fetch(self) -> FetchResult:
        """Bring the cache up to date with the remote's branch and tags.

        The cheap path first: list the remote's references (one round trip, no object negotiation) and stop
        there when the branch tip and the tags are what the cache has. Only otherwise is a fetch run, on the same
        connection. Raises `BranchNotFound` when the branch is gone (the cache keeps its last tip),
        `RemoteUnreachable` (transient), `AuthenticationFailed`, `CertificateRejected`, `RepositoryNotFound`.
        """
        with self._fetch_lock, self._file_lock():
            repo = self._repo()
            previous = self._ref_target(repo, self._tracking_ref)
            local_tags = self._local_tags(repo)
            if self._url.kind is UrlKind.LOCAL and not Path(self._url.transport_url).exists():
                # libgit2 only says "unsupported URL protocol" for a path that does not exist.
                raise RemoteUnreachable(
                    f"the repository directory {self.url} does not exist (moved, deleted or not mounted?); will retry",
                    url=self.url,
                )
            remote = repo.remotes.create_anonymous(self._url.transport_url)
            try:
                remote.connect(callbacks=OdinCallbacks(self._credentials, self._url), proxy=self._proxy)
                heads = remote.list_heads(connect=False)
            except _NETWORK_ERRORS as e:
                raise translate_error(e, self._url, self._credentials) from e

            advertised = {head.name: str(head.oid) for head in heads if head.name}
            remote_tip = advertised.get(f"refs/heads/{self.branch}")
            if remote_tip is None:
                raise BranchNotFound(
                    f"branch {self.branch!r} does not exist on {self.url} (deleted or renamed?); the commits Odin "
                    "already fetched stay available. Push the branch again or follow another branch.",
                    url=self.url,
                )
            remote_tags = {
                name: sha for name, sha in advertised.items() if name.startswith("refs/tags/") and "^{}" not in name
            }
            tags_changed = remote_tags != local_tags
            if remote_tip == previous and not tags_changed:
                return FetchResult(tip=remote_tip, previous_tip=previous, changed=False, forced=False)

            try:
                # A fresh callbacks object: the one above may already have offered the credentials once.
                remote.fetch(
                    self._refspecs,
                    callbacks=OdinCallbacks(self._credentials, self._url),
                    prune=FetchPrune.NO_PRUNE,
                    proxy=self._proxy,
                )
            except _NETWORK_ERRORS as e:
                raise translate_error(e, self._url, self._credentials) from e
            # Pruning is done here rather than by libgit2, so that it can never touch the branch ref: a branch
            # that disappears is reported (above), not silently forgotten.
            for name in local_tags.keys() - remote_tags.keys():
                with contextlib.suppress(KeyError):
                    repo.references.delete(name)

            tip = self._ref_target(repo, self._tracking_ref)
            if tip is None:  # pragma: no cover - libgit2 would have raised
                raise GitError(f"fetching {self.branch!r} from {self.url} did not update the cache", url=self.url)
            forced = previous is not None and previous != tip and not repo.descendant_of(tip, previous)
            if forced:
                assert previous is not None
                repo.references.create(f"{_KEPT_PREFIX}{previous}", previous, force=True)
            return FetchResult(
                tip=tip,
                previous_tip=previous,
                changed=tip != previous,
                forced=forced,
                tags_changed=tags_changed,
                fetched=True,
            )

    def tip(self) -> str | None:
        """The branch tip as of the last successful fetch (no network); None before the first one."""
        return self._ref_target(self._repo(), self._tracking_ref)

    @staticmethod
    def _ref_target(repo: pygit2.Repository, name: str) -> str | None:
        ref = repo.references.get(name)
        if ref is None:
            return None
        return str(ref.resolve().target)

    @staticmethod
    def _local_tags(repo: pygit2.Repository) -> dict[str, str]:
        return {
            ref.name: str(ref.target)
            for ref in repo.references.iterator(pygit2.enums.ReferenceFilter.TAGS)
            if isinstance(ref.target, pygit2.Oid)
        }

    # --- history -----------------------------------------------------------------------------------------------------

    def commit_info(self, sha: str) -> CommitInfo:
        return _commit_info(self._commit(self._repo(), sha))

    def commits_between(self, old: str | None, new: str, *, limit: int | None = None) -> list[CommitInfo]:
        """Commits reachable from `new` and not from `old`, oldest first (parents before children).

        `old=None` (nothing seen before) gives just `[new]`: Odin does not build a repository's whole history.
        After a force-push this is the new side since the common ancestor. `limit` keeps the newest `limit`.
        """
        repo = self._repo()
        new_commit = self._commit(repo, new)
        if old is None:
            return [_commit_info(new_commit)]
        old_commit = self._commit(repo, old)
        walker = repo.walk(new_commit.id, SortMode.TOPOLOGICAL | SortMode.TIME)
        walker.hide(old_commit.id)
        newest_first: list[CommitInfo] = []
        for commit in walker:
            newest_first.append(_commit_info(commit))
            if limit is not None and len(newest_first) >= limit:
                break
        newest_first.reverse()
        return newest_first

    def is_ancestor(self, old: str, new: str) -> bool:
        """True when `old` is `new` or one of its ancestors (git merge-base --is-ancestor)."""
        repo = self._repo()
        old_id = self._commit(repo, old).id
        new_id = self._commit(repo, new).id
        return old_id == new_id or repo.descendant_of(new_id, old_id)

    def has_commit(self, sha: str) -> bool:
        """Is `sha` (full) a commit in the cache that the followed branch or a tag reaches?

        For webhooks: a payload's SHA is only trusted after a fetch finds it here. Commits dropped by a
        force-push are still in the cache but no longer reachable, so they do not count.
        """
        sha = sha.strip().lower()
        if not _HEX40.match(sha):
            return False
        repo = self._repo()
        obj = repo.get(sha)
        if obj is None or obj.type != ObjectType.COMMIT:
            return False
        oid = obj.id
        heads = [self._ref_target(repo, self._tracking_ref)]
        for ref in repo.references.iterator(pygit2.enums.ReferenceFilter.TAGS):
            with contextlib.suppress(pygit2.GitError, ValueError):
                heads.append(str(ref.peel(pygit2.Commit).id))
        for head in heads:
            if head is None:
                continue
            head_id = pygit2.Oid(hex=head)
            if head_id == oid or repo.descendant_of(head_id, oid):
                return True
        return False

    def resolve(self, ref: str) -> str:
        """A full commit sha for a branch name (the followed one), a tag, a full sha or an unambiguous prefix of
        at least 7 hex digits. Names win over hex (as in git). Raises `InvalidRef` (before any lookup) for a name git
        would refuse, `RefNotFound` or `AmbiguousRef`. Never fetches: see `resolve_fetching`."""
        ref = check_ref(ref)
        repo = self._repo()
        if self.names_branch(ref):
            tip = self._ref_target(repo, self._tracking_ref)
            if tip is None:
                raise RefNotFound(f"branch {self.branch!r} has not been fetched yet from {self.url}", url=self.url)
            return tip
        tag_name = ref if ref.startswith("refs/tags/") else f"refs/tags/{ref}"
        if pygit2.reference_is_valid_name(tag_name):
            tag = repo.references.get(tag_name)
            if tag is not None:
                try:
                    return str(tag.peel(pygit2.Commit).id)
                except (pygit2.GitError, ValueError) as e:
                    raise RefNotFound(f"tag {ref!r} does not point to a commit", url=self.url) from e
        lowered = ref.lower()
        if _HEX_PREFIX.match(lowered):
            return _resolve_hex(repo, lowered, self.url)
        if re.fullmatch(r"[0-9a-fA-F]{1,6}", ref):
            raise RefNotFound(f"{ref!r} is too short; give at least {_MIN_PREFIX} hex digits of the commit id")
        raise RefNotFound(
            f"{ref!r} is not the followed branch ({self.branch!r}), a tag, or a commit id in {self.url}", url=self.url
        )

    def names_branch(self, ref: str) -> bool:
        """Does `ref` name the followed branch (`main`, `refs/heads/main`, `origin/main`)? A tag of the same name
        (`refs/tags/main`) does not: a run records the branch only when it was asked for by a branch name."""
        return ref.strip() in (self.branch, f"refs/heads/{self.branch}", f"origin/{self.branch}", self._tracking_ref)

    def resolve_fetching(self, ref: str) -> str:
        """`resolve`; when the ref is valid but not in the cache (a tag or commit pushed a moment ago), one fetch and
        `resolve` again. What a missing ref may cost the remote is bounded, whoever asks and however often:

        - a ref still missing after a fetch is answered from the cache (`RefNotFound`) for `missed_ref_ttl` seconds;
        - fetches for missing refs start at least `miss_fetch_gap` seconds apart, one at a time;
        - requests that missed before such a fetch started share it instead of fetching again.
        """
        try:
            return self.resolve(ref)
        except RefNotFound:
            pass
        name = ref.strip()
        ago = self._missed.missed_since(name)
        if ago is not None:
            raise RefNotFound(
                f"{name!r} is not the followed branch ({self.branch!r}), a tag, or a commit id in {self.url} "
                f"(it was still missing after a fetch {ago:.0f}s ago)",
                url=self.url,
            )
        asked = time.monotonic()
        with self._miss_lock:
            if self._miss_fetch_started < asked:  # no fetch has started since this request missed: fetch now
                wait = self._miss_fetch_started + self._miss_fetch_gap - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # a rate limit, not a guess: the next fetch may not start earlier
                self._miss_fetch_started = time.monotonic()
                self.fetch()
        try:
            return self.resolve(ref)
        except RefNotFound:
            self._missed.remember(name)
            raise

    def _commit(self, repo: pygit2.Repository, sha: str) -> pygit2.Commit:
        sha = sha.strip().lower()
        if not _HEX40.match(sha):
            raise RefNotFound(
                f"{sha!r} is not a full commit id (40 hex digits); resolve names and abbreviations first",
                url=self.url,
            )
        obj = repo.get(sha)
        if obj is None:
            raise RefNotFound(f"commit {sha} is not in the cache of {self.url}", url=self.url)
        if obj.type != ObjectType.COMMIT:
            raise RefNotFound(f"{sha} is a {obj.type_str}, not a commit", url=self.url)
        return cast(pygit2.Commit, obj)

    # --- pipelines ---------------------------------------------------------------------------------------------------

    def list_pipelines(self, sha: str) -> list[str]:
        """Every directory (never the root, never under a dot-directory) that has a regular `main.yml` file at
        `sha`, sorted. Cached per tree, so repeated calls for unchanged trees are free."""
        repo = self._repo()
        tree = self._commit(repo, sha).tree
        return list(self._pipelines_of_tree(tree))

    def _pipelines_of_tree(self, tree: pygit2.Tree) -> tuple[str, ...]:
        key = str(tree.id)
        with self._pipelines_lock:
            cached = self._pipelines_cache.get(key)
            if cached is not None:
                self._pipelines_cache.move_to_end(key)
                return cached
        found: list[str] = []
        _collect_pipelines(tree, "", found)
        result = tuple(sorted(found))
        with self._pipelines_lock:
            self._pipelines_cache[key] = result
            while len(self._pipelines_cache) > _PIPELINES_CACHE_SIZE:
                self._pipelines_cache.popitem(last=False)
        return result

    def changed_pipelines(self, old: str | None, new: str) -> ChangeSet:
        """Which pipelines the commits between `old` and `new` touched (diffing `merge_base(old, new)` against
        `new`, so a force-push counts only what the new history changed).

        A changed path belongs to the nearest enclosing directory that is a pipeline at `new` (nested pipelines
        own their own subtree); a pipeline whose `main.yml` is gone at `new` is reported as deleted. `old=None`
        reports every pipeline at `new` as changed and every file as a changed path.
        """
        repo = self._repo()
        new_commit = self._commit(repo, new)
        new_tree = new_commit.tree
        if old is None:
            files: list[str] = []
            _collect_files(new_tree, "", files)
            return ChangeSet(changed=list(self._pipelines_of_tree(new_tree)), deleted=[], files=sorted(files))
        old_commit = self._commit(repo, old)
        base_id = repo.merge_base(old_commit.id, new_commit.id)
        # Unrelated histories (the branch was replaced wholesale): compare with what was there before.
        base_tree = cast(pygit2.Commit, repo[base_id]).tree if base_id is not None else old_commit.tree
        if base_tree.id == new_tree.id:
            return ChangeSet()

        # Rename detection is not needed: without it a rename is a deletion plus an addition, which names both
        # paths, and both paths are what matter here. It would only cost time on large moves.
        diff = base_tree.diff_to_tree(new_tree)
        paths: set[str] = set()
        for delta in diff.deltas:
            paths.add(delta.old_file.path)
            paths.add(delta.new_file.path)

        is_new_pipeline = _PipelineProbe(new_tree)
        is_base_pipeline = _PipelineProbe(base_tree)
        changed: set[str] = set()
        deleted: set[str] = set()
        for path in paths:
            for directory in ancestors(path):
                if is_new_pipeline(directory):
                    changed.add(directory)
                    break
            for directory in ancestors(path):
                if is_base_pipeline(directory) and not is_new_pipeline(directory):
                    deleted.add(directory)
                    break
        return ChangeSet(changed=sorted(changed), deleted=sorted(deleted), files=sorted(paths))

    # --- reading files -----------------------------------------------------------------------------------------------

    def read_file(self, sha: str, path: str, *, max_size: int) -> bytes:
        """The content of the regular file `path` in the commit's tree. Symbolic links, directories and
        submodules are `FileMissing`; a file over `max_size` bytes is `FileTooLarge` (and is not read)."""
        repo = self._repo()
        tree = self._commit(repo, sha).tree
        norm = normalize_repo_path(path)
        where = f"{norm} at {sha[:12]}"
        if not norm:
            raise FileMissing(f"{path!r} is the repository root, not a file", url=self.url)
        try:
            entry = tree[norm]
        except KeyError:
            raise FileMissing(f"{where} does not exist", url=self.url) from None
        mode = int(entry.filemode)
        if mode == FileMode.TREE:
            raise FileMissing(f"{where} is a directory, not a file", url=self.url)
        if mode == FileMode.LINK:
            raise FileMissing(f"{where} is a symbolic link; Odin reads regular files only", url=self.url)
        if mode & _S_IFMT != _S_IFREG:
            raise FileMissing(f"{where} is not a regular file (mode {mode:o})", url=self.url)
        _, size = repo.odb.read_header(entry.id)
        if size > max_size:
            raise FileTooLarge(
                f"{where} is {size} bytes, more than the limit of {max_size}", size=size, limit=max_size, url=self.url
            )
        return cast(pygit2.Blob, repo[entry.id]).data

    def pipeline_tree_id(self, sha: str, pipeline: str) -> str:
        """The git tree id of the pipeline directory at `sha`: equal ids mean byte-identical content (file modes
        and symbolic links included), so it addresses materialized copies and caches."""
        return str(self._pipeline_tree(self._repo(), sha, pipeline)[1].id)

    def _pipeline_tree(self, repo: pygit2.Repository, sha: str, pipeline: str) -> tuple[str, pygit2.Tree]:
        tree = self._commit(repo, sha).tree
        norm = normalize_repo_path(pipeline)
        if not norm:
            raise FileMissing("a pipeline directory cannot be the repository root", url=self.url)
        try:
            entry = tree[norm]
        except KeyError:
            raise FileMissing(f"directory {norm} does not exist at {sha[:12]}", url=self.url) from None
        if not isinstance(entry, pygit2.Tree):
            raise FileMissing(f"{norm} is not a directory at {sha[:12]}", url=self.url)
        return norm, entry

    def check_pipeline_dir(self, sha: str, pipeline: str) -> list[Problem]:
        """Problems with the pipeline directory itself (not its YAML): symbolic links that lead outside it,
        submodules, entries that are not regular files, directories or symbolic links. Sorted by path."""
        repo = self._repo()
        norm, tree = self._pipeline_tree(repo, sha, pipeline)
        problems = [Problem(f"{norm}/{path}", 1, 1, message) for path, message, _ in _inspect(repo, tree)]
        too_large = _too_large(repo, tree, norm, self.work_limits)
        if too_large is not None:
            problems.append(Problem(norm, 1, 1, too_large))
        return problems

    def materialize(self, sha: str, pipeline: str, store_dir: Path) -> Path:
        """The pipeline directory's files, written once into `store_dir/<tree id>/` and shared by every run (and
        every commit) with the same content. Read-only: files 0444 (0555 when executable in git), directories
        0555. Symbolic links are recreated when they stay inside; `PathEscapes` otherwise, `UnsupportedEntry`
        for submodules. Safe against concurrent callers (threads or processes): the copy is built in a
        temporary directory and renamed into place, and whoever loses the race uses the winner's copy.
        """
        repo = self._repo()
        norm, tree = self._pipeline_tree(repo, sha, pipeline)
        store_dir = Path(store_dir)
        target = store_dir / str(tree.id)
        if target.is_dir():
            return target
        for path, message, kind in _inspect(repo, tree):
            error = PathEscapes if kind == "escape" else UnsupportedEntry
            raise error(f"{norm}/{path}: {message}", url=self.url)
        too_large = _too_large(repo, tree, norm, self.work_limits)
        if too_large is not None:
            raise WorkTreeTooLarge(too_large, url=self.url)

        store_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".tmp-{str(tree.id)[:12]}-", dir=store_dir))
        try:
            directories = [staging]
            for path, entry in _walk(tree, ""):
                dest = staging / path
                mode = int(entry.filemode)
                if mode == FileMode.TREE:
                    dest.mkdir()
                    directories.append(dest)
                elif mode == FileMode.LINK:
                    link_target = _link_target(repo, entry.id)
                    assert link_target is not None  # _inspect refused longer ones
                    dest.symlink_to(link_target)
                else:
                    _write_blob(repo, self.path, dest, entry.id, executable=bool(mode & 0o111))
            for directory in reversed(directories):  # children before parents: a 0555 parent is still writable
                directory.chmod(0o555)
            try:
                staging.rename(target)
            except OSError:
                if not target.is_dir():
                    raise
                _remove_tree(staging)  # another writer won; its copy has the same content
        except BaseException:
            if staging.exists():
                _remove_tree(staging)
            raise
        return target


# --- helpers (module level: they take the thread's repository explicitly) --------------------------------------------


def _commit_info(commit: pygit2.Commit) -> CommitInfo:
    # Raw bytes, decoded leniently: commits in the wild have messages and names in any encoding.
    message = commit.raw_message.decode("utf-8", errors="replace")
    author = commit.author
    return CommitInfo(
        sha=str(commit.id),
        parents=tuple(str(p) for p in commit.parent_ids),
        author_name=author.raw_name.decode("utf-8", errors="replace"),
        author_email=author.raw_email.decode("utf-8", errors="replace"),
        message=message,
        subject=message.strip().split("\n", 1)[0].strip() if message.strip() else "",
        committed_at=datetime.fromtimestamp(commit.commit_time, tz=UTC),
    )


def _resolve_hex(repo: pygit2.Repository, hex_ref: str, url: str) -> str:
    """A commit id from a full id or a prefix. libgit2 compares prefixes against every object, not only
    commits, so a prefix shared with a blob or tree is ambiguous too (git would pick the commit)."""
    try:
        obj = repo.get(hex_ref)
    except pygit2.AmbiguousError as e:
        raise AmbiguousRef(
            f"{hex_ref!r} matches more than one object in {url}; give more digits of the commit id", url=url
        ) from e
    except (pygit2.GitError, ValueError) as e:
        raise RefNotFound(f"{hex_ref!r} is not a commit in {url}", url=url) from e
    if obj is None:
        raise RefNotFound(f"no commit starting with {hex_ref!r} in {url} (fetched?)", url=url)
    try:
        return str(obj.peel(pygit2.Commit).id)
    except (pygit2.GitError, ValueError) as e:
        raise RefNotFound(f"{hex_ref!r} is a {obj.type_str}, not a commit", url=url) from e


class _PipelineProbe:
    """`probe(dir)`: is `dir` a pipeline in this tree? Memoised, since many changed paths share directories."""

    def __init__(self, tree: pygit2.Tree) -> None:
        self._tree = tree
        self._known: dict[str, bool] = {}

    def __call__(self, directory: str) -> bool:
        known = self._known.get(directory)
        if known is None:
            known = not is_hidden(directory) and _is_regular_file(self._tree, f"{directory}/{PIPELINE_FILE}")
            self._known[directory] = known
        return known


def _is_regular_file(tree: pygit2.Tree, path: str) -> bool:
    try:
        entry = tree[path]
    except KeyError:
        return False
    return int(entry.filemode) & _S_IFMT == _S_IFREG


def _collect_pipelines(tree: pygit2.Tree, prefix: str, out: list[str]) -> None:
    for entry in tree:
        name = entry.name
        if name is None:  # pragma: no cover - tree entries always have names
            continue
        mode = int(entry.filemode)
        if mode == FileMode.TREE:
            if not name.startswith("."):
                _collect_pipelines(cast(pygit2.Tree, entry), f"{prefix}{name}/", out)
        elif prefix and name == PIPELINE_FILE and mode & _S_IFMT == _S_IFREG:
            out.append(prefix[:-1])


def _collect_files(tree: pygit2.Tree, prefix: str, out: list[str]) -> None:
    for entry in tree:
        if entry.name is None:  # pragma: no cover
            continue
        if int(entry.filemode) == FileMode.TREE:
            _collect_files(cast(pygit2.Tree, entry), f"{prefix}{entry.name}/", out)
        else:
            out.append(prefix + entry.name)


def _walk(tree: pygit2.Tree, prefix: str) -> Iterator[tuple[str, pygit2.Object]]:
    """Every entry under `tree` (directories before their contents), with paths relative to `tree`."""
    for entry in tree:
        name = entry.name or ""
        path = prefix + name
        yield path, entry
        if int(entry.filemode) == FileMode.TREE and valid_entry_name(name):
            yield from _walk(cast(pygit2.Tree, entry), path + "/")


def _link_target(repo: pygit2.Repository, oid: pygit2.Oid) -> str | None:
    """The link's target; None when its blob is longer than any path (git stores a link as a blob of any size, so a
    "link" could be a 200 MB blob: its size is read from the header, and such a blob is never loaded)."""
    if repo.odb.read_header(oid)[1] > MAX_LINK_TARGET:
        return None
    # surrogateescape: a non-UTF-8 target round-trips to the same bytes through os.symlink.
    return cast(pygit2.Blob, repo[oid]).data.decode("utf-8", errors="surrogateescape")


_ProblemKind = Literal["escape", "unsupported"]


def _inspect(repo: pygit2.Repository, tree: pygit2.Tree) -> list[tuple[str, str, _ProblemKind]]:
    """(path, message, kind) for everything in a pipeline directory that cannot be materialized safely."""
    entries = list(_walk(tree, ""))
    targets = {path: _link_target(repo, entry.id) for path, entry in entries if int(entry.filemode) == FileMode.LINK}
    links = {path: target for path, target in targets.items() if target is not None}
    problems: list[tuple[str, str, _ProblemKind]] = []
    for path, entry in entries:
        mode = int(entry.filemode)
        if not valid_entry_name(entry.name or ""):
            problems.append((path, f"has an invalid name {entry.name!r}", "escape"))
        elif mode == FileMode.LINK and path not in links:
            problems.append((path, f"symbolic link has a target longer than {MAX_LINK_TARGET} bytes", "escape"))
        elif mode == FileMode.LINK:
            reason = symlink_problem(path, links[path], links)
            if reason is not None:
                problems.append((path, f"symbolic link {reason}", "escape"))
        elif mode == FileMode.COMMIT:
            problems.append(
                (path, "is a git submodule; Odin does not fetch submodules (vendor the files instead)", "unsupported")
            )
        elif mode != FileMode.TREE and mode & _S_IFMT != _S_IFREG:
            problems.append((path, f"has an unsupported file mode {mode:o}", "unsupported"))
    return sorted(problems)


def _too_large(repo: pygit2.Repository, tree: pygit2.Tree, norm: str, limits: WorkLimits | None) -> str | None:
    """Why the directory is over `limits`, or None. Sizes come from object headers: no blob is read, and counting
    stops at the first limit passed."""
    if limits is None:
        return None
    files = 0
    size = 0
    for _, entry in _walk(tree, ""):
        mode = int(entry.filemode)
        if mode in (FileMode.TREE, FileMode.COMMIT):
            continue
        files += 1
        if files > limits.max_files:
            return (
                f"{norm} has more than {limits.max_files:,} files, more than a run's working tree may hold "
                f"({limits.setting}); keep datasets and generated files out of the pipeline directory (on a volume, "
                "${ROOT_PATH}, or fetched by a task)"
            )
        size += repo.odb.read_header(entry.id)[1]
        if size > limits.max_bytes:
            return (
                f"{norm} holds more than {limits.max_bytes:,} bytes, more than a run's working tree may hold "
                f"({limits.setting}); keep datasets and model weights out of the pipeline directory (on a volume, "
                "${ROOT_PATH}, or fetched by a task)"
            )
    return None


def _write_blob(repo: pygit2.Repository, repo_path: Path, dest: Path, oid: pygit2.Oid, *, executable: bool) -> None:
    """Write blob `oid` to the new file `dest` with memory bounded by a chunk, not by the blob (`_blobs.py`)."""
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        _, size = repo.odb.read_header(oid)
        if size <= STREAM_THRESHOLD:
            write_chunks(fd, iter([cast(pygit2.Blob, repo[oid]).data]))
        else:
            chunks = stream_blob(repo_path, str(oid))
            try:
                if chunks is not None:
                    write_chunks(fd, chunks)
            except CorruptObject as e:
                log.warning("%s; reading it through libgit2 instead", e)
                chunks = None
            if chunks is None:  # a delta, or not readable here: libgit2 holds it once, Python a chunk at a time
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
                with pygit2.BlobIO(cast(pygit2.Blob, repo[oid])) as f:
                    write_chunks(fd, iter(lambda: f.read(CHUNK), b""))
        os.fchmod(fd, 0o555 if executable else 0o444)
    finally:
        os.close(fd)


def _remove_tree(path: Path) -> None:
    """Remove a (partly) materialized directory, whose read-only directories rmtree alone cannot empty."""
    with contextlib.suppress(FileNotFoundError):
        path.chmod(stat.S_IRWXU)
    for root, dirs, _ in os.walk(path):
        for name in dirs:
            child = Path(root) / name
            if not child.is_symlink():
                child.chmod(stat.S_IRWXU)
    shutil.rmtree(path, ignore_errors=True)
