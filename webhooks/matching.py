"""Which followed repository a delivery is about, from the URLs its payload gives.

Providers name a repository in several ways (GitHub: clone_url, ssh_url, html_url), and the user configured Odin with
yet another: `git@github.com:Acme/ML.git`, `ssh://git@github.com:22/acme/ml`, `https://github.com/acme/ml/` are all
one repository. `repo_key` reduces any of them to `host/path`: no scheme, user, port or `.git`, lower-case (GitHub,
GitLab, Gitea and Bitbucket treat owner and repository names case-insensitively). Local paths and `file://` URLs
become `file:/absolute/path`. A match only chooses which secrets must have signed the delivery; it grants nothing.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

# [user@]host:path, as git reads it (no scheme; a colon before the first slash).
_SCP_URL = re.compile(r"^(?:[^@/:\s]+@)?(?P<host>\[[^\]/]+\]|[^@/:\s\[\]]+):(?P<path>\S.*)$")


def repo_key(url: str) -> str | None:
    """The comparable form of a repository URL, or None for something that is not one."""
    url = url.strip()
    if not url or any(c in url for c in "\r\n\t\0 "):
        return None
    if "://" in url:
        try:
            parts = urlsplit(url)
        except ValueError:
            return None
        if parts.scheme.lower() == "file":
            return _local(unquote(parts.path))
        if not parts.hostname:
            return None
        return _join(parts.hostname, unquote(parts.path))
    if url.startswith(("/", "./", "../", "~")):
        return _local(url)
    scp = _SCP_URL.match(url)
    if scp:
        return _join(scp.group("host").strip("[]"), scp.group("path"))
    return None


def _join(host: str, path: str) -> str | None:
    path = posixpath.normpath("/" + path).strip("/").removesuffix(".git").rstrip("/")
    if not path or path == ".":
        return None
    return f"{host.lower()}/{path.lower()}"


def _local(path: str) -> str | None:
    if not path.startswith("/"):
        return None
    return "file:" + posixpath.normpath(path).removesuffix(".git").rstrip("/")


@dataclass(frozen=True, slots=True)
class RepoIndex:
    """Followed repositories by every key they are known under."""

    by_key: Mapping[str, int]

    @classmethod
    def build(cls, repos: Iterable[tuple[int, Iterable[str]]]) -> RepoIndex:
        """From (repository id, its URLs: the followed URL and any aliases)."""
        by_key: dict[str, int] = {}
        for repo_id, repo_urls in repos:
            for url in repo_urls:
                key = repo_key(url)
                if key is not None:
                    by_key.setdefault(key, repo_id)
        return cls(by_key)

    def match(self, urls: Iterable[str]) -> int | None:
        for url in urls:
            key = repo_key(url)
            if key is not None and key in self.by_key:
                return self.by_key[key]
        return None
