"""Digests as Odin writes them (`sha256:<64 hex>`), computed while streaming, and the object keys they map to.

One spelling everywhere (store keys, tree manifests, the transfer manifest, the API later) so that a digest copied
from one place is looked up in another without conversion. Hashing reads in `CHUNK` pieces: never a whole artifact
in memory.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import BinaryIO

ALGORITHM = "sha256"
CHUNK = 1024 * 1024
"""Bytes per read when hashing or copying: large enough that Python's per-call overhead vanishes, small enough to
keep memory flat."""

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def is_digest(value: str) -> bool:
    """True for a well-formed `sha256:<64 lowercase hex>`."""
    return bool(DIGEST_RE.match(value))


def check_digest(value: str) -> str:
    """`value` when well formed; `ValueError` otherwise (it becomes an object key, so it must be exactly this)."""
    if not is_digest(value):
        raise ValueError(f"not a digest (expected sha256:<64 hex digits>): {value[:80]!r}")
    return value


def object_key(digest: str) -> str:
    """The store-relative key of `digest`: `sha256/ab/abcdef...`; the two-character fan-out keeps directories and
    S3 listing prefixes small."""
    hexdigest = check_digest(digest).partition(":")[2]
    return f"{ALGORITHM}/{hexdigest[:2]}/{hexdigest}"


def digest_of_key(key: str) -> str | None:
    """The digest an object key stands for, or None for a key that is not one of ours."""
    parts = key.rsplit("/", 3)
    if len(parts) < 3 or parts[-3] != ALGORITHM or not parts[-1].startswith(parts[-2]):
        return None
    digest = f"{ALGORITHM}:{parts[-1]}"
    return digest if is_digest(digest) else None


def hash_stream(reader: BinaryIO) -> tuple[str, int]:
    """Digest and size of everything left in `reader`."""
    h = hashlib.sha256()
    size = 0
    while chunk := reader.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    return f"{ALGORITHM}:{h.hexdigest()}", size


def hash_file(path: Path) -> tuple[str, int]:
    """Digest and size of the file at `path`."""
    with path.open("rb") as f:
        return hash_stream(f)


def hash_bytes(data: bytes) -> str:
    """Digest of `data` (small things: tree manifests)."""
    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"
