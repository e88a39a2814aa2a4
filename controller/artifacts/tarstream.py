"""A directory artifact as one uncompressed tar stream, built as it is sent: headers, then each file's chunks.

Why build the bytes here rather than use `tarfile.open(mode="w|")`: that writes into a file object, so serving it
would need a pipe and a thread per download; here each header comes from `TarInfo.tobuf` and each file's content is
the reader's own chunks, so memory stays at one chunk whatever the directory's size. No compression: checkpoints and
model weights do not compress, and an uncompressed stream is what `tar -x` on the far side reads at wire speed.
Names are POSIX pax (long paths are fine); times, owners and modes other than the executable bit are not artifact
content, so they are fixed (mtime 0, root, 0644/0755): the same directory always gives the same bytes.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterable, Iterator

from odin.controller.artifacts.errors import CorruptArtifact
from odin.controller.artifacts.reading import DirectoryFile, FileSource

BLOCK = 512


def tar_stream(files: Iterable[tuple[DirectoryFile, FileSource]], *, prefix: str = "") -> Iterator[bytes]:
    """The tar archive of `files`, each stored as `prefix/path`; a file whose size changed while it was sent ends
    the stream with `CorruptArtifact` (a tar with a wrong size would silently shift every later member)."""
    for entry, source in files:
        info = tarfile.TarInfo(f"{prefix}/{entry.path}" if prefix else entry.path)
        info.size = source.size
        info.mode = 0o755 if entry.executable else 0o644
        info.mtime = 0
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        sent = 0
        with source.open_range(0, source.size) as chunks:
            for chunk in chunks:
                sent += len(chunk)
                yield chunk
        if sent != source.size:
            raise CorruptArtifact(f"{entry.path} changed size while it was sent ({sent} of {source.size} bytes)")
        if pad := -source.size % BLOCK:
            yield b"\0" * pad
    yield b"\0" * (2 * BLOCK)
