"""libgit2 network plumbing: credential and certificate callbacks, global timeouts, and turning libgit2's errors
into Odin's error classes.

libgit2 reports failures as a message plus an error class number; which of them a person must act on, and which
will go away by themselves, is decided here and only here (each branch is exercised by a test with a real failing
remote on loopback). Everything that leaves this module is scrubbed of secrets and names the remote by its
redacted URL.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

import pygit2
from pygit2.enums import CredentialType

from odin.controller.git.credentials import CredentialKind, Credentials, scrub
from odin.controller.git.errors import (
    AuthenticationFailed,
    CertificateRejected,
    GitError,
    RemoteUnreachable,
    RepositoryNotFound,
)
from odin.controller.git.urls import RemoteUrl, UrlKind

if TYPE_CHECKING:
    from pygit2.credentials import Keypair, Username, UserPass

__all__ = ["OdinCallbacks", "configure_libgit2", "translate_error"]

# libgit2's default is to wait forever on a server that accepted the connection and then went silent, which would
# wedge the poller. These apply to every network operation in the process (libgit2 has no per-remote setting).
CONNECT_TIMEOUT_MS = 15_000
IO_TIMEOUT_MS = 120_000
# libgit2 maps pack files in windows of up to 1 GiB, keeping up to 8 GiB mapped (its 64-bit defaults); every page it
# touched counts in the process's RSS, so a fetch or a read of a large blob grew RSS by the pack's size and kept it.
# Smaller windows under a lower total keep that part bounded (the page cache still holds the data; remapping is cheap).
MWINDOW_SIZE = 16 * 1024 * 1024
MWINDOW_MAPPED_LIMIT = 64 * 1024 * 1024
_LIBGIT2_MWINDOW_DEFAULTS = (1024 * 1024 * 1024, 8 * 1024 * 1024 * 1024)

# git_error_t values (include/git2/errors.h); pygit2 attaches them as `error_class` to generic errors.
_ERROR_OS = 2
_ERROR_REPOSITORY = 6
_ERROR_NET = 12
_ERROR_SSL = 16
_ERROR_SSH = 23
_ERROR_HTTP = 34


@functools.cache
def configure_libgit2() -> None:
    """Process-wide libgit2 settings Odin relies on; runs once. Values someone else set are left alone."""
    if pygit2.settings.server_connect_timeout == 0:
        pygit2.settings.server_connect_timeout = CONNECT_TIMEOUT_MS
    if pygit2.settings.server_timeout == 0:
        pygit2.settings.server_timeout = IO_TIMEOUT_MS
    if pygit2.settings.mwindow_size == _LIBGIT2_MWINDOW_DEFAULTS[0]:
        pygit2.settings.mwindow_size = MWINDOW_SIZE
    if pygit2.settings.mwindow_mapped_limit == _LIBGIT2_MWINDOW_DEFAULTS[1]:
        pygit2.settings.mwindow_mapped_limit = MWINDOW_MAPPED_LIMIT


class CallbackRefusal(Exception):
    """Raised inside a libgit2 callback to stop the operation; pygit2 re-raises it from the operation itself."""

    def __init__(self, error: GitError) -> None:
        super().__init__(error.message)
        self.error = error


class OdinCallbacks(pygit2.RemoteCallbacks):
    """Credentials and certificate policy for one network operation (make a new one per operation).

    Credentials are offered once: libgit2 asks again after a rejection (up to 15 times over https), and a rejected
    token does not become valid by repetition. TLS certificates and SSH host keys must be valid: pygit2's default
    would accept any SSH host key; returning libgit2's verdict makes unknown hosts (not in the controller user's
    ~/.ssh/known_hosts) fail instead.
    """

    def __init__(self, credentials: Credentials | None, url: RemoteUrl) -> None:
        super().__init__()
        self._odin_credentials = credentials
        self._url = url
        self._offered = False

    def credentials(
        self, url: str, username_from_url: str | None, allowed_types: CredentialType
    ) -> Username | UserPass | Keypair:
        creds = self._odin_credentials
        where = self._url.redacted
        if creds is None:
            raise CallbackRefusal(
                AuthenticationFailed(
                    f"{where} requires authentication and no credentials are configured for it; add a token "
                    "(https) or a deploy key (ssh) to the repository's settings",
                    url=where,
                )
            )
        if creds.kind is CredentialKind.TOKEN:
            if not allowed_types & CredentialType.USERPASS_PLAINTEXT:
                raise CallbackRefusal(
                    AuthenticationFailed(
                        f"{where} does not accept a token; use an SSH key for ssh URLs, or an https:// URL",
                        url=where,
                    )
                )
            self._refuse_repeat(where)
            assert creds.token is not None
            return pygit2.UserPass(creds.username, creds.token)

        # SSH: libssh2 first asks for the user name alone when the URL has none; that is not an attempt.
        if allowed_types & CredentialType.USERNAME:
            return pygit2.Username(username_from_url or creds.username)
        user = username_from_url or creds.username
        if creds.ssh_private_key is not None and allowed_types & CredentialType.SSH_MEMORY:
            self._refuse_repeat(where)
            return pygit2.KeypairFromMemory(user, None, creds.ssh_private_key, creds.passphrase or "")
        if creds.ssh_private_key_path is not None and allowed_types & CredentialType.SSH_KEY:
            self._refuse_repeat(where)
            return pygit2.Keypair(user, creds.ssh_public_key_path, creds.ssh_private_key_path, creds.passphrase or "")
        raise CallbackRefusal(
            AuthenticationFailed(
                f"{where} does not accept SSH key authentication (or an https:// URL was given an SSH key)",
                url=where,
            )
        )

    def _refuse_repeat(self, where: str) -> None:
        if self._offered:
            raise CallbackRefusal(
                AuthenticationFailed(
                    f"{where} rejected the configured credentials; check that the token or key is valid, not "
                    "expired, and allowed to read the repository",
                    url=where,
                )
            )
        self._offered = True

    def certificate_check(self, certificate: None, valid: bool, host: bytes) -> bool:
        return valid


_HTTP_STATUS = re.compile(r"unexpected http status code: (\d{3})")


def translate_error(exc: BaseException, url: RemoteUrl, credentials: Credentials | None) -> GitError:
    """The Odin error for a failed network operation (the caller raises it `from exc`)."""
    if isinstance(exc, CallbackRefusal):
        return exc.error
    if isinstance(exc, GitError):
        return exc
    where = url.redacted
    secrets = credentials.secret_values() if credentials else ()
    detail = scrub(str(exc), secrets).replace(url.raw, where)
    error_class = getattr(exc, "error_class", None)
    lowered = detail.lower()

    if isinstance(exc, pygit2.AuthError):
        return AuthenticationFailed(
            f"{where} refused authentication ({detail}); check the repository's credentials", url=where
        )
    if isinstance(exc, pygit2.CertificateError) or "hostkey" in lowered or "certificate" in lowered:
        if url.kind in (UrlKind.SSH, UrlKind.SCP):
            what = "SSH host key is not in the controller's known_hosts"
        else:
            what = "TLS certificate could not be verified"
        return CertificateRejected(f"the {what} for {where} ({detail})", url=where)

    if "too many redirects" in lowered:
        return GitError(f"{where} redirects too often ({detail}); check the URL", url=where)

    status = _HTTP_STATUS.search(lowered)
    if status:
        code = int(status.group(1))
        if code in (401, 403):
            return AuthenticationFailed(
                f"{where} denied access (HTTP {code}); check that the credentials may read the repository",
                url=where,
            )
        if code == 404:
            return RepositoryNotFound(
                f"{where} says the repository does not exist (HTTP 404); check the URL (private repositories "
                "also answer 404 when the credentials cannot see them)",
                url=where,
            )
        if code >= 500 or code in (408, 429):
            return RemoteUnreachable(f"{where} is having trouble (HTTP {code}); will retry", url=where)
        return GitError(f"{where} answered HTTP {code}: {detail}", url=where)

    if error_class == _ERROR_SSH and ("authenticat" in lowered or "publickey" in lowered or "passphrase" in lowered):
        return AuthenticationFailed(f"{where} rejected the SSH key ({detail})", url=where)

    if not url.is_network and (
        error_class in (_ERROR_OS, _ERROR_REPOSITORY)
        or "could not find repository" in lowered
        or "unsupported url protocol" in lowered  # libgit2's answer for a local path that does not exist
    ):
        return RemoteUnreachable(f"the repository at {where} is not available ({detail}); will retry", url=where)

    if error_class in (_ERROR_OS, _ERROR_NET, _ERROR_SSL, _ERROR_SSH, _ERROR_HTTP) or any(
        marker in lowered
        for marker in ("timed out", "failed to connect", "failed to resolve", "connection", "early eof")
    ):
        return RemoteUnreachable(f"cannot reach {where} ({detail}); will retry", url=where)
    return GitError(f"git operation on {where} failed: {detail}", url=where)
