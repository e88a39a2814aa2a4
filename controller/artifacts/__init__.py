"""What a run produced: a content-addressed artifact store, directory trees, retention and the pod transfer step.

An artifact is stored under the sha256 digest of its bytes, so identical outputs of different runs (the same
checkpoint, the same eval report) are stored once and "did this output change?" is a string comparison. Two backends
implement `ArtifactStore`: a local directory (the embedded default, `local.LocalStore`) and S3-compatible object
storage (`s3.S3Store`: AWS S3, GCS's S3 API, MinIO, SeaweedFS). A directory artifact is a *tree*: a small JSON
manifest listing each file's path, size and digest, itself stored by digest (`trees`). What retention may delete is a
pure function of the runs and a policy (`retention`). `transfer` is the command an init container and an output
wrapper run in a Kubernetes pod, from Odin's own image. See docs/artifacts.md.
"""

from odin.controller.artifacts.errors import (
    ArtifactError,
    ArtifactNotFound,
    CorruptArtifact,
    StoreUnavailable,
    UnsafeArtifactPath,
)
from odin.controller.artifacts.store import ArtifactStore, Blob

__all__ = [
    "ArtifactError",
    "ArtifactNotFound",
    "ArtifactStore",
    "Blob",
    "CorruptArtifact",
    "StoreUnavailable",
    "UnsafeArtifactPath",
]
