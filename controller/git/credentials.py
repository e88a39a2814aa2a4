"""Credentials for private remotes, and the secret references they are built from.

Odin's database stores *references* to secrets (`env:GIT_TOKEN`, `file:/var/run/secrets/odin/deploy-key`), never
the secrets themselves. A mirror holds them as `CredentialRefs`, resolved again whenever a file they name has changed
(checked with one `stat` per connection), so a rotated secret file — a Kubernetes Secret updated in place — is used
from the next fetch on, without a restart and without touching the database. `Credentials` holds resolved
values and is written so that printing, logging or putting one in an exception cannot show them.

No pygit2 here: the conversion into libgit2 credential objects lives next to the transport code.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from odin.controller import secret_files
from odin.controller.git.errors import SecretUnavailable
from odin.controller.secrecy import withheld

__all__ = [
    "DEFAULT_SSH_USERNAME",
    "DEFAULT_TOKEN_USERNAME",
    "CredentialKind",
    "CredentialRefs",
    "Credentials",
    "SecretRef",
    "parse_secret_ref",
    "resolve_secret_ref",
]

# GitHub accepts any user name with an installation/fine-grained token; `x-access-token` is what its docs use, and
# GitLab (with a project/personal token) and Gitea accept a non-empty user name with a token as password too.
DEFAULT_TOKEN_USERNAME = "x-access-token"
DEFAULT_SSH_USERNAME = "git"

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A parsed secret reference: `env:NAME` or `file:/absolute/path`. Safe to print and store."""

    scheme: str  # "env" or "file"
    target: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}"


def parse_secret_ref(ref: str) -> SecretRef:
    """Check the *form* of a reference without resolving it (the API does this before storing one).

    Raises `ValueError` with a message for the user.
    """
    scheme, sep, target = ref.strip().partition(":")
    if not sep:
        raise ValueError(f"secret reference {ref!r} must look like env:NAME or file:/path")
    if scheme == "env":
        if not _ENV_NAME.match(target):
            raise ValueError(f"secret reference {ref!r}: {target!r} is not an environment variable name")
    elif scheme == "file":
        if not target.startswith("/"):
            raise ValueError(f"secret reference {ref!r}: file references need an absolute path")
        secret_files.note_path(target)  # closed to local tasks from now on (executors.sandbox)
    else:
        raise ValueError(f"secret reference {ref!r}: unknown kind {scheme!r} (use env:NAME or file:/path)")
    return SecretRef(scheme, target)


