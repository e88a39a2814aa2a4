"""Reading a commit's trees without checking anything out: which directories are pipelines, which pipelines a diff
touched, what a pipeline directory holds that cannot be copied safely, and whether it is over the size limits.

Everything reads object headers and trees only -- no blob is loaded except a symbolic link's target, whose size is
checked first -- so these stay cheap on a 500-pipeline repository (benchmarks/bench_git_poll.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, cast

import pygit2
from pygit2.enums import FileMode

from odin.controller.git.models import WorkLimits
from odin.controller.git.paths import PIPELINE_FILES, ancestors, is_hidden, symlink_problem, valid_entry_name

S_IFMT = 0o170000
S_IFREG = 0o100000
MAX_LINK_TARGET = 4096
"""Longest symbolic link target read (Linux's PATH_MAX): a longer one could not be created anyway."""


def pipelines_touched(base: pygit2.Tree, new: pygit2.Tree, paths: set[str]) -> tuple[list[str], list[str]]:
    """(changed, deleted) pipelines, sorted: each changed path belongs to the nearest enclosing directory that is a
    pipeline in `new` (nested pipelines own their own subtree); one whose `main.yml` is gone in `new` is deleted."""
    is_new_pipeline = PipelineProbe(new)
    is_base_pipeline = PipelineProbe(base)
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
    return sorted(changed), sorted(deleted)


class PipelineProbe:
    """`probe(dir)`: is `dir` a pipeline in this tree? Memoised, since many changed paths share directories."""

    def __init__(self, tree: pygit2.Tree) -> None:
        self._tree = tree
        self._known: dict[str, bool] = {}

    def __call__(self, directory: str) -> bool:
        known = self._known.get(directory)
        if known is None:
            known = not is_hidden(directory) and any(
                is_regular_file(self._tree, f"{directory}/{name}") for name in PIPELINE_FILES
            )
            self._known[directory] = known
        return known


def is_regular_file(tree: pygit2.Tree, path: str) -> bool:
    try:
        entry = tree[path]
    except KeyError:
        return False
    return int(entry.filemode) & S_IFMT == S_IFREG


def collect_pipelines(tree: pygit2.Tree, prefix: str, out: list[str]) -> None:
    """Directories holding a regular `main.yml` or `main.yml.jinja2` (each once)."""
    found = False
    for entry in tree:
        name = entry.name
        if name is None:  # pragma: no cover - tree entries always have names
            continue
        mode = int(entry.filemode)
        if mode == FileMode.TREE:
            if not name.startswith("."):
                collect_pipelines(cast(pygit2.Tree, entry), f"{prefix}{name}/", out)
        elif prefix and not found and name in PIPELINE_FILES and mode & S_IFMT == S_IFREG:
            found = True
            out.append(prefix[:-1])


def collect_files(tree: pygit2.Tree, prefix: str, out: list[str]) -> None:
    for entry in tree:
        if entry.name is None:  # pragma: no cover
            continue
        if int(entry.filemode) == FileMode.TREE:
            collect_files(cast(pygit2.Tree, entry), f"{prefix}{entry.name}/", out)
        else:
            out.append(prefix + entry.name)


def walk(tree: pygit2.Tree, prefix: str) -> Iterator[tuple[str, pygit2.Object]]:
    """Every entry under `tree` (directories before their contents), with paths relative to `tree`."""
    for entry in tree:
        name = entry.name or ""
        path = prefix + name
        yield path, entry
        if int(entry.filemode) == FileMode.TREE and valid_entry_name(name):
            yield from walk(cast(pygit2.Tree, entry), path + "/")


def link_target(repo: pygit2.Repository, oid: pygit2.Oid) -> str | None:
    """The link's target; None when its blob is longer than any path (git stores a link as a blob of any size, so a
    "link" could be a 200 MB blob: its size is read from the header, and such a blob is never loaded)."""
    if repo.odb.read_header(oid)[1] > MAX_LINK_TARGET:
        return None
    # surrogateescape: a non-UTF-8 target round-trips to the same bytes through os.symlink.
    return cast(pygit2.Blob, repo[oid]).data.decode("utf-8", errors="surrogateescape")


ProblemKind = Literal["escape", "unsupported"]


def inspect(repo: pygit2.Repository, tree: pygit2.Tree) -> list[tuple[str, str, ProblemKind]]:
    """(path, message, kind) for everything in a pipeline directory that cannot be materialized safely."""
    entries = list(walk(tree, ""))
    targets = {path: link_target(repo, entry.id) for path, entry in entries if int(entry.filemode) == FileMode.LINK}
    links = {path: target for path, target in targets.items() if target is not None}
    problems: list[tuple[str, str, ProblemKind]] = []
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
        elif mode != FileMode.TREE and mode & S_IFMT != S_IFREG:
            problems.append((path, f"has an unsupported file mode {mode:o}", "unsupported"))
    return sorted(problems)


def too_large(repo: pygit2.Repository, tree: pygit2.Tree, norm: str, limits: WorkLimits | None) -> str | None:
    """Why the directory is over `limits`, or None. Sizes come from object headers: no blob is read, and counting
    stops at the first limit passed."""
    if limits is None:
        return None
    files = 0
    size = 0
    for _, entry in walk(tree, ""):
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
