"""What can go wrong when Odin talks to a git repository, sorted by what the caller should do about it.

The poller retries some failures with backoff (the network blipped, the server restarted) and must stop and tell a
person about others (the token expired, the branch was deleted). That decision is the `transient` flag on each class,
so callers never parse libgit2 messages themselves. The module deliberately imports nothing from pygit2: the API
and the store catch these classes without loading libgit2.

Every message is user-facing (it ends up on the commit status and in `odinctl`), names the remote only through
`redact_url`, and never contains a secret.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AmbiguousRef",
    "AuthenticationFailed",
    "BranchNotFound",
    "CertificateRejected",
    "FileMissing",
    "FileTooLarge",
    "GitError",
    "InvalidRef",
    "PathEscapes",
    "RefNotFound",
    "RemoteUnreachable",
    "RepositoryNotFound",
    "SecretUnavailable",
    "UnsupportedEntry",
]


class GitError(Exception):
    """Base class: something Odin could not do with a repository.

    `transient` tells the caller whether retrying later (with backoff) can help without anybody changing anything.
    `url` is the redacted remote URL where one is involved (never with credentials in it).
    """

    transient: ClassVar[bool] = False

    def __init__(self, message: str, *, url: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.url = url

    def __reduce__(self) -> tuple[object, ...]:
        # Keep the keyword argument across pickling (multiprocessing, logging handlers that pickle records).
        return (_rebuild, (type(self), self.message, self.url))


def _rebuild(cls: type[GitError], message: str, url: str | None) -> GitError:
    err = cls.__new__(cls)
    GitError.__init__(err, message, url=url)
    return err


# --- talking to the remote -------------------------------------------------------------------------------------------


class RemoteUnreachable(GitError):
    """The remote could not be reached: network, DNS, timeouts, server errors (5xx), a local path that is gone.

    Retry with backoff; nothing needs to change on Odin's side if the remote comes back.
    """

    transient = True


class AuthenticationFailed(GitError):
    """The remote refused us: no credentials where some are needed, a wrong or expired token/key, or no access.

    Retrying does not help; a person has to fix the credentials (or their permissions) that the repository uses.
    """


class CertificateRejected(GitError):
    """The remote's identity could not be verified: an invalid TLS certificate, or an SSH host key that is not in
    the controller's known_hosts. Never retried blindly: it is either a misconfiguration or an attack."""


class RepositoryNotFound(GitError):
    """The server answered, but says there is no such repository (HTTP 404), or the local path is not a repository.

    Hosting services also answer 404 when the credentials cannot see a private repository.
    """


class BranchNotFound(GitError):
    """The followed branch does not exist on the remote (deleted or renamed). Commits already fetched stay readable."""


# --- looking things up in the cache ----------------------------------------------------------------------------------


class RefNotFound(GitError):
    """A branch, tag or commit that is not in the cache."""


class InvalidRef(GitError):
    """A ref name git would refuse (`main..v1`, `-main`, `@{-1}`, `main.lock`): refused before any git call."""


class AmbiguousRef(GitError):
    """An abbreviated commit id that matches more than one object; the user should give more characters."""


class FileMissing(GitError):
    """A path that is not a regular file (or not a directory, where one is needed) in the commit's tree."""


class FileTooLarge(GitError):
    """A file larger than the caller's limit; it was not read into memory."""

    def __init__(self, message: str, *, size: int, limit: int, url: str | None = None) -> None:
        super().__init__(message, url=url)
        self.size = size
        self.limit = limit

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_too_large, (self.message, self.size, self.limit, self.url))


def _rebuild_too_large(message: str, size: int, limit: int, url: str | None) -> FileTooLarge:
    return FileTooLarge(message, size=size, limit=limit, url=url)


class PathEscapes(GitError):
    """A path or a symbolic link that would lead outside the directory it must stay in."""


class UnsupportedEntry(GitError):
    """A tree entry Odin cannot materialize: a submodule (gitlink) or an unknown file mode."""


class WorkTreeTooLarge(GitError):
    """A pipeline directory with more files or bytes than the executor copies into a run's working tree."""


# --- configuration ---------------------------------------------------------------------------------------------------


class SecretUnavailable(GitError):
    """A secret reference (`env:NAME`, `file:/path`) that cannot be resolved. The message names the reference,
    never a value."""
