"""The artifact store's own errors, whichever backend raised them.

    ArtifactError
    ├── ArtifactNotFound     no object with that digest (deleted by retention, never uploaded)
    ├── CorruptArtifact      bytes read back do not hash to their digest, or a tree manifest does not parse
    ├── UnsafeArtifactPath   a tree entry or artifact name that would land outside the target directory
    └── StoreUnavailable     the store cannot be reached or refused us (network, credentials, 5xx): worth a retry

Backends translate their libraries' exceptions into these, chained `from e`, so the engine never imports botocore to
tell "missing" from "down".
"""

from __future__ import annotations


class ArtifactError(Exception):
    """Base of the artifact store's errors; `message` is safe to show (no credentials, no signed URLs)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ArtifactNotFound(ArtifactError):
    """No object with this digest in the store."""


class CorruptArtifact(ArtifactError):
    """What the store returned is not what the digest promises."""


class UnsafeArtifactPath(ArtifactError):
    """A path that is absolute, climbs out with `..`, or is otherwise not a plain relative path."""


class StoreUnavailable(ArtifactError):
    """The store is unreachable or refused the request; transient from the caller's point of view."""
