"""Links from the console to the provider's pages: a run's pull request (issue 13 item 1).

The provider's web address of a repository is told from the URL it is followed at: an https:// URL is the page
itself (less `.git`); an ssh:// or `git@host:owner/name` URL is `https://host/owner/name`, as GitHub, GitLab,
Gitea/Forgejo and Bitbucket serve their pages from the host they serve SSH from. A local path or file:// URL has no
web page, so the pull request is shown by its number alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

_SCP_URL = re.compile(r"^(?:[^@/:\s]+@)?(?P<host>[^@/:\s\[\]]+):(?P<path>[^/\s].*)$")

# Where each provider shows a pull (merge) request under the repository's page.
_PULL_PATHS = {"github": "pull", "gitea": "pulls", "gitlab": "-/merge_requests", "bitbucket": "pull-requests"}


@dataclass(frozen=True, slots=True)
class PullRequestLink:
    term: str  # what the provider calls it: "Pull request", GitLab's "Merge request"
    label: str  # `#7`, GitLab's `!7`
    url: str | None  # its page, when the repository's web address and the provider are known


def web_url(repo_url: str | None) -> str | None:
    """The repository's page at its provider, or None when its URL does not tell one."""
    if not repo_url:
        return None
    url = repo_url.strip()
    if "://" in url:
        try:
            parts = urlsplit(url)
        except ValueError:
            return None
        scheme, host = parts.scheme.lower(), parts.hostname
        if scheme not in ("http", "https", "ssh", "git+ssh", "ssh+git") or not host:
            return None
        path = parts.path
        if scheme in ("http", "https"):
            port = f":{parts.port}" if parts.port else ""
            base = f"{scheme}://{host}{port}"
        else:
            base = f"https://{host}"  # the SSH port says nothing about the web's
    else:
        scp = _SCP_URL.match(url)
        if scp is None or url.startswith(("/", "./", "../", "~")):
            return None
        base, path = f"https://{scp.group('host')}", "/" + scp.group("path")
    path = path.rstrip("/").removesuffix(".git").rstrip("/")
    if path.count("/") < 2:  # not /owner/name
        return None
    return base + quote(path, safe="/-._~")


def pull_request_link(repo_url: str | None, provider: str | None, number: int) -> PullRequestLink:
    """How the console names a run's pull request, and where it links to."""
    gitlab = provider == "gitlab"
    term = "Merge request" if gitlab else "Pull request"
    label = f"!{number}" if gitlab else f"#{number}"
    page = web_url(repo_url)
    where = _PULL_PATHS.get(provider or "")
    return PullRequestLink(term, label, f"{page}/{where}/{number}" if page and where else None)
