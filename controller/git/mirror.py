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

`Mirror` holds the state (the cache, its locks, the per-thread handles, the caches of pipelines and missed refs);
the work is in private modules, each taking the thread's repository handle: `_fetch.py` (remote transport and the
references a fetch maintains), `_commits.py` (commit lookup, resolution, reachability), `_trees.py` (pipelines, diffs,
what a directory holds), `_materialize.py` (writing a directory out), `_blobs.py` (streaming large blobs).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal, cast

import pygit2
from pygit2.enums import FileMode, RepositoryOpenFlag, SortMode

from odin.controller.git import _fetch
from odin.controller.git._commits import HEX_PREFIX, MIN_PREFIX, commit_info, commit_of, reached, resolve_hex, tag_tips
from odin.controller.git._materialize import write_tree
from odin.controller.git._transport import configure_libgit2
from odin.controller.git._trees import (
    S_IFMT,
    S_IFREG,
    collect_files,
    collect_pipelines,
    inspect,
    pipelines_touched,
)
from odin.controller.git._trees import too_large as too_large_for
from odin.controller.git.credentials import Credentials, CredentialSource, current_credentials
from odin.controller.git.errors import (
    FileMissing,
    FileTooLarge,
    PathEscapes,
    RefNotFound,
    UnsupportedEntry,
    WorkTreeTooLarge,
)
from odin.controller.git.models import ChangeSet, CommitInfo, FetchResult, FileChange, FileChanges, WorkLimits
from odin.controller.git.paths import normalize_repo_path
from odin.controller.git.refs import MissedRefs, check_ref
from odin.controller.git.urls import RemoteUrl, cache_name, parse_remote_url
from odin.schema.problems import Problem

__all__ = ["Mirror"]

_PIPELINES_CACHE_SIZE = 64
_DELTA_WORDS = {"A": "added", "M": "modified", "D": "deleted", "R": "renamed", "T": "typechange", "C": "added"}


