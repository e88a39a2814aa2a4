"""The credential files that the libraries Odin runs in-process find by themselves, so that the local sandbox closes
them to tasks as it closes the files Odin's settings name (`secret_files`, issue 8 item 2 follow-up).

When Odin's settings name no credentials, its libraries look in their own default places: boto3 (the S3 artifact
store) in `~/.aws/credentials` and `~/.aws/config`, a web identity or container token file, the EC2 tools' file and
boto2's config; the Kubernetes client (the Kubernetes executor, Midgard's discovery) in `$KUBECONFIG` or
`~/.kube/config`, or the ServiceAccount token in a pod; MLflow's client (run tracking) in `~/.mlflow/credentials`
and, for a `databricks` URI, `~/.databrickscfg`; requests (under MLflow's client) in `~/.netrc`. A local task runs as
Odin's user, so without this it reads the controller's cloud keys with a `cat`.

Each path is resolved as its library resolves it, from the same variables and the same home directory (`HOME`, else
the user's entry in the password database, as `os.path.expanduser` does): an explicit variable replaces the default.
The constants are copied, not imported, because importing boto3 or the Kubernetes client here would cost every start
(and only their adapters may import them); tests/controller/test_secret_files.py checks them against the installed
libraries.

Files that a credential file names in turn are read out of it (`files_named_in`), each time the sandbox asks for its
list (every task start), from the files as they are then: a kubeconfig's `users[].user.client-key`,
`client-certificate` and `tokenFile` (relative ones from the directory of each kubeconfig merged with it: the
Kubernetes client takes a user's client key relative to the file that defined the *cluster*, its token file relative
to the user's own), every AWS profile's `web_identity_token_file` (relative ones from the working directory, as
botocore opens it), and the `*.json` files present in botocore's token caches (`~/.aws/sso/cache`, `~/.aws/login/cache`
or `AWS_LOGIN_CACHE_DIRECTORY`) and in the AWS CLI's `~/.aws/cli/cache`. The client certificate is public, but it is
closed as well: it names the identity the key proves, no task needs the controller's, and some tools write the key
into the same PEM file. A cluster's `certificate-authority` is public and is left open: it is often a shared CA
bundle that tasks need. Each file is parsed as its library parses it (YAML `safe_load`, `configparser` as botocore
does); one that is missing, unreadable, not a regular file, over `MAX_BYTES` or malformed names nothing and never
stops a task (logged once per version of the file, with its path and never its content). A parse is kept per
(path, device, inode, modification and change times, size) and used again while those are unchanged, except for a
file modified within `RECENT_NS` of being read (it may change again unseen within the filesystem's timestamp
granularity): that one is read again at each start until it settles.

What is not here, on evidence: git. The libgit2 that pygit2 bundles (1.9, SSH through libssh2; its OpenSSH `exec`
transport is not built in) has no credential helpers, so it never reads `~/.git-credentials`, and it authenticates
only with what Odin's callback hands it (`git._transport.OdinCallbacks`: `ODIN_GIT_SSH_KEY` or a repository's
`file:` reference, both closed already), never with an agent or a key found in `~/.ssh/`; of `~/.ssh/` it reads
only `known_hosts`, which holds public keys. httpx (the release Odin pins) reads `~/.netrc` only when handed
`NetRCAuth`, which Odin never does. What a profile's `credential_process` or a kubeconfig's `exec` plugin reads is
the program's business: it is not parsed out (docs/local-executor.md says so).
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

__all__ = [
    "MAX_BYTES", "RECENT_NS", "SERVICE_ACCOUNT_TOKEN", "Sources", "default_files", "files_named_in",
    "kubeconfig_entries", "sources",
]  # fmt: skip

log = logging.getLogger(__name__)
_T = TypeVar("_T")

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
"""The Kubernetes client's in-cluster token (`kubernetes.config.incluster_config.SERVICE_TOKEN_FILENAME`)."""

MAX_BYTES = 4 << 20
"""A credential file larger than this names nothing (a kubeconfig of a few hundred clusters is well below)."""
RECENT_NS = 2_000_000_000
"""A credential file modified this recently (ns) when read is read again at the next start (see `files_named_in`)."""