def resolve_secret_ref(ref: str | SecretRef, *, environ: dict[str, str] | None = None) -> str:
    """The secret a reference points at. Raises `SecretUnavailable` naming the reference (never a value).

    File secrets lose trailing newlines (editors and `kubectl create secret --from-file` add them); environment
    values are used as they are, except that an empty value counts as missing.
    """
    parsed = ref if isinstance(ref, SecretRef) else _parse_or_raise(ref)
    if parsed.scheme == "file":
        secret_files.note_path(parsed.target)  # a `SecretRef` made by hand skipped `parse_secret_ref`
    if parsed.scheme == "env":
        if environ is None:
            # Odin moves secret-bearing variables out of its environment at start (odin.controller.secrecy).
            value = os.environ.get(parsed.target) or withheld(parsed.target) or ""
        else:
            value = environ.get(parsed.target, "")
        if not value:
            raise SecretUnavailable(f"secret reference {parsed}: the environment variable is not set or empty")
        return value
    try:
        value = Path(parsed.target).read_text(encoding="utf-8").rstrip("\r\n")
    except FileNotFoundError:
        raise SecretUnavailable(f"secret reference {parsed}: the file does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        # Only the exception type: some OSError texts quote what they read.
        raise SecretUnavailable(f"secret reference {parsed}: cannot read the file ({type(e).__name__})") from None
    if not value:
        raise SecretUnavailable(f"secret reference {parsed}: the file is empty")
    return value


def _parse_or_raise(ref: str) -> SecretRef:
    try:
        return parse_secret_ref(ref)
    except ValueError as e:
        raise SecretUnavailable(str(e)) from None


class CredentialKind(StrEnum):
    TOKEN = "token"
    SSH_KEY = "ssh_key"  # ssh:// and git@host:path


@dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    """Resolved credentials for one remote. Build with `token`, `ssh_key`, `ssh_key_file` or `from_refs`.

    `repr()`/`str()` show the kind and user name only. Equality compares secrets, which is fine (it reveals
    nothing) and lets callers notice that a rotated secret changed.
    """

    kind: CredentialKind
    username: str
    token: str | None = field(default=None, compare=True)
    ssh_private_key: str | None = field(default=None, compare=True)
    ssh_private_key_path: Path | None = None
    ssh_public_key_path: Path | None = None
    passphrase: str | None = field(default=None, compare=True)

    def __post_init__(self) -> None:
        if not self.username or any(c in self.username for c in "\r\n\0"):
            raise ValueError("credentials need a user name without control characters")
        if self.kind is CredentialKind.TOKEN:
            if not self.token or any(c in self.token for c in "\r\n\0"):
                raise ValueError("a token must be non-empty and on one line")
        elif (self.ssh_private_key is None) == (self.ssh_private_key_path is None):
            raise ValueError("an SSH credential needs exactly one of a private key or a private key path")

    @classmethod
    def from_token(cls, token: str, *, username: str = DEFAULT_TOKEN_USERNAME) -> Credentials:
        """An https token (GitHub/GitLab/Gitea personal, project or installation token)."""
        return cls(kind=CredentialKind.TOKEN, username=username, token=token)

    @classmethod
    def from_ssh_key(
        cls, private_key: str, *, passphrase: str | None = None, username: str = DEFAULT_SSH_USERNAME
    ) -> Credentials:
        """An SSH private key held in memory (PEM/OpenSSH text), e.g. from a secret reference."""
        if "PRIVATE KEY" not in private_key:
            raise ValueError("the SSH private key does not look like a PEM/OpenSSH private key")
        return cls(
            kind=CredentialKind.SSH_KEY,
            username=username,
            ssh_private_key=private_key if private_key.endswith("\n") else private_key + "\n",
            passphrase=passphrase,
        )

    @classmethod
    def from_ssh_key_file(
        cls,
        path: Path | str,
        *,
        passphrase: str | None = None,
        username: str = DEFAULT_SSH_USERNAME,
        public_key_path: Path | str | None = None,
    ) -> Credentials:
        """An SSH private key read by libssh2 from a file at each connection (so a rotated file is picked up)."""
        return cls(
            kind=CredentialKind.SSH_KEY,
            username=username,
            ssh_private_key_path=Path(path),
            ssh_public_key_path=Path(public_key_path) if public_key_path is not None else None,
            passphrase=passphrase,
        )

    @classmethod
    def from_refs(
        cls,
        *,
        token_ref: str | None = None,
        ssh_key_ref: str | None = None,
        passphrase_ref: str | None = None,
        username: str | None = None,
        environ: dict[str, str] | None = None,
    ) -> Credentials:
        """Resolve secret references (as stored in the database) into credentials.

        Exactly one of `token_ref` and `ssh_key_ref`. A `file:` SSH key is passed to libssh2 by path (read at
        each connection); an `env:` one is used from memory. Raises `SecretUnavailable` or `ValueError`.
        """
        if (token_ref is None) == (ssh_key_ref is None):
            raise ValueError("give exactly one of token_ref and ssh_key_ref")
        if token_ref is not None:
            if passphrase_ref is not None:
                raise ValueError("a passphrase only applies to SSH keys")
            token = resolve_secret_ref(token_ref, environ=environ)
            return cls.from_token(token, username=username or DEFAULT_TOKEN_USERNAME)
        assert ssh_key_ref is not None
        passphrase = resolve_secret_ref(passphrase_ref, environ=environ) if passphrase_ref is not None else None
        user = username or DEFAULT_SSH_USERNAME
        key_ref = _parse_or_raise(ssh_key_ref)
        if key_ref.scheme == "file":
            if not Path(key_ref.target).is_file():
                raise SecretUnavailable(f"secret reference {key_ref}: the file does not exist")
            return cls.from_ssh_key_file(key_ref.target, passphrase=passphrase, username=user)
        return cls.from_ssh_key(resolve_secret_ref(key_ref, environ=environ), passphrase=passphrase, username=user)

    def secret_values(self) -> tuple[str, ...]:
        """The secret strings, for scrubbing them out of any text that came back from libgit2 or a server."""
        return tuple(s for s in (self.token, self.ssh_private_key, self.passphrase) if s)

    def __repr__(self) -> str:
        detail = f", key_file={str(self.ssh_private_key_path)!r}" if self.ssh_private_key_path else ""
        return f"Credentials(kind={self.kind.value!r}, username={self.username!r}{detail}, secret=<redacted>)"

    __str__ = __repr__


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every occurrence of any secret (and of each line of a multi-line one) replaced by `***`."""
    for secret in secrets:
        for piece in (secret, *secret.splitlines()):
            if len(piece) >= 4:  # never blank out single characters everywhere
                text = text.replace(piece, "***")
    return text


class CredentialRefs:
    """Credentials given by reference, resolved when used: `current()` answers the credentials the references name
    now. A `file:` reference is read again only when the file changed (its inode, size or times: one `stat` per
    call), so rotating a mounted secret — written in place, or swapped in as Kubernetes does with a new file behind
    a symbolic link — takes effect at the next connection. An `env:` reference is looked up each time (cheap; a
    running process's environment does not change from outside). Raises `SecretUnavailable` (naming the reference,
    never a value) when a reference does not resolve at that moment, and `ValueError` for a malformed one."""

    def __init__(
        self,
        *,
        token_ref: str | None = None,
        ssh_key_ref: str | None = None,
        passphrase_ref: str | None = None,
        username: str | None = None,
    ) -> None:
        if (token_ref is None) == (ssh_key_ref is None):
            raise ValueError("give exactly one of token_ref and ssh_key_ref")
        self.token_ref, self.ssh_key_ref, self.passphrase_ref = token_ref, ssh_key_ref, passphrase_ref
        self.username = username
        self._refs = tuple(parse_secret_ref(r) for r in (token_ref, ssh_key_ref, passphrase_ref) if r is not None)
        self._lock = threading.Lock()
        self._stamp: tuple[object, ...] | None = None
        self._resolved: Credentials | None = None

    def current(self) -> Credentials:
        stamp = self._stamp_now()
        with self._lock:
            if self._resolved is not None and stamp == self._stamp:
                return self._resolved
            resolved = Credentials.from_refs(
                token_ref=self.token_ref,
                ssh_key_ref=self.ssh_key_ref,
                passphrase_ref=self.passphrase_ref,
                username=self.username,
            )
            self._stamp, self._resolved = stamp, resolved
            return resolved

    def _stamp_now(self) -> tuple[object, ...]:
        """What the references point at now, cheaply: a file's identity and times, an environment value."""
        parts: list[object] = []
        for ref in self._refs:
            if ref.scheme == "file":
                try:
                    st = Path(ref.target).stat()
                except OSError:
                    parts.append(None)  # resolving says why (and is not cached)
                    continue
                parts.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
            else:
                parts.append(os.environ.get(ref.target) or withheld(ref.target))
        return tuple(parts)

    def __repr__(self) -> str:
        refs = ", ".join(str(r) for r in self._refs)
        return f"CredentialRefs({refs})"

    __str__ = __repr__


CredentialSource = Credentials | CredentialRefs
"""What a mirror is given: resolved credentials, or references resolved at each use."""


def current_credentials(source: CredentialSource | None) -> Credentials | None:
    """The credentials to connect with now."""
    return source.current() if isinstance(source, CredentialRefs) else source
