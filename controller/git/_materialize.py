"""Writing a pipeline directory's files out of the cache: once per tree id, read-only, atomically.

The copy is built in a temporary directory next to its final place and renamed into it, so concurrent writers
(threads or processes) never see half a copy, and whoever loses the race removes theirs and uses the winner's.
Blobs are written with memory bounded by a chunk, not by the blob (`_blobs.py`). The caller has already refused
what cannot be copied safely (`_trees.inspect`, `_trees.too_large`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import cast

import pygit2
from pygit2.enums import FileMode

from odin.controller.git._blobs import CHUNK, STREAM_THRESHOLD, CorruptObject, stream_blob, write_chunks
from odin.controller.git._trees import link_target, walk

log = logging.getLogger(__name__)


def write_tree(repo: pygit2.Repository, repo_path: Path, tree: pygit2.Tree, store_dir: Path) -> Path:
    """`tree`'s files in `store_dir/<tree id>/` (files 0444, 0555 when executable in git; directories 0555;
    symbolic links as they are)."""
    target = store_dir / str(tree.id)
    store_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{str(tree.id)[:12]}-", dir=store_dir))
    try:
        directories = [staging]
        for path, entry in walk(tree, ""):
            dest = staging / path
            mode = int(entry.filemode)
            if mode == FileMode.TREE:
                dest.mkdir()
                directories.append(dest)
            elif mode == FileMode.LINK:
                target_text = link_target(repo, entry.id)
                assert target_text is not None  # inspect() refused longer ones
                dest.symlink_to(target_text)
            else:
                write_blob(repo, repo_path, dest, entry.id, executable=bool(mode & 0o111))
        for directory in reversed(directories):  # children before parents: a 0555 parent is still writable
            directory.chmod(0o555)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():
                raise
            remove_tree(staging)  # another writer won; its copy has the same content
    except BaseException:
        if staging.exists():
            remove_tree(staging)
        raise
    return target


def write_blob(repo: pygit2.Repository, repo_path: Path, dest: Path, oid: pygit2.Oid, *, executable: bool) -> None:
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


def remove_tree(path: Path) -> None:
    """Remove a (partly) materialized directory, whose read-only directories rmtree alone cannot empty."""
    with contextlib.suppress(FileNotFoundError):
        path.chmod(stat.S_IRWXU)
    for root, dirs, _ in os.walk(path):
        for name in dirs:
            child = Path(root) / name
            if not child.is_symlink():
                child.chmod(stat.S_IRWXU)
    shutil.rmtree(path, ignore_errors=True)
