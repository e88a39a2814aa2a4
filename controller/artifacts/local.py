"""The local-directory artifact store: the embedded default (`<data_dir>/artifacts`).

Blobs live at `<root>/sha256/ab/<hex>`, read-only once written. A put copies into `<root>/.tmp` (same filesystem)
while hashing, then renames into place, so a crash never leaves a blob with the wrong bytes under a digest, and two
runs storing the same output at once both succeed (the second rename replaces identical bytes).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from odin.controller.artifacts.digest import ALGORITHM, CHUNK, digest_of_key, object_key
from odin.controller.artifacts.errors import ArtifactNotFound, CorruptArtifact
from odin.controller.artifacts.store import ArtifactStore, Blob, check_record_key, staged_file, verify_file


class LocalStore(ArtifactStore):
    """Blobs in a directory tree under `root` (created 0700 when missing)."""

    kind = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.tmp = root / ".tmp"
        self.tmp.mkdir(mode=0o700, exist_ok=True)

    def _path(self, digest: str) -> Path:
        return self.root / object_key(digest)

    def put_file(self, path: Path) -> Blob:
        with path.open("rb") as f:
            return self.put_stream(f)

    def put_stream(self, reader: BinaryIO) -> Blob:
        h = hashlib.sha256()
        size = 0
        fd, name = tempfile.mkstemp(dir=self.tmp, suffix=".part")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := reader.read(CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            digest = f"{ALGORITHM}:{h.hexdigest()}"
            final = self._path(digest)
            if final.exists():
                return Blob(digest, size)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp.chmod(0o444)
            tmp.replace(final)
            return Blob(digest, size)
        finally:
            tmp.unlink(missing_ok=True)

    def uri(self, digest: str) -> str:
        return str(self._path(digest))

    def put_record(self, key: str, data: bytes) -> None:
        path = self.root / "records" / check_record_key(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with staged_file(path) as tmp:
            tmp.write_bytes(data)

    def get_record(self, key: str, limit: int) -> bytes | None:
        path = self.root / "records" / check_record_key(key)
        try:
            with path.open("rb") as f:
                data = f.read(limit + 1)
        except FileNotFoundError:
            return None
        if len(data) > limit:
            raise CorruptArtifact(f"record {key} is larger than the {limit} bytes expected")
        return data

    def record_folders(self, prefix: str, *, after: str = "", limit: int = 1000) -> Sequence[str]:
        base = self.root / "records" / check_record_key(prefix)
        try:
            with os.scandir(base) as entries:
                names = [e.name for e in entries if e.is_dir(follow_symlinks=False) and e.name + "/" > after + "/"]
        except FileNotFoundError:
            return []
        return sorted(names, key=lambda name: name + "/")[:limit]

    def delete_records(self, prefix: str) -> int:
        base = self.root / "records" / check_record_key(prefix)
        if base.is_symlink() or not base.is_dir():
            return 0
        count = sum(len(files) for _, _, files in os.walk(base))
        shutil.rmtree(base, ignore_errors=True)
        return count

    def get_file(self, digest: str, dest: Path, *, verify: bool = True) -> Blob:
        source = self._path(digest)
        try:
            with staged_file(dest) as tmp:
                shutil.copyfile(source, tmp)
                blob = verify_file(tmp, digest) if verify else Blob(digest, tmp.stat().st_size)
        except FileNotFoundError as e:
            if not source.exists():
                raise ArtifactNotFound(f"no artifact {digest} in the store") from e
            raise
        return blob

    @contextlib.contextmanager
    def _open_range(self, digest: str, start: int, length: int | None) -> Iterator[Iterator[bytes]]:
        try:
            f = self._path(digest).open("rb")
        except FileNotFoundError as e:
            raise ArtifactNotFound(f"no artifact {digest} in the store") from e
        with f:
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

    def open_range(
        self, digest: str, start: int = 0, length: int | None = None
    ) -> contextlib.AbstractContextManager[Iterator[bytes]]:
        if start < 0 or (length is not None and length < 0):
            raise ValueError("start and length must not be negative")
        return self._open_range(digest, start, length)

    def stat(self, digest: str) -> Blob | None:
        try:
            return Blob(digest, self._path(digest).stat().st_size)
        except FileNotFoundError:
            return None

    def delete(self, digest: str) -> None:
        self._path(digest).unlink(missing_ok=True)

    def list(self) -> Iterator[Blob]:
        base = self.root / ALGORITHM
        if not base.is_dir():
            return
        for fan in sorted(base.iterdir()):
            for entry in sorted(fan.iterdir()):
                digest = digest_of_key(f"{ALGORITHM}/{fan.name}/{entry.name}")
                if digest is None:
                    continue  # not ours (an operator's file): never listed, so never deleted
                with contextlib.suppress(FileNotFoundError):
                    yield Blob(digest, entry.stat().st_size)
