"""The git adapter: the only place that imports pygit2.

Odin follows repositories through `Mirror` (a bare cache clone per remote, read at commits, never checked out);
everything it returns is plain data (`CommitInfo`, `FetchResult`, `ChangeSet`), and everything that can go wrong
is one of the classes in `odin.controller.git.errors`, each marked transient or not. See docs/git-sync.md.
"""

from odin.controller.git.credentials import (
    CredentialKind,
    Credentials,
    SecretRef,
    parse_secret_ref,
    resolve_secret_ref,
)
from odin.controller.git.errors import (
    AmbiguousRef,
    AuthenticationFailed,
    BranchNotFound,
    CertificateRejected,
    FileMissing,
    FileTooLarge,
    GitError,
    InvalidRef,
    PathEscapes,
    RefNotFound,
    RemoteUnreachable,
    RepositoryNotFound,
    SecretUnavailable,
    UnsupportedEntry,
)
from odin.controller.git.mirror import Mirror
from odin.controller.git.models import SKIP_MARKERS, ChangeSet, CommitInfo, FetchResult
from odin.controller.git.refs import check_ref
from odin.controller.git.urls import InvalidRemoteUrl, RemoteUrl, UrlKind, parse_remote_url, redact_url

__all__ = [
    "SKIP_MARKERS",
    "AmbiguousRef",
    "AuthenticationFailed",
    "BranchNotFound",
    "CertificateRejected",
    "ChangeSet",
    "CommitInfo",
    "CredentialKind",
    "Credentials",
    "FetchResult",
    "FileMissing",
    "FileTooLarge",
    "GitError",
    "InvalidRef",
    "InvalidRemoteUrl",
    "Mirror",
    "PathEscapes",
    "RefNotFound",
    "RemoteUnreachable",
    "RemoteUrl",
    "RepositoryNotFound",
    "SecretRef",
    "SecretUnavailable",
    "UnsupportedEntry",
    "UrlKind",
    "check_ref",
    "parse_remote_url",
    "parse_secret_ref",
    "redact_url",
    "resolve_secret_ref",
]
