"""What a repository registration may say, checked before anything is stored (issue 13 items 1-2).

Every message names the field and says what to send instead. Secrets are accepted **by reference only**
(`env:NAME`, `file:/path`, resolved when used): a value that is not a reference is refused, so no plain secret ever
reaches the database. Branches are fnmatch-style patterns (`main`, `release/*`); the repository's own branch (the one
manual runs and schedules use when no ref is given) is the first pattern without wildcards unless named.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from typing import Any

from odin.controller.git.credentials import parse_secret_ref
from odin.controller.git.urls import InvalidRemoteUrl, parse_remote_url

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
WILDCARDS = frozenset("*?[")
MAX_PATTERNS = 50
RUN_POLICIES = ("latest", "each")
PULL_REQUESTS = ("off", "same-repo", "all")
"""Which pull requests run: none; those whose head is in the repository itself; forks too (never with secrets)."""
MAX_APPROVERS = 200
_LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")
MIN_POLL_INTERVAL = 0.1
MAX_POLL_INTERVAL = 86400.0


_BAD_IN_REF = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|//|@\{")


def valid_branch_name(name: str) -> bool:
    """git's rules for a branch name (check-ref-format), enough to refuse what no remote can have."""
    if not name or _BAD_IN_REF.search(name) or name.startswith(("/", "-", ".")) or name.endswith(("/", ".", ".lock")):
        return False
    return all(part and not part.startswith(".") for part in name.split("/"))


