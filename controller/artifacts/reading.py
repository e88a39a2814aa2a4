"""Reading a recorded artifact back for a user: one file by byte range, or a directory's files, with no whole read.

A task run records each artifact as `{path, location, type, size, digest}` (`odin.controller.executors.outputs`). The
bytes are in one of two places, tried in this order:

1. the attempt's own files on this machine (`location`, under `<data_dir>/outputs`), where the local executor left
   them: no copy into the store is needed to serve them;
2. the artifact store, by digest (a file is a blob, a directory a tree manifest, see `trees`): where outputs of pods
   land, and what is left when the attempt's files are gone.

A location is trusted only inside the outputs root, and is opened one path component at a time with `O_NOFOLLOW`
relative to the previous directory's descriptor: the files may belong to a less trusted task user
(`ODIN_LOCAL_TASK_USER`), who could otherwise swap a directory for a symbolic link to a file of Odin's between the
check and the open. Only regular files are served (a FIFO would block the reader).

A file inside a directory artifact has no recorded digest of its own (hashing it on each request would read it
whole), so its validator is `<directory digest>/<path>`: the directory's digest covers every file's digest, so the
pair changes exactly when the file's bytes can have.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odin.controller.artifacts.digest import CHUNK, is_digest
from odin.controller.artifacts.errors import ArtifactError, ArtifactNotFound, UnsafeArtifactPath
from odin.controller.artifacts.store import ArtifactStore
from odin.controller.artifacts.trees import Tree, read_tree, safe_relpath

Chunks = contextlib.AbstractContextManager[Iterator[bytes]]


@dataclass(frozen=True, slots=True)
class FileSource:
    """One file to serve: its size, its validator (the ETag's value) and a way to read a range of it."""

    size: int
    etag: str
    _open: Callable[[int, int | None], Chunks]

    def open_range(self, start: int = 0, length: int | None = None) -> Chunks:
        """Chunks from byte `start`, `length` bytes (to the end when None); the file stays open until the block ends."""
        return self._open(start, length)


@dataclass(frozen=True, slots=True)
class DirectoryFile:
    """A file of a directory artifact: its relative POSIX path and size."""

    path: str
    size: int
    executable: bool = False


class ArtifactReader:
    """Serves recorded artifacts from `outputs_root` (the local executor's attempts) or, failing that, the store.

    `store` is a callable so that the store (an S3 client, credentials read from files) is opened on first need, not
    when the API starts; a server whose artifacts are all local never opens it.
    """

    def __init__(self, outputs_root: Path, store: Callable[[], ArtifactStore] | None = None) -> None:
        self.outputs_root = outputs_root
        self._store_factory = store
        self._store: ArtifactStore | None = None

    def _open_store(self) -> ArtifactStore | None:
        if self._store is None and self._store_factory is not None:
            self._store = self._store_factory()
        return self._store

    # -- files -----------------------------------------------------------------------------------------------------
    def file(self, record: Mapping[str, Any]) -> FileSource:
        """The file artifact `record` describes; `ArtifactNotFound` when neither place has it."""
        digest = str(record.get("digest", ""))
        local = self._local(record)
        if local is not None:
            with _open_regular(local, ()) as f:
                size = os.fstat(f.fileno()).st_size
            return FileSource(size, digest, lambda start, length: _file_range(local, (), start, length))
        return self._blob(digest, digest)

    def _blob(self, digest: str, etag: str) -> FileSource:
        store = self._open_store()
        if store is None or not is_digest(digest):
            raise ArtifactNotFound("its files are gone from this machine and no artifact store holds them")
        blob = store.stat(digest)
        if blob is None:
            raise ArtifactNotFound(f"{digest} is neither on this machine nor in the artifact store (deleted?)")
        return FileSource(blob.size, etag, lambda start, length: store.open_range(digest, start, length))

    # -- directories -----------------------------------------------------------------------------------------------
    def listing(self, record: Mapping[str, Any]) -> list[DirectoryFile]:
        """Every regular file of the directory artifact `record`, sorted by path (links and special files are
        skipped: they are not served)."""
        local = self._local(record)
        if local is not None:
            return sorted(_walk(local), key=lambda f: f.path)
        tree = self._tree(record)
        return [DirectoryFile(e.path, e.size, e.executable) for e in tree.entries]

    def member(self, record: Mapping[str, Any], path: str) -> FileSource:
        """The file at `path` inside the directory artifact `record`."""
        parts = safe_relpath(path).parts
        etag = f"{record.get('digest', '')}/{path}"
        local = self._local(record)
        if local is not None:
            with _open_regular(local, parts) as f:
                size = os.fstat(f.fileno()).st_size
            return FileSource(size, etag, lambda start, length: _file_range(local, parts, start, length))
        for entry in self._tree(record).entries:
            if entry.path == path:
                return self._blob(entry.digest, etag)
        raise ArtifactNotFound(f"no file {path!r} in it")

    def _tree(self, record: Mapping[str, Any]) -> Tree:
        store = self._open_store()
        digest = str(record.get("digest", ""))
        if store is None or not is_digest(digest):
            raise ArtifactNotFound("its files are gone from this machine and no artifact store holds them")
        return read_tree(store, digest)

    # -- where the attempt left it ---------------------------------------------------------------------------------
    def _local(self, record: Mapping[str, Any]) -> tuple[str, ...] | None:
        """The location's path components under the outputs root, when it is there and still exists; else None."""
        location = record.get("location")
        if not isinstance(location, str) or not location:
            return None
        try:
            relative = Path(location).relative_to(self.outputs_root)
        except ValueError:
            return None  # not ours to open: a URI, or a path outside the outputs root
        parts = relative.parts
        if not parts or any(p in ("", ".", "..") for p in parts):
            return None
        full = (str(self.outputs_root), *parts)
        try:
            self.outputs_root.joinpath(*parts).lstat()
        except OSError:
            return None
        return full


@contextlib.contextmanager
def _open_dir(components: tuple[str, ...]) -> Iterator[int]:
    """A descriptor of the directory `components` name: the first is the trusted root, each later one is opened
    relative to the one before with O_NOFOLLOW, so no symbolic link is followed below the root."""
    fd = os.open(components[0], os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in components[1:]:
            try:
                nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as e:
                raise _missing(part, e) from e
            os.close(fd)
            fd = nxt
        yield fd
    finally:
        os.close(fd)


def _missing(part: str, e: OSError) -> ArtifactError:
    if isinstance(e, FileNotFoundError):
        return ArtifactNotFound(f"no file {part!r} in it")
    return UnsafeArtifactPath(f"{part!r} is not a plain file or directory ({e.strerror})")


@contextlib.contextmanager
def _open_regular(location: tuple[str, ...], inner: tuple[str, ...]) -> Iterator[Any]:
    """The regular file at `location` + `inner`, opened without following any link below the outputs root."""
    components = (*location, *inner)
    with _open_dir(components[:-1]) as parent:
        try:
            fd = os.open(components[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
        except OSError as e:
            raise _missing(components[-1], e) from e
    f = os.fdopen(fd, "rb")
    with f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeArtifactPath(f"{components[-1]!r} is not a regular file")
        yield f


@contextlib.contextmanager
def _file_range(
    location: tuple[str, ...], inner: tuple[str, ...], start: int, length: int | None
) -> Iterator[Iterator[bytes]]:
    if start < 0 or (length is not None and length < 0):
        raise ValueError("start and length must not be negative")
    with _open_regular(location, inner) as f:
        f.seek(start)

        def chunks() -> Iterator[bytes]:
            left = length
            while left is None or left > 0:
                chunk = f.read(CHUNK if left is None else min(CHUNK, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

        yield chunks()


def _walk(location: tuple[str, ...]) -> Iterator[DirectoryFile]:
    """The regular files under a directory, recursively, never following a link."""
    pending: list[tuple[tuple[str, ...], str]] = [((), "")]
    while pending:
        inner, prefix = pending.pop()
        with _open_dir((*location, *inner)) as fd, os.scandir(fd) as entries:
            for entry in entries:
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    pending.append(((*inner, entry.name), f"{prefix}{entry.name}/"))
                elif stat.S_ISREG(info.st_mode):
                    yield DirectoryFile(f"{prefix}{entry.name}", info.st_size, bool(info.st_mode & stat.S_IXUSR))
