"""Remote URLs: which forms Odin accepts, how they are shown, and where their cache lives.

Kept apart from the pygit2 code because the API validates URLs when a repository is registered, and because
`redact_url` is used by every log line and error message that names a remote: it must be cheap, total (never
raises) and impossible to forget.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["InvalidRemoteUrl", "RemoteUrl", "UrlKind", "cache_name", "parse_remote_url", "redact_url"]


class UrlKind(StrEnum):
    LOCAL = "local"  # /srv/git/repo.git (a plain path; tests, air-gapped mirrors)
    FILE = "file"  # file:///srv/git/repo.git
    HTTPS = "https"
    HTTP = "http"  # only with allow_insecure_http: in-cluster servers, tests on loopback
    SSH = "ssh"  # ssh://git@host[:port]/org/repo.git
    SCP = "scp"  # git@host:org/repo.git


@dataclass(frozen=True, slots=True)
class RemoteUrl:
    """A validated remote URL. `transport_url` is what libgit2 is given; `redacted` is what people see."""

    raw: str
    kind: UrlKind
    transport_url: str
    redacted: str
    host: str | None

    @property
    def is_network(self) -> bool:
        return self.kind not in (UrlKind.LOCAL, UrlKind.FILE)


# scheme://[userinfo@]rest -- deliberately loose, so that redaction works on anything, even malformed URLs.
_SCHEME_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#]*@)?(?P<rest>.*)$", re.DOTALL)
# [user@]host:path, as git defines it: no scheme, and a colon before the first slash.
_SCP_URL = re.compile(r"^(?:(?P<user>[^@/:\s]+)@)?(?P<host>\[[^\]/]+\]|[^@/:\s\[\]]+):(?P<path>[^\s].*)$")
_SSH_SCHEMES = {"ssh", "git+ssh", "ssh+git"}


class InvalidRemoteUrl(ValueError):
    """The URL is not one of the accepted forms (the message says which forms are)."""


def redact_url(url: str) -> str:
    """The URL without userinfo, query or fragment: `https://user:tok@host/x?t=1` -> `https://host/x`.

    Total: any string goes in, something safe to print comes out. Scp-like URLs keep their user name (`git@`):
    that syntax has no place for a password, and the user name is part of how the remote is addressed.
    """
    match = _SCHEME_URL.match(url)
    if match:
        rest = re.split(r"[?#]", match.group("rest"), maxsplit=1)[0]
        return f"{match.group('scheme')}{rest}"
    # Not a scheme URL. Anything that looks like "user:secret@" in front is removed: either the string is not
    # scp-like at all, or its "path" has an "@" before the first slash (`user:secret@host:repo` parses as host
    # "user" with path "secret@host:repo").
    scp = _SCP_URL.match(url)
    if "@" in url and (scp is None or _looks_like_userinfo(scp.group("path"))):
        return url.rsplit("@", 1)[1]
    return url


def _looks_like_userinfo(scp_path: str) -> bool:
    return "@" in scp_path.split("/", 1)[0]


def parse_remote_url(url: str, *, allow_insecure_http: bool = False) -> RemoteUrl:
    """Validate a remote URL and classify it. Raises `InvalidRemoteUrl` with a message fit for the user.

    Passwords and tokens in URLs are refused: they would end up in the database and in logs. Credentials are
    configured separately, by reference (see `odin.controller.git.credentials`).
    """
    url = url.strip()
    if not url:
        raise InvalidRemoteUrl("the repository URL is empty")
    redacted = redact_url(url)
    if any(ch in url for ch in "\n\r\t\0"):
        raise InvalidRemoteUrl(f"the repository URL {redacted!r} contains control characters")

    if "://" in url:
        return _parse_scheme_url(url, redacted, allow_insecure_http=allow_insecure_http)

    scp = _SCP_URL.match(url)
    if scp and not url.startswith(("/", "./", "../", "~")):
        if _looks_like_userinfo(scp.group("path")):
            raise InvalidRemoteUrl(
                f"the repository URL {redacted!r} looks like it contains a password; configure credentials "
                "separately and remove it from the URL"
            )
        return RemoteUrl(raw=url, kind=UrlKind.SCP, transport_url=url, redacted=redacted, host=scp.group("host"))

    # A local path. Made absolute so that the cache key and the transport do not depend on the working directory.
    path = Path(url).expanduser()
    absolute = str(path if path.is_absolute() else path.absolute())
    return RemoteUrl(raw=url, kind=UrlKind.LOCAL, transport_url=absolute, redacted=absolute, host=None)


def _parse_scheme_url(url: str, redacted: str, *, allow_insecure_http: bool) -> RemoteUrl:
    try:
        parts = urlsplit(url)
        port = parts.port  # validates the port
    except ValueError as e:
        raise InvalidRemoteUrl(f"the repository URL {redacted!r} is malformed: {e}") from None
    scheme = parts.scheme.lower()
    if parts.password is not None:
        raise InvalidRemoteUrl(
            f"the repository URL {redacted!r} contains a password or token; configure credentials separately "
            "(by reference, e.g. env:GIT_TOKEN) and remove it from the URL"
        )
    if parts.query or parts.fragment:
        raise InvalidRemoteUrl(f"the repository URL {redacted!r} must not have a query string or fragment")

    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidRemoteUrl(f"file:// URLs must name a local path, not a host: {redacted!r}")
        if not parts.path.startswith("/"):
            raise InvalidRemoteUrl(f"file:// URLs need an absolute path: {redacted!r}")
        return RemoteUrl(raw=url, kind=UrlKind.FILE, transport_url=url, redacted=redacted, host=None)

    if scheme in ("https", "http") or scheme in _SSH_SCHEMES:
        if not parts.hostname:
            raise InvalidRemoteUrl(f"the repository URL {redacted!r} has no host")
        if not parts.path or parts.path == "/":
            raise InvalidRemoteUrl(f"the repository URL {redacted!r} has no repository path")
        if scheme == "http" and not allow_insecure_http:
            raise InvalidRemoteUrl(
                f"plain http:// is refused for {redacted!r} (tokens would travel unencrypted); use https://, "
                "or allow insecure http explicitly for in-cluster servers"
            )
        kind = UrlKind.SSH if scheme in _SSH_SCHEMES else UrlKind(scheme)
        del port
        return RemoteUrl(raw=url, kind=kind, transport_url=url, redacted=redacted, host=parts.hostname)

    raise InvalidRemoteUrl(
        f"unsupported repository URL scheme {scheme + '://'!r} in {redacted!r}; use a local path, file://, "
        "https://, ssh:// or git@host:org/repo.git"
    )


def cache_name(url: RemoteUrl) -> str:
    """Directory name of the bare cache repository for a remote: a readable slug plus a hash of the redacted URL.

    The hash keeps two remotes apart even when their slugs agree (github.com/a/x vs gitlab.com/a/x); the
    redacted URL is hashed so that the same remote with or without a user name shares one cache.
    """
    key = url.redacted.rstrip("/")
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
    tail = re.split(r"[/:]", key)
    words = [w.removesuffix(".git") for w in tail if w and w not in (".", "..")][-2:]
    slug = re.sub(r"[^a-z0-9]+", "-", "-".join(words).lower()).strip("-")[:48] or "repo"
    return f"{slug}-{digest}.git"
