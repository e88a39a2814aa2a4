"""Copying a large blob out of the cache repository with bounded memory.

libgit2 reads an object whole into memory (`git_odb_read`), and pygit2's `Blob.data` copies it once more into a
Python `bytes`: a 200 MB file in a pipeline directory cost about four times its size while a sync materialized it.
For blobs over `STREAM_THRESHOLD` Odin reads the object itself, straight from the repository files, inflating it a
chunk at a time into the destination file:

* a **loose** object (`objects/ab/cdef...`) is one zlib stream: `blob <size>\\0` and the content;
* a **packed** object that is stored whole (not as a delta) is located through the pack's `.idx` (version 2: fan-out
  table, sorted ids, CRCs, 4-byte offsets, then 8-byte offsets for packs over 2 GiB), and its zlib stream after the
  entry's type-and-size header is inflated the same way.

The content is checked against the object id (SHA-1 of the git header and the bytes) as it is written, so a misread
never passes silently. Anything else — a delta, a SHA-256 repository, an object this reader cannot find — returns
None and the caller falls back to pygit2 (one copy in libgit2's memory, streamed to the file with `BlobIO`). Large
files are rarely deltas: git stores the first version of a file whole, and a file that changes little is rarely large.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

STREAM_THRESHOLD = 1024 * 1024
"""Blobs up to this size are read through pygit2 at once (cheap); larger ones are streamed."""

CHUNK = 1024 * 1024

_IDX_MAGIC = b"\377tOc"
_OBJ_BLOB = 3


class CorruptObject(Exception):
    """The repository's files do not hold what the object id says."""


def stream_blob(repo_path: Path, oid: str) -> Iterator[bytes] | None:
    """The content of blob `oid` in chunks of at most `CHUNK` bytes, read from the repository's files; None when
    this reader cannot stream it (the caller then uses libgit2). Raises `CorruptObject` if the bytes do not hash to
    `oid` (checked at the end, before the last chunk is returned)."""
    if len(oid) != 40:
        return None
    objects = Path(repo_path) / "objects"
    loose = objects / oid[:2] / oid[2:]
    if loose.is_file():
        return _verified(oid, _inflate_loose(loose))
    for idx in sorted((objects / "pack").glob("pack-*.idx")):
        offset = _find_in_index(idx, bytes.fromhex(oid))
        if offset is None:
            continue
        pack = idx.with_suffix(".pack")
        with pack.open("rb") as f:
            f.seek(offset)
            kind, size, header_length = _entry_header(f.read(32))
        if kind != _OBJ_BLOB:
            return None  # a delta (or not a blob): libgit2 resolves it
        return _verified(oid, _inflate_at(pack, offset + header_length, size))
    return None


def _verified(oid: str, chunks: Iterator[tuple[int, bytes]]) -> Iterator[bytes]:
    """Pass the content chunks through, hashing them as git does; the first item of `chunks` carries the size."""

    def run() -> Iterator[bytes]:
        digest = hashlib.sha1(usedforsecurity=False)
        size, first = next(chunks)
        digest.update(b"blob %d\0" % size)
        written = 0
        pending = first
        for _, chunk in chunks:
            digest.update(pending)
            written += len(pending)
            yield pending
            pending = chunk
        digest.update(pending)
        written += len(pending)
        if written != size or digest.hexdigest() != oid:
            raise CorruptObject(f"object {oid} read from the repository files does not match its id")
        yield pending

    return run()


def _inflate_loose(path: Path) -> Iterator[tuple[int, bytes]]:
    inflater = zlib.decompressobj()
    with path.open("rb") as f:
        head = b""
        chunks = _inflate(inflater, f)
        for chunk in chunks:
            head += chunk
            if b"\0" in head:
                break
        kind, _, rest = head.partition(b"\0")
        name, _, size_text = kind.partition(b" ")
        if name != b"blob" or not size_text.isdigit():
            raise CorruptObject(f"{path} is not a blob")
        yield int(size_text), rest
        for chunk in chunks:
            yield 0, chunk


def _inflate_at(pack: Path, start: int, size: int) -> Iterator[tuple[int, bytes]]:
    inflater = zlib.decompressobj()
    with pack.open("rb") as f:
        f.seek(start)
        first = True
        for chunk in _inflate(inflater, f):
            if first:
                yield size, chunk
                first = False
            else:
                yield 0, chunk
        if first:
            yield size, b""


def _inflate(inflater: zlib._Decompress, f: IO[bytes]) -> Iterator[bytes]:
    """Inflate the zlib stream read from file `f` from its current position, at most `CHUNK` bytes at a time."""
    while not inflater.eof:
        data = inflater.unconsumed_tail or f.read(CHUNK)
        if not data:
            raise CorruptObject("the object's compressed data ends early")
        try:
            out = inflater.decompress(data, CHUNK)
        except zlib.error as e:
            raise CorruptObject(f"the object's compressed data cannot be read: {e}") from e
        if out:
            yield out


def _entry_header(data: bytes) -> tuple[int, int, int]:
    """(type, inflated size, header length) of the pack entry starting with `data`."""
    byte = data[0]
    kind = (byte >> 4) & 7
    size = byte & 15
    shift = 4
    i = 1
    while byte & 0x80:
        byte = data[i]
        size |= (byte & 0x7F) << shift
        shift += 7
        i += 1
    return kind, size, i


def _find_in_index(idx: Path, oid: bytes) -> int | None:
    """The offset of `oid` in the pack of the version-2 index `idx`, by binary search over its sorted ids."""
    with idx.open("rb") as f:
        head = f.read(8 + 256 * 4)
        if head[:4] != _IDX_MAGIC or struct.unpack(">I", head[4:8])[0] != 2:
            return None
        fanout = struct.unpack(">256I", head[8:])
        count = fanout[255]
        lo = fanout[oid[0] - 1] if oid[0] else 0
        hi = fanout[oid[0]]
        ids_at = 8 + 256 * 4
        while lo < hi:
            mid = (lo + hi) // 2
            f.seek(ids_at + mid * 20)
            found = f.read(20)
            if found == oid:
                break
            if found < oid:
                lo = mid + 1
            else:
                hi = mid
        else:
            return None
        offsets_at = ids_at + count * 20 + count * 4
        f.seek(offsets_at + mid * 4)
        (offset,) = struct.unpack(">I", f.read(4))
        if offset & 0x80000000:
            f.seek(offsets_at + count * 4 + (offset & 0x7FFFFFFF) * 8)
            (offset,) = struct.unpack(">Q", f.read(8))
        return int(offset)


def write_chunks(fd: int, chunks: Iterator[bytes]) -> None:
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            written = os.write(fd, view)
            view = view[written:]