_AWS_FILES = (
    ("AWS_SHARED_CREDENTIALS_FILE", ("~/.aws/credentials",), False),  # botocore.configprovider
    ("AWS_CONFIG_FILE", ("~/.aws/config",), False),  # profiles may hold keys too (botocore's ConfigProvider)
)
_OVERRIDABLE = (
    *_AWS_FILES,
    ("BOTO_CONFIG", ("/etc/boto.cfg", "~/.boto"), False),  # botocore.credentials.BotoProvider
    ("NETRC", ("~/.netrc", "~/_netrc"), False),  # requests.utils.get_netrc_auth (MLflow's client uses requests)
    ("DATABRICKS_CONFIG_FILE", ("~/.databrickscfg",), True),  # databricks.sdk.config (MLflow, `databricks` URIs)
)
"""(variable, defaults, whether an empty variable counts as unset): the variable, when set, names the file instead
of the defaults. Set but empty, it names no file, except where the library falls back to its default (the
Databricks SDK's `if not config_file`)."""
_EXPANDS_VARIABLES = frozenset(variable for variable, _, _ in _AWS_FILES)
"""botocore's `configloader.raw_config_parse` expands `$VAR` in these, then `~`."""
_ONLY_WHEN_SET = ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_CREDENTIAL_FILE")
"""botocore's token files, read only where the variable names one (IRSA, EKS Pod Identity), and the EC2 tools' key
file (`OriginalEC2Provider.CRED_FILE_ENV`, still in botocore's default chain)."""
_FIXED = ("~/.mlflow/credentials", SERVICE_ACCOUNT_TOKEN)  # mlflow.utils.credentials; the in-cluster token
_AWS_CACHES = (
    ("~/.aws/sso/cache", None),  # botocore.credentials.SSOProvider and botocore.tokens.SSOTokenProvider
    ("~/.aws/login/cache", "AWS_LOGIN_CACHE_DIRECTORY"),  # botocore.utils.get_login_token_cache_directory
    ("~/.aws/cli/cache", None),  # the AWS CLI's cache of assumed-role and SSO credentials (botocore's JSONFileCache)
)
"""(default, variable): directories of `<key>.json` token files (botocore's `JSONFileCache`); the variable, when set
and not empty, names the directory instead (`$VAR` and `~` expanded, as botocore does)."""
_KUBE_USER_FILES = ("client-key", "client-certificate", "tokenFile")
"""The files a kubeconfig's `users[].user` names (`kubernetes.config.kube_config.KubeConfigLoader`); a cluster's
`certificate-authority` is public."""
_AWS_PROFILE_FILES = ("web_identity_token_file",)  # botocore.credentials.AssumeRoleWithWebIdentityProvider


def default_files(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every credential file Odin's libraries would read by themselves in `environ` (default: this process's), as
    absolute paths (a relative one is taken from the working directory, as the library would), whether or not it
    exists now: the sandbox skips a missing one at each start and closes it from the first start after it appears."""
    env = os.environ if environ is None else environ
    return [os.path.abspath(path) for path in _named(env)]  # noqa: PTH100 (no link is resolved)


@dataclass(frozen=True, slots=True)
class Sources:
    """The credential files that name other files, and the token cache directories, as absolute paths."""

    kubeconfigs: tuple[tuple[str, ...], ...] = ()
    """Each a list of kubeconfigs that the Kubernetes client merges (`KUBECONFIG`'s entries, `ODIN_KUBE_CONFIG`'s)."""
    aws_configs: tuple[str, ...] = ()
    """botocore's shared credentials and config files."""
    aws_caches: tuple[str, ...] = ()
    """Directories whose `*.json` files are botocore's or the AWS CLI's cached tokens."""

    def __or__(self, other: Sources) -> Sources:
        return Sources(
            _unique((*self.kubeconfigs, *other.kubeconfigs)),
            _unique((*self.aws_configs, *other.aws_configs)),
            _unique((*self.aws_caches, *other.aws_caches)),
        )


def sources(environ: Mapping[str, str] | None = None) -> Sources:
    """The files and directories of `Sources` that Odin's libraries would find by themselves in `environ` (default:
    this process's), existing or not (each is looked at again at every `files_named_in`)."""
    env = os.environ if environ is None else environ
    aws_caches = []
    for default, variable in _AWS_CACHES:
        value = env.get(variable) if variable else None
        if value is None:
            aws_caches.append(os.path.abspath(_expand(default, env)))  # noqa: PTH100
        elif value:  # set but empty: no directory (botocore would use the working directory: not closed whole)
            aws_caches.append(os.path.abspath(_expand(_expand_variables(value, env), env)))  # noqa: PTH100
    return Sources(
        kubeconfigs=(kubeconfig_entries(env.get("KUBECONFIG", "~/.kube/config"), env),),
        aws_configs=tuple(os.path.abspath(p) for p in _overridden(_AWS_FILES, env)),  # noqa: PTH100
        aws_caches=tuple(aws_caches),
    )