class InvalidRepoSpec(ValueError):
    """A registration Odin cannot follow as given (answered 422); the message says what to change."""


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise InvalidRepoSpec(
            f"name {name!r}: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def is_pattern(branch: str) -> bool:
    return any(c in WILDCARDS for c in branch)


def matches_branch(patterns: Sequence[str], branch: str) -> bool:
    """Does `branch` match one of the fnmatch-style patterns (case-sensitive, `*` also crosses `/`)?"""
    return any(fnmatch.fnmatchcase(branch, p) for p in patterns)


matches = matches_branch


def check_spec(
    values: Mapping[str, Any], *, current: Mapping[str, Any] | None = None, allow_http: bool = False
) -> dict[str, Any]:
    """The columns to store for `values` (a new registration, or the changes to `current`'s); `allow_http`: plain
    http:// URLs are accepted (`ODIN_GIT_ALLOW_HTTP`). Raises `InvalidRepoSpec`."""
    out: dict[str, Any] = {}
    if "url" in values:
        try:
            out["url"] = parse_remote_url(str(values["url"]), allow_insecure_http=allow_http).redacted
        except InvalidRemoteUrl as e:
            http = not allow_http and str(values["url"]).strip().lower().startswith("http://")
            hint = " (ODIN_GIT_ALLOW_HTTP=true on the server allows it)" if http else ""
            raise InvalidRepoSpec(f"url: {e}{hint}") from None
    if "branches" in values or "branch" in values:
        patterns = list(values.get("branches") or (current or {}).get("branches") or [])
        default = values.get("branch")
        out.update(_branches(patterns, default))
    if "tags" in values:
        out["tags"] = _tags(list(values["tags"] or []))
    if values.get("pull_requests") is not None:
        if values["pull_requests"] not in PULL_REQUESTS:
            raise InvalidRepoSpec(
                f"pull_requests: {values['pull_requests']!r} is not one of {', '.join(PULL_REQUESTS)}"
            )
        out["pull_requests"] = values["pull_requests"]
    if "pr_approvers" in values:
        out["pr_approvers"] = _approvers(list(values["pr_approvers"] or []))
    for field in ("credentials_ref", "webhook_secret_ref"):
        if field in values:
            out[field] = _reference(field, values[field])
    if values.get("poll_interval") is not None:
        interval = float(values["poll_interval"])
        if not MIN_POLL_INTERVAL <= interval <= MAX_POLL_INTERVAL:
            raise InvalidRepoSpec(
                f"poll_interval: {interval:g} s is out of range ({MIN_POLL_INTERVAL:g} to {MAX_POLL_INTERVAL:g})"
            )
        out["poll_interval"] = interval
    if values.get("run_policy") is not None:
        if values["run_policy"] not in RUN_POLICIES:
            raise InvalidRepoSpec(f"run_policy: {values['run_policy']!r} is not one of {', '.join(RUN_POLICIES)}")
        out["run_policy"] = values["run_policy"]
    if "namespace" in values:
        namespace = values["namespace"]
        if namespace is not None and not NAMESPACE.match(namespace):
            raise InvalidRepoSpec(f"namespace: {namespace!r} is not a Kubernetes namespace name (a DNS-1123 label)")
        out["namespace"] = namespace
    if values.get("enabled") is not None:
        out["enabled"] = bool(values["enabled"])
    # Artifact retention (docs/artifacts.md, Retention): how many finished runs, or how many days, of this
    # repository keep their artifacts; None keeps everything (a run's record and provenance are always kept).
    if "retention_keep_runs" in values:
        keep_runs = values["retention_keep_runs"]
        if keep_runs is not None and int(keep_runs) < 1:
            raise InvalidRepoSpec(f"keep_runs: {keep_runs} keeps no run at all; give 1 or more, or null for all")
        out["retention_keep_runs"] = None if keep_runs is None else int(keep_runs)
    if "retention_keep_days" in values:
        keep_days = values["retention_keep_days"]
        if keep_days is not None and float(keep_days) <= 0:
            raise InvalidRepoSpec(f"keep_days: {keep_days} keeps nothing; give more than 0, or null for all")
        out["retention_keep_days"] = None if keep_days is None else float(keep_days)
    return out


def _branches(patterns: list[str], default: str | None) -> dict[str, Any]:
    if not patterns:
        patterns = [default] if default else ["main"]
    if len(patterns) > MAX_PATTERNS:
        raise InvalidRepoSpec(f"branches: {len(patterns)} patterns; at most {MAX_PATTERNS}")
    for p in patterns:
        literal = p.replace("*", "x").replace("?", "x").replace("[", "x").replace("]", "x")
        if not p or len(p) > 255 or not valid_branch_name(literal):
            raise InvalidRepoSpec(f"branches: {p!r} is not a branch name or pattern (e.g. main, release/*)")
    if default is None:
        default = next((p for p in patterns if not is_pattern(p)), None)
        if default is None:
            raise InvalidRepoSpec(
                "branches: every pattern has wildcards; name the repository's own branch too (e.g. --branch main "
                "--branch 'release/*'): manual runs and schedules use it"
            )
    if is_pattern(default) or not valid_branch_name(default):
        raise InvalidRepoSpec(f"branch: {default!r} is not a branch name")
    if not matches(patterns, default):
        patterns = [default, *patterns]
    return {"branch": default, "branches": list(dict.fromkeys(patterns))}


def _tags(patterns: list[str]) -> list[str] | None:
    """The tag patterns to store (None: no tag is followed); each must be a tag name or pattern git could have."""
    if len(patterns) > MAX_PATTERNS:
        raise InvalidRepoSpec(f"tags: {len(patterns)} patterns; at most {MAX_PATTERNS}")
    for p in patterns:
        literal = p.replace("*", "x").replace("?", "x").replace("[", "x").replace("]", "x")
        if not p or len(p) > 255 or not valid_branch_name(literal):
            raise InvalidRepoSpec(f"tags: {p!r} is not a tag name or pattern (e.g. v*, release-[0-9]*)")
    return list(dict.fromkeys(patterns)) or None


def _approvers(logins: list[str]) -> list[str] | None:
    """The provider logins to store (None: none); each as the provider spells it (`octocat`, `jane.doe`)."""
    if len(logins) > MAX_APPROVERS:
        raise InvalidRepoSpec(f"pr_approvers: {len(logins)} logins; at most {MAX_APPROVERS}")
    for login in logins:
        if not _LOGIN.match(login):
            raise InvalidRepoSpec(f"pr_approvers: {login!r} is not a provider login (letters, digits, '.', '_', '-')")
    return list(dict.fromkeys(logins)) or None


def _reference(field: str, value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = str(value)
    if not text.startswith(("env:", "file:")):
        raise InvalidRepoSpec(
            f"{field}: give a reference to the secret, env:NAME or file:/path, not the secret itself (Odin never "
            "stores secrets; it reads the reference when it needs the value)"
        )
    try:
        return str(parse_secret_ref(text))
    except ValueError as e:
        raise InvalidRepoSpec(f"{field}: {e}") from None
