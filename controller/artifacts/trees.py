"""Directory artifacts as trees: a JSON manifest of each file's path, size, digest and executable bit.

Why a manifest of file digests rather than one deterministic tar: each file is a blob of its own, so a checkpoint
directory where one shard changed between two runs stores only that shard (a tar changes as a whole); one file of a
tree can be listed, downloaded or range-read without unpacking anything; no tar headers to make deterministic
(mtimes, owners, ordering); and uploads and downloads of the files run in parallel. The cost is one request per
file, paid on threads (`workers`) — fine for the tens to thousands of files ML outputs have.

The manifest is canonical JSON (sorted entries, sorted keys, no whitespace), so the same directory contents always
give the same tree digest. Empty directories, file modes other than the executable bit, owners and times are not
kept (as in git). Symbolic links and special files are refused rather than followed: following one could store a
file from outside the output directory.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from odin.controller.artifacts.digest import check_digest
from odin.controller.artifacts.errors import ArtifactError, CorruptArtifact, UnsafeArtifactPath
from odin.controller.artifacts.store import ArtifactStore, Blob

FORMAT = "odin.tree/1"
MANIFEST_LIMIT = 64 * 1024 * 1024
"""Largest manifest read back (about 300,000 entries): a blob above it is not a tree."""


@dataclass(frozen=True, slots=True)
class TreeEntry:
    """One file of a tree: its relative POSIX path, size, digest and whether it is executable."""

    path: str
    size: int
    digest: str
    executable: bool = False


@dataclass(frozen=True, slots=True)
class Tree:
    """A stored tree: the manifest's blob, and the entries it lists."""

    manifest: Blob
    entries: tuple[TreeEntry, ...]

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def size(self) -> int:
        """Bytes of file content (what a user thinks of as the directory's size)."""
        return sum(e.size for e in self.entries)

    def digests(self) -> frozenset[str]:
        """Every blob this tree keeps alive: the manifest and each file (what retention must not delete)."""
        return frozenset({self.manifest.digest, *(e.digest for e in self.entries)})


def safe_relpath(path: str) -> PurePosixPath:
    """`path` as a relative path that stays inside the directory it is joined to; `UnsafeArtifactPath` otherwise."""
    pure = PurePosixPath(path)
    if (
        not path
        or "\x00" in path
        or "\\" in path
        or pure.is_absolute()
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise UnsafeArtifactPath(f"not a plain relative path: {path[:200]!r}")
    return pure


def encode_manifest(entries: Iterable[TreeEntry]) -> bytes:
    """The canonical manifest bytes for `entries` (sorted by path)."""
    rows = [
        {"path": e.path, "size": e.size, "digest": e.digest, **({"executable": True} if e.executable else {})}
        for e in sorted(entries, key=lambda e: e.path)
    ]
    return json.dumps({"format": FORMAT, "entries": rows}, sort_keys=True, separators=(",", ":")).encode()


def decode_manifest(data: bytes) -> tuple[TreeEntry, ...]:
    """Entries of a manifest; `CorruptArtifact` when it is not one, `UnsafeArtifactPath` for an escaping path."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise CorruptArtifact(f"not an Odin tree manifest (format {FORMAT} expected)")
        entries = tuple(
            TreeEntry(
                path=str(row["path"]),
                size=int(row["size"]),
                digest=check_digest(str(row["digest"])),
                executable=bool(row.get("executable", False)),
            )
            for row in doc["entries"]
        )
    except (ValueError, KeyError, TypeError) as e:
        raise CorruptArtifact(f"tree manifest does not parse: {e}") from e
    for entry in entries:
        safe_relpath(entry.path)
    return entries


def scan(root: Path) -> list[tuple[str, Path, bool]]:
    """(relative path, absolute path, executable) of every regular file under `root`, sorted; symlinks and special
    files raise `ArtifactError`."""
    found: list[tuple[str, Path, bool]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in [*dirnames, *filenames]:
            path = here / name
            st = path.lstat()
            rel = path.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                raise ArtifactError(f"{rel}: symbolic links are not stored in artifacts (copy the file instead)")
            if stat.S_ISREG(st.st_mode):
                found.append((rel, path, bool(st.st_mode & stat.S_IXUSR)))
            elif not stat.S_ISDIR(st.st_mode):
                raise ArtifactError(f"{rel}: not a regular file or directory")
    return sorted(found)


def put_tree(store: ArtifactStore, root: Path, *, workers: int = 8) -> Tree:
    """Store every file under `root`, then the manifest; the files upload on `workers` threads."""
    files = scan(root)

    def put(item: tuple[str, Path, bool]) -> TreeEntry:
        rel, path, executable = item
        blob = store.put_file(path)
        return TreeEntry(rel, blob.size, blob.digest, executable)

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="odin-tree-put") as pool:
        entries = tuple(pool.map(put, files))
    manifest = store.put_bytes(encode_manifest(entries))
    return Tree(manifest, entries)


def read_tree(store: ArtifactStore, digest: str) -> Tree:
    """The tree stored under `digest` (its manifest, verified and parsed)."""
    data = store.read_bytes(digest, MANIFEST_LIMIT)
    return Tree(Blob(digest, len(data)), decode_manifest(data))


def get_tree(store: ArtifactStore, digest: str, dest: Path, *, workers: int = 8, verify: bool = True) -> Tree:
    """Write tree `digest` under `dest` (created; existing files of the same paths are replaced)."""
    tree = read_tree(store, digest)
    dest.mkdir(parents=True, exist_ok=True)
    targets = [(entry, dest.joinpath(*safe_relpath(entry.path).parts)) for entry in tree.entries]
    for parent in sorted({target.parent for _, target in targets}):
        parent.mkdir(parents=True, exist_ok=True)

    def get(item: tuple[TreeEntry, Path]) -> None:
        entry, target = item
        store.get_file(entry.digest, target, verify=verify)
        if entry.executable:
            target.chmod(target.stat().st_mode | 0o111)

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="odin-tree-get") as pool:
        list(pool.map(get, targets))
    return tree


WORK_TREES = "trees"
"""Records folder of the pipeline directories stored for pods: `records/trees/<git tree id>/digest` holds the
tree's digest. One folder per directory so retention can list them (`ArtifactStore.record_folders`) and keep every
blob they reference."""


def work_tree_record(tree_oid: str) -> str:
    """The record key under which a pipeline directory's tree digest is kept (see `WORK_TREES`)."""
    return f"{WORK_TREES}/{tree_oid}/digest"