def kubeconfig_entries(value: str, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The kubeconfigs a `KUBECONFIG`-style value names, as the Kubernetes client reads them
    (`KubeConfigMerger._load_config_from_file_path`): split at `:`, empty entries skipped, `~` expanded; absolute."""
    env = os.environ if environ is None else environ
    return tuple(os.path.abspath(_expand(entry, env)) for entry in value.split(":") if entry)  # noqa: PTH100


def files_named_in(found: Sources) -> list[str]:
    """The files that `found`'s credential files name now, and the token files now in its cache directories, as
    absolute paths (not resolved: the sandbox resolves links at each start), each once. Never raises for a
    credential file: one that cannot be read or parsed names nothing."""
    named: dict[str, None] = {}
    for merged in found.kubeconfigs:
        bases: dict[str, None] = {}
        relative: dict[str, None] = {}
        for path in merged:
            parsed = _parsed(path, _kubeconfig_names)
            if parsed is None:
                continue
            bases[os.path.dirname(path)] = None  # noqa: PTH120 (the client's `os.path.dirname(config_path)`)
            relative.update(dict.fromkeys(parsed))
        for name in relative:
            for base in bases:  # the cluster's file or the user's: either may be any file of the merge
                named[os.path.normpath(os.path.join(base, name))] = None  # noqa: PTH118 (the client's `FileOrData`)
    for path in found.aws_configs:
        for name in _parsed(path, _aws_profile_names) or ():
            named[os.path.abspath(name)] = None  # noqa: PTH100 (botocore opens it as given)
    for directory in found.aws_caches:
        named.update(dict.fromkeys(_cached_tokens(directory)))
    return list(named)


@dataclass(frozen=True, slots=True)
class _Parse:
    stamp: tuple[int, int, int, int, int] | None  # (device, inode, modification time, change time, size); None: missing
    names: tuple[str, ...] | None  # None: nothing read (missing, unreadable, malformed)
    problem: str
    settled: bool  # kept for the next start (not modified within RECENT_NS of being read)


_parses: dict[tuple[str, Callable[[str], tuple[str, ...]]], _Parse] = {}
_parses_lock = threading.Lock()


def _parsed(path: str, parse: Callable[[str], tuple[str, ...]]) -> tuple[str, ...] | None:
    """`parse` of the file at `path`, kept while its stamp is unchanged; None where the file names nothing."""
    key = (path, parse)
    with _parses_lock:
        kept = _parses.get(key)
        try:
            info = os.stat(path)  # noqa: PTH116 (a str path, as given)
        except OSError as e:
            if kept is None or kept.stamp is not None:
                log.debug("credential file %s not read: %s", path, e.strerror)
            _parses[key] = _Parse(None, None, "missing", settled=True)
            return None
        stamp = _stamp(info)
        if kept is not None and kept.settled and kept.stamp == stamp:
            return kept.names
        fresh = _parse_file(path, info, parse)
        if fresh.problem and (kept is None or (kept.stamp, kept.problem) != (fresh.stamp, fresh.problem)):
            log.warning("credential file %s names no file to close to tasks: %s", path, fresh.problem)
        _parses[key] = fresh
        return fresh.names


def _parse_file(path: str, info: os.stat_result, parse: Callable[[str], tuple[str, ...]]) -> _Parse:
    now = time.time_ns()
    if not stat.S_ISREG(info.st_mode):
        return _Parse(_stamp(info), None, "not a regular file", settled=True)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO swapped in never blocks a start
    except OSError as e:
        return _Parse(_stamp(info), None, e.strerror or type(e).__name__, settled=True)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return _Parse(_stamp(info), None, "not a regular file", settled=True)
        if info.st_size > MAX_BYTES:
            return _Parse(_stamp(info), None, f"larger than {MAX_BYTES} bytes", settled=True)
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as e:
        return _Parse(_stamp(info), None, e.strerror or type(e).__name__, settled=False)
    finally:
        os.close(fd)
    settled = now - info.st_mtime_ns >= RECENT_NS
    if len(data) > MAX_BYTES:
        return _Parse(_stamp(info), None, f"larger than {MAX_BYTES} bytes", settled)
    try:
        names = parse(data.decode("utf-8"))  # as the libraries open it (UTF-8 locale): other bytes, no file
    except Exception as e:  # whatever a malformed file raises, it never stops a start
        return _Parse(_stamp(info), None, _describe(e), settled)
    return _Parse(_stamp(info), names, "", settled)


def _stamp(info: os.stat_result) -> tuple[int, int, int, int, int]:
    """What tells a file's versions apart: a replacement (another inode), an edit (times, size), a `chmod` that
    makes an unreadable file readable (the change time)."""
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns, info.st_size)


class _Malformed(ValueError):
    """A credential file that parses but is not shaped as its library expects (the message names no content)."""


def _describe(error: Exception) -> str:
    """What went wrong, and where, without the parser's excerpt of the file (which may hold a secret)."""
    if isinstance(error, _Malformed):
        return str(error)
    line: object = None
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)  # yaml.MarkedYAMLError
    if mark is not None:
        line = getattr(mark, "line", -1) + 1
    elif isinstance(getattr(error, "lineno", None), int):  # configparser's header and duplicate errors
        line = error.lineno  # type: ignore[attr-defined]
    elif isinstance(errors := getattr(error, "errors", None), list) and errors:  # configparser.ParsingError
        line = errors[0][0]
    return f"malformed ({type(error).__name__}" + (f" at line {line})" if line else ")")