_FETCH_SEQUENCE = itertools.count(1)
_LAST_FETCH: dict[str, int] = {}
"""Cache path -> the sequence number of the last fetch into it by any `Mirror` of this process (see `fetches`)."""
_FETCH_LISTENERS: dict[str, list[weakref.WeakMethod[Callable[[], None]]]] = {}
"""Cache path -> the bound methods to call after each fetch into it (see `on_fetch`), held weakly: a stopped
scheduler that nothing else holds is gone from here too."""


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
        credentials: CredentialSource | None = None,
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
        self._credential_source = credentials
        self._proxy: Literal[True] | str | None = proxy if proxy is True or isinstance(proxy, str) else None
        self.cache_dir = Path(cache_dir)
        self.path = self.cache_dir / cache_name(self._url)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._tracking_ref = _fetch.Source(self._url, None, self._proxy, branch).tracking_ref
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

    @property
    def _credentials(self) -> Credentials | None:
        """The credentials to connect with now (references are resolved again when their secret changed)."""
        return current_credentials(self._credential_source)

    def _source(self) -> _fetch.Source:
        """What one connection uses: built per fetch, with the credentials as they are at that moment. Raises
        `SecretUnavailable` when a credential reference does not resolve now (the sync records it on the
        repository and retries)."""
        return _fetch.Source(self._url, self._credentials, self._proxy, self.branch)

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
        """Bring the cache up to date with the remote's branch and tags (`_fetch.py`: one round trip when nothing
        changed). Raises `BranchNotFound` when the branch is gone (the cache keeps its last tip),
        `RemoteUnreachable` (transient), `AuthenticationFailed`, `CertificateRejected`, `RepositoryNotFound`.
        """
        with self._fetch_lock, self._file_lock():
            try:
                result = _fetch.fetch(self._repo(), self._source())
            except BaseException:
                self._fetched()  # a failed fetch may have moved some references: readers must look again
                raise
            if result.fetched:
                # Only when references may have moved: the cheap comparison that found nothing new wrote nothing, and
                # waking every listener for it cost a poll cycle over 500 repositories more than the syncs did.
                self._fetched()
            return result

    def remote_branches(self) -> list[str]:
        """The branches the remote has now (names without `refs/heads/`; one round trip, nothing fetched), for
        following branches by pattern. Raises what `fetch` raises when the remote cannot be reached."""
        return _fetch.remote_branches(self._repo(), self._source())

    def remote_tags(self) -> dict[str, str]:
        """The tags the remote has now, name -> commit (one round trip, nothing fetched), for following tags by
        pattern. Raises what `fetch` raises when the remote cannot be reached."""
        return _fetch.remote_tags(self._repo(), self._source())

    def fetch_refs(self, pairs: list[tuple[str, str]], *, url: str | None = None) -> dict[str, str]:
        """Fetch the remote's refs `src` into the cache's `dst` (under `refs/odin/`), e.g. a pull request's
        `refs/pull/7/head`; with `url`, from that repository instead (a Bitbucket fork; no credentials are sent to it).
        Returns dst -> commit for the refs the remote has. Raises what `fetch` raises, and `ValueError` for a `url`
        Odin does not accept."""
        for src, dst in pairs:
            if not dst.startswith("refs/odin/") or not pygit2.reference_is_valid_name(dst):
                raise ValueError(f"{dst!r} is not a reference under refs/odin/")
            if not src.startswith("refs/") or not pygit2.reference_is_valid_name(src):
                raise ValueError(f"{src!r} is not a reference name")
        source = parse_remote_url(url) if url is not None else None
        with self._fetch_lock, self._file_lock():
            try:
                return _fetch.fetch_refs(self._repo(), self._source(), pairs, source)
            finally:
                self._fetched()

    def _fetched(self) -> None:
        # After the refs moved (or may have: a failed fetch can have updated some), never before.
        _LAST_FETCH[str(self.path)] = next(_FETCH_SEQUENCE)
        for ref in list(_FETCH_LISTENERS.get(str(self.path), ())):
            listener = ref()
            if listener is not None:
                listener()

    def on_fetch(self, listener: Callable[[], None]) -> None:
        """Call `listener`, a bound method (on the fetching thread: it must only signal, e.g. `Event.set`), after
        every fetch into this cache by any `Mirror` of this process that may have moved a reference (one that found
        the remote as the cache has it does not call it), for as long as its object lives. Once per
        listener and cache: a second call adds nothing."""
        key = str(self.path)
        alive = [ref for ref in _FETCH_LISTENERS.get(key, ()) if ref() is not None]
        if all(ref() != listener for ref in alive):
            alive.append(weakref.WeakMethod(listener))
        _FETCH_LISTENERS[key] = alive

    @property
    def fetches(self) -> int:
        """Sequence number of the last fetch into this cache by any `Mirror` of this process that may have moved a
        reference (0: none yet; a fetch that found nothing new leaves it). A
        reader that saw the same number may keep what it read of the references: the scheduler reads each followed
        branch's tip only after a fetch, not every second (2,500 ref reads a second for 500 repositories of 5
        branches). Fetches by another process sharing the cache are not seen; readers re-read now and then."""
        return _LAST_FETCH.get(str(self.path), 0)

    def ref_tip(self, name: str) -> str | None:
        """The commit a reference of the cache names (no network); None when there is no such reference."""
        return _fetch.ref_target(self._repo(), name)

    def merge_base(self, one: str, other: str) -> str | None:
        """The best common ancestor of two commits of the cache (git merge-base); None when they share none."""
        repo = self._repo()
        base = repo.merge_base(self._commit(repo, one).id, self._commit(repo, other).id)
        return None if base is None else str(base)

    def tip(self) -> str | None:
        """The branch tip as of the last successful fetch (no network); None before the first one."""
        return _fetch.ref_target(self._repo(), self._tracking_ref)

    # --- history -----------------------------------------------------------------------------------------------------

    def commit_info(self, sha: str) -> CommitInfo:
        return commit_info(self._commit(self._repo(), sha))

    def commits_between(self, old: str | None, new: str, *, limit: int | None = None) -> list[CommitInfo]:
        """Commits reachable from `new` and not from `old`, oldest first (parents before children).

        `old=None` (nothing seen before) gives just `[new]`: Odin does not build a repository's whole history.
        After a force-push this is the new side since the common ancestor. `limit` keeps the newest `limit`.
        """
        repo = self._repo()
        new_commit = self._commit(repo, new)
        if old is None:
            return [commit_info(new_commit)]
        old_commit = self._commit(repo, old)
        walker = repo.walk(new_commit.id, SortMode.TOPOLOGICAL | SortMode.TIME)
        walker.hide(old_commit.id)
        newest_first: list[CommitInfo] = []
        for commit in walker:
            newest_first.append(commit_info(commit))
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
        repo = self._repo()

        def heads() -> Iterator[str | None]:
            yield _fetch.ref_target(repo, self._tracking_ref)
            yield from tag_tips(repo)

        return reached(repo, sha, heads())

    def resolve(self, ref: str) -> str:
        """A full commit sha for a branch name (the followed one), a tag, a full sha or an unambiguous prefix of
        at least 7 hex digits. Names win over hex (as in git). Raises `InvalidRef` (before any lookup) for a name git
        would refuse, `RefNotFound` or `AmbiguousRef`. Never fetches: see `resolve_fetching`."""
        ref = check_ref(ref)
        repo = self._repo()
        if self.names_branch(ref):
            tip = _fetch.ref_target(repo, self._tracking_ref)
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
        if HEX_PREFIX.match(lowered):
            return resolve_hex(repo, lowered, self.url)
        if re.fullmatch(r"[0-9a-fA-F]{1,6}", ref):
            raise RefNotFound(f"{ref!r} is too short; give at least {MIN_PREFIX} hex digits of the commit id")
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
        return commit_of(repo, sha, self.url)

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
        collect_pipelines(tree, "", found)
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
            collect_files(new_tree, "", files)
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

        changed, deleted = pipelines_touched(base_tree, new_tree, paths)
        return ChangeSet(changed=changed, deleted=deleted, files=sorted(paths))

    def files_changed(self, sha: str, base: str | None = None, *, limit: int = 1000) -> FileChanges:
        """The files `sha` changed against `base` (default: its first parent; a root commit against an empty tree):
        what a person reviewing the commit, or comparing two runs' commits, wants to see. Renames are detected
        (similarity, as `git diff -M`), binary content is never read beyond what libgit2 needs to compare."""
        repo = self._repo()
        new_tree = self._commit(repo, sha).tree
        if base is None:
            parents = self._commit(repo, sha).parents
            base = str(parents[0].id) if parents else None
        if base is None:
            diff = new_tree.diff_to_tree(swap=True)
        else:
            diff = self._commit(repo, base).tree.diff_to_tree(new_tree)
        diff.find_similar()
        files: list[FileChange] = []
        for delta in diff.deltas:
            status = delta.status_char()
            word = _DELTA_WORDS.get(status, "modified")
            old = delta.old_file.path if word == "renamed" else None
            files.append(FileChange(word, delta.new_file.path, old))
        files.sort(key=lambda f: f.path)
        return FileChanges(base, files[:limit], truncated=len(files) > limit)

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
        if mode & S_IFMT != S_IFREG:
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
        problems = [Problem(f"{norm}/{path}", 1, 1, message) for path, message, _ in inspect(repo, tree)]
        too_large = too_large_for(repo, tree, norm, self.work_limits)
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
        for path, message, kind in inspect(repo, tree):
            error = PathEscapes if kind == "escape" else UnsupportedEntry
            raise error(f"{norm}/{path}: {message}", url=self.url)
        too_large = too_large_for(repo, tree, norm, self.work_limits)
        if too_large is not None:
            raise WorkTreeTooLarge(too_large, url=self.url)

        return write_tree(repo, self.path, tree, store_dir)
