"""The artifact store interface: blobs addressed by digest, streamed in and out, read by range.

Every backend stores a blob under `digest.object_key(digest)`, so a put of bytes the store already holds costs a hash
and a lookup, not an upload. Nothing here holds a whole blob in memory: puts stream from a file or a reader, gets
stream to a file or yield chunks, and `open_range` serves the byte ranges an HTTP `Range` request asks for.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from odin.controller.artifacts.digest import CHUNK, check_digest, hash_file
from odin.controller.artifacts.errors import ArtifactNotFound, CorruptArtifact


@dataclass(frozen=True, slots=True)
class Blob:
    """A stored object: its digest (`sha256:<hex>`) and size in bytes."""

    digest: str
    size: int


class ArtifactStore(ABC):
    """A content-addressed blob store. Implementations: `LocalStore`, `S3Store`.

    Methods are blocking (file and network I/O) and safe to call from several threads at once; an async caller runs
    them in a worker thread. Errors are `odin.controller.artifacts.errors` only.
    """

    kind: str = "abstract"
    """Short backend name for logs and the transfer manifest ("local", "s3")."""

    @abstractmethod
    def put_file(self, path: Path) -> Blob:
        """Store the file at `path` (read, never moved); a no-op upload when its digest is already stored."""

    @abstractmethod
    def put_stream(self, reader: BinaryIO) -> Blob:
        """Store everything left in `reader` (not seekable is fine: it is spooled to disk while hashed)."""

    @abstractmethod
    def get_file(self, digest: str, dest: Path, *, verify: bool = True) -> Blob:
        """Write blob `digest` to `dest` (replaced atomically; parent must exist). With `verify`, the bytes written
        are hashed and a mismatch raises `CorruptArtifact` and leaves `dest` untouched."""

    @abstractmethod
    def open_range(
        self, digest: str, start: int = 0, length: int | None = None
    ) -> contextlib.AbstractContextManager[Iterator[bytes]]:
        """Chunks of blob `digest` from byte `start`, `length` bytes (to the end when None), as a context manager so
        that an abandoned download closes its connection or file."""

    @abstractmethod
    def stat(self, digest: str) -> Blob | None:
        """The blob's size when stored, else None."""

    @abstractmethod
    def delete(self, digest: str) -> None:
        """Remove blob `digest`; deleting a missing blob is not an error (retention may race with itself)."""

    @abstractmethod
    def list(self) -> Iterator[Blob]:
        """Every blob in the store, in no particular order (for retention's sweep and for audits)."""

    @abstractmethod
    def uri(self, digest: str) -> str:
        """Where blob `digest` lives, as a user or another tool names it (`s3://bucket/key`, a local path)."""

    @abstractmethod
    def put_record(self, key: str, data: bytes) -> None:
        """Store a small named object under `records/<key>` (replaced when it exists). Records are the one thing not
        addressed by digest: a pod writes its outputs record under a key the controller knows in advance
        (`runs/<run>/<task>/<attempt>`), because the controller cannot learn a digest from a pod that ended."""

    @abstractmethod
    def get_record(self, key: str, limit: int) -> bytes | None:
        """A record's bytes, None when there is none; `CorruptArtifact` when it is larger than `limit`."""

    @abstractmethod
    def record_folders(self, prefix: str, *, after: str = "", limit: int = 1000) -> Sequence[str]:
        """The names of the folders right under `records/<prefix>/` (for `logs`: the runs with saved logs), at most
        `limit`, in the store's listing order (S3: by key, so `name + "/"`; SeaweedFS: by name; the local store: by
        key), after the folder `after` when given; fewer than `limit` only when no more are left. Retention walks
        them a page at a time, each folder once, passing the last name of a page as the next `after`."""

    @abstractmethod
    def delete_records(self, prefix: str) -> int:
        """Delete every record under `records/<prefix>/` (never a blob, never a record of another folder whose name
        merely starts the same) and say how many went; deleting what is already gone is not an error."""

    # -- conveniences over the primitives above ------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        """True when blob `digest` is stored."""
        return self.stat(digest) is not None

    def put_bytes(self, data: bytes) -> Blob:
        """Store a small in-memory value (tree manifests)."""
        return self.put_stream(io.BytesIO(data))

    def read_bytes(self, digest: str, limit: int) -> bytes:
        """A small blob's bytes, verified; `CorruptArtifact` when it is larger than `limit` (a manifest that is not
        one must not be read into memory)."""
        from odin.controller.artifacts.digest import hash_bytes

        blob = self.stat(digest)
        if blob is None:
            raise ArtifactNotFound(f"no artifact {digest} in the store")
        if blob.size > limit:
            raise CorruptArtifact(f"{digest} is {blob.size} bytes, more than the {limit} expected")
        with self.open_range(digest) as chunks:
            data = b"".join(chunks)
        if hash_bytes(data) != digest:
            raise CorruptArtifact(f"{digest}: the bytes read back hash to {hash_bytes(data)}")
        return data


@contextlib.contextmanager
def staged_file(dest: Path) -> Iterator[Path]:
    """A temporary path beside `dest`, renamed onto `dest` when the block succeeds and removed when it fails, so a
    reader of `dest` never sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    path = Path(tmp)
    try:
        yield path
        path.chmod(0o644)  # mkstemp's 0600 would hide a downloaded input from a task running as another user
        path.replace(dest)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def check_record_key(key: str) -> str:
    """A record key is a relative path of plain segments (it becomes a file path or an object key)."""
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise ValueError(f"not a record key: {key!r}")
    return key


def verify_file(path: Path, digest: str) -> Blob:
    """Hash `path` and compare with `digest`: `CorruptArtifact` on a mismatch."""
    actual, size = hash_file(path)
    if actual != check_digest(digest):
        raise CorruptArtifact(f"{digest}: the bytes read back hash to {actual}")
    return Blob(digest, size)


def copy_stream(reader: BinaryIO, writer: BinaryIO) -> None:
    """`shutil.copyfileobj` with Odin's chunk size (kept here so every copy reads the same way)."""
    while chunk := reader.read(CHUNK):
        writer.write(chunk)