def _kubeconfig_names(text: str) -> tuple[str, ...]:
    """The files a kubeconfig's users name, as written (`yaml.safe_load`, as the Kubernetes client loads it)."""
    import yaml  # here: only where a kubeconfig exists

    config = yaml.safe_load(text)
    if config is None:
        return ()
    if not isinstance(config, dict):
        raise _Malformed("malformed (not a mapping)")
    users = config.get("users") or []
    if not isinstance(users, list):
        raise _Malformed("malformed (`users` is not a list)")
    names = []
    for entry in users:
        user = entry.get("user") if isinstance(entry, dict) else None
        if isinstance(user, dict):
            names += [v for v in (user.get(key) for key in _KUBE_USER_FILES) if isinstance(v, str) and v]
    return tuple(names)


def _aws_profile_names(text: str) -> tuple[str, ...]:
    """The files an AWS shared config or credentials file's profiles name (`configparser.RawConfigParser`, as
    `botocore.configloader.raw_config_parse` reads it: a file botocore refuses names nothing)."""
    import configparser  # here: only where an AWS file exists

    parser = configparser.RawConfigParser()
    parser.read_string(text)
    names = []
    for section in parser.sections():
        for option in _AWS_PROFILE_FILES:
            value = parser.get(section, option, fallback="")
            if value and not value.startswith("\n"):  # a nested block (`s3 =` and indented lines) is no path
                names.append(value)
    return tuple(names)


def _cached_tokens(directory: str) -> list[str]:
    """The `*.json` entries in `directory` now (a `JSONFileCache`'s files); none where it cannot be listed."""
    try:
        with os.scandir(directory) as entries:
            return sorted(entry.path for entry in entries if entry.name.endswith(".json"))
    except OSError:
        return []


def _named(env: Mapping[str, str]) -> Iterator[str]:
    yield from _overridden(_OVERRIDABLE, env)
    for variable in _ONLY_WHEN_SET:
        if env.get(variable):
            yield _expand(env[variable], env)
    # kubernetes.config.kube_config: `KUBECONFIG` (entries separated by `:`), else `~/.kube/config`.
    yield from kubeconfig_entries(env.get("KUBECONFIG", "~/.kube/config"), env)
    yield from (_expand(path, env) for path in _FIXED)


def _overridden(table: Iterable[tuple[str, tuple[str, ...], bool]], env: Mapping[str, str]) -> Iterator[str]:
    for variable, defaults, empty_is_unset in table:
        value = env.get(variable)
        if value is None or (empty_is_unset and not value):
            yield from (_expand(path, env) for path in defaults)
        elif value:
            yield _expand(_expand_variables(value, env) if variable in _EXPANDS_VARIABLES else value, env)


_VARIABLE = re.compile(r"\$(\w+|\{[^}]*\})", re.ASCII)


def _expand_variables(path: str, env: Mapping[str, str]) -> str:
    """`os.path.expandvars` against `env`: `$NAME` and `${NAME}` replaced where set, left as they are elsewhere."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1).strip("{}")
        return env.get(name, match.group(0))

    return _VARIABLE.sub(value, path)


def _expand(path: str, env: Mapping[str, str]) -> str:
    """`os.path.expanduser` against `env`'s `HOME`, else the password database (only `~` and `~/...`: no library
    default names another user's home)."""
    if path != "~" and not path.startswith("~/"):
        return path
    home = env["HOME"] if "HOME" in env else pwd.getpwuid(os.getuid()).pw_dir
    return (home.rstrip("/") + path[1:]) or "/"


def _unique(items: Iterable[_T]) -> tuple[_T, ...]:
    return tuple(dict.fromkeys(items))
