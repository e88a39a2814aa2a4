"""Editing a pipeline's files through Odin: one file written as a new commit on the followed branch, pushed.

The commit is made in the mirror's bare cache (nothing is checked out) on top of the branch's newest tip, authored by
the user and committed by Odin, and pushed as a fast-forward: if someone pushed in between, the remote refuses and
the caller gets `EditConflict` (nothing is forced, nothing is lost). A caller that read the file at some commit can
pass it as `expected_base` to be told when the branch moved since (optimistic concurrency, like `If-Match`).

The commit then reaches Odin like any other push (sync, validation, a run), so the API never bypasses the review
trail that git is.

Path rules are the security boundary of this module: the file must be inside the pipeline directory — relative, no
`..`, no NUL or control characters, no backslashes (they are path separators to some tools), nothing named `.git`,
and no symbolic link on the way (a link could lead the write anywhere in the repository).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import pygit2
from pygit2.enums import FileMode

from odin.controller.git._transport import CallbackRefusal, OdinCallbacks, translate_error
from odin.controller.git.errors import GitError, PathEscapes, UnsupportedEntry
from odin.controller.git.mirror import Mirror
from odin.controller.git.paths import PIPELINE_FILE, PIPELINE_FILES, TEMPLATE_FILE, is_hidden, normalize_repo_path

__all__ = ["Author", "EditConflict", "FileCommit", "NotAPipeline", "commit_file", "pipeline_file_path"]

_S_IFMT = 0o170000
_S_IFREG = 0o100000
_EDIT_REF = "refs/odin/edits/"

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class EditConflict(GitError):
    """The branch moved: the expected base is not its tip, or the remote refused the fast-forward push."""


class NotAPipeline(GitError):
    """The directory is not a pipeline at the branch tip (and the write does not create its main.yml or its
    main.yml.jinja2)."""


@dataclass(frozen=True, slots=True)
class Author:
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class FileCommit:
    sha: str  # the new commit (or the base, when the content was already there)
    base: str
    path: str  # repository-relative
    branch: str
    changed: bool


def pipeline_file_path(pipeline: str, path: str) -> tuple[str, str]:
    """(pipeline directory, repository-relative file path), both normalised; `PathEscapes` when not allowed."""
    for value, what in ((pipeline, "pipeline"), (path, "path")):
        if "\\" in value:
            raise PathEscapes(f"{what} {value!r} contains a backslash; use '/' between directories")
        if any(ord(c) < 32 or ord(c) == 127 for c in value.replace("\0", "")):
            raise PathEscapes(f"{what} {value!r} contains control characters")
    directory = normalize_repo_path(pipeline)
    if not directory or is_hidden(directory):
        raise PathEscapes(f"{pipeline!r} is not a pipeline directory (not the root, not under a dot-directory)")
    relative = normalize_repo_path(path)
    if not relative:
        raise PathEscapes(f"{path!r} names the pipeline directory itself, not a file in it")
    if relative != path:  # `a//b`, `./a`, `a/`: say what was meant instead of guessing it
        raise PathEscapes(f"path {path!r} has empty or '.' components; write it as {relative!r}")
    if any(part.rstrip(". ").lower() == ".git" for part in relative.split("/")):
        raise PathEscapes(f"{path!r}: nothing named .git can be written")
    return directory, f"{directory}/{relative}"


def commit_file(
    mirror: Mirror,
    *,
    pipeline: str,
    path: str,
    content: bytes,
    author: Author,
    committer: Author,
    message: str | None = None,
    expected_base: str | None = None,
    before_push: Callable[[str], None] | None = None,
) -> FileCommit:
    """Write `content` at `path` inside `pipeline` as a new commit on the followed branch, and push it.

    `before_push` hears the new commit's sha before anyone else can fetch it (the caller attributes the commit to
    its author there, ahead of any poll)."""
    directory, full = pipeline_file_path(pipeline, path)
    with _lock_for(mirror):
        tip = mirror.fetch().tip
        if expected_base is not None and expected_base.lower() != tip:
            raise EditConflict(
                f"{mirror.branch} is at {tip[:12]} now, not at {expected_base[:12]}: read the file again and "
                "reapply your change",
                url=mirror.url,
            )
        repo = mirror._repo()
        base = cast(pygit2.Commit, repo[tip])
        # A directory holding a main.yml.jinja2 is a pipeline too (`odin.controller.pipelines`), so its other files
        # are editable, and writing either file is how a pipeline is created.
        pipeline_files = [f"{directory}/{name}" for name in PIPELINE_FILES]
        if full not in pipeline_files and not any(_is_regular(base.tree, f) for f in pipeline_files):
            raise NotAPipeline(
                f"{directory!r} is not a pipeline at {tip[:12]} (it has no {PIPELINE_FILE} nor {TEMPLATE_FILE}); "
                f"create its {PIPELINE_FILE} first (or its {TEMPLATE_FILE})",
                url=mirror.url,
            )
        mode = _check_route(base.tree, full)
        blob = repo.create_blob(content)
        tree = _write_tree(repo, base.tree, full.split("/"), blob, mode)
        if tree == base.tree.id:
            return FileCommit(tip, tip, full, mirror.branch, changed=False)
        now = int(time.time())
        sha = repo.create_commit(
            None,
            pygit2.Signature(author.name, author.email, now, 0),
            pygit2.Signature(committer.name, committer.email, now, 0),
            message or f"Update {full}",
            tree,
            [base.id],
        )
        if before_push is not None:
            before_push(str(sha))
        _push(mirror, repo, str(sha))
        return FileCommit(str(sha), tip, full, mirror.branch, changed=True)


def _lock_for(mirror: Mirror) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(str(mirror.path), threading.Lock())


def _is_regular(tree: pygit2.Tree, path: str) -> bool:
    try:
        entry = tree[path]
    except KeyError:
        return False
    return int(entry.filemode) & _S_IFMT == _S_IFREG


def _check_route(tree: pygit2.Tree, path: str) -> int:
    """The mode to write with (the existing file's, or a plain file's). Every directory on the way must be a real
    directory (not a symbolic link, not a file); an existing entry at `path` must be a regular file."""
    parts = path.split("/")
    current = tree
    for i, name in enumerate(parts[:-1]):
        try:
            entry = current[name]
        except KeyError:
            return int(FileMode.BLOB)  # the rest of the way is new directories
        where = "/".join(parts[: i + 1])
        mode = int(entry.filemode)
        if mode == FileMode.LINK:
            raise PathEscapes(f"{where} is a symbolic link; files are never written through links")
        if mode != FileMode.TREE:
            raise UnsupportedEntry(f"{where} is a file, not a directory")
        current = cast(pygit2.Tree, entry)
    try:
        entry = current[parts[-1]]
    except KeyError:
        return int(FileMode.BLOB)
    mode = int(entry.filemode)
    if mode == FileMode.LINK:
        raise PathEscapes(f"{path} is a symbolic link; it cannot be overwritten through the API")
    if mode & _S_IFMT != _S_IFREG:
        raise UnsupportedEntry(f"{path} is not a regular file (a directory or a submodule)")
    return mode


def _write_tree(
    repo: pygit2.Repository, base: pygit2.Tree | None, parts: list[str], blob: pygit2.Oid, mode: int
) -> pygit2.Oid:
    builder = repo.TreeBuilder(base) if base is not None else repo.TreeBuilder()
    name = parts[0]
    if len(parts) == 1:
        builder.insert(name, blob, mode)
    else:
        existing = base[name] if base is not None and name in base else None
        sub = cast(pygit2.Tree, existing) if existing is not None and int(existing.filemode) == FileMode.TREE else None
        builder.insert(name, _write_tree(repo, sub, parts[1:], blob, mode), FileMode.TREE)
    return builder.write()


class _PushCallbacks(OdinCallbacks):
    def __init__(self, mirror: Mirror) -> None:
        super().__init__(mirror._credentials, mirror._url)
        self.rejected: list[str] = []

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message:
            self.rejected.append(f"{refname}: {message}")


def _push(mirror: Mirror, repo: pygit2.Repository, sha: str) -> None:
    """Push `sha` to the branch as a fast-forward (libgit2 pushes references, so through a temporary one)."""
    temporary = f"{_EDIT_REF}{sha}"
    repo.references.create(temporary, sha, force=True)
    callbacks = _PushCallbacks(mirror)
    try:
        remote = repo.remotes.create_anonymous(mirror._url.transport_url)
        remote.push([f"{temporary}:refs/heads/{mirror.branch}"], callbacks=callbacks, proxy=mirror._proxy)
    except (pygit2.GitError, CallbackRefusal, OSError) as e:
        text = str(e).lower()
        if "non-fast-forward" in text or "fetch first" in text or "not present locally" in text:
            raise EditConflict(
                f"{mirror.branch} moved while the change was being pushed; read the file again and reapply it",
                url=mirror.url,
            ) from e
        raise translate_error(e, mirror._url, mirror._credentials) from e
    finally:
        repo.references.delete(temporary)
    if callbacks.rejected:
        raise EditConflict(
            f"the remote refused the push to {mirror.branch} ({'; '.join(callbacks.rejected)}); it may have moved "
            "(read the file again) or be protected",
            url=mirror.url,
        )
