"""The credential files that the libraries Odin runs in-process find by themselves, so that the local sandbox closes
them to tasks as it closes the files Odin's settings name (`secret_files`, issue 8 item 2 follow-up).

When Odin's settings name no credentials, its libraries look in their own default places: boto3 (the S3 artifact
store) in `~/.aws/credentials` and `~/.aws/config`, a web identity or container token file, and boto2's config; the
Kubernetes client (the Kubernetes executor, Midgard's discovery) in `$KUBECONFIG` or `~/.kube/config`, or the
ServiceAccount token in a pod; MLflow's client (run tracking) in `~/.mlflow/credentials` and, for a `databricks`
URI, `~/.databrickscfg`; requests (under MLflow's client) in `~/.netrc`. A local task runs as Odin's user, so
without this it reads the controller's cloud keys with a `cat`.

Each path is resolved as its library resolves it, from the same variables and the same home directory (`HOME`, else
the user's entry in the password database, as `os.path.expanduser` does): an explicit variable replaces the default.
The constants are copied, not imported, because importing boto3 or the Kubernetes client here would cost every start
(and only their adapters may import them); tests/controller/test_secret_files.py checks them against the installed
libraries.

What is not here, on evidence: git. The libgit2 that pygit2 bundles (1.9, SSH through libssh2; its OpenSSH `exec`
transport is not built in) has no credential helpers, so it never reads `~/.git-credentials`, and it authenticates
only with what Odin's callback hands it (`git._transport.OdinCallbacks`: `ODIN_GIT_SSH_KEY` or a repository's
`file:` reference, both closed already), never with an agent or a key found in `~/.ssh/`; of `~/.ssh/` it reads
only `known_hosts`, which holds public keys. httpx (the release Odin pins) reads `~/.netrc` only when handed
`NetRCAuth`, which Odin never does. Files that a credential file names in turn (a kubeconfig's `client-key` or
`tokenFile`, a profile's `web_identity_token_file`, botocore's SSO cache) are not parsed out: docs/local-executor.md
says so.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator, Mapping

__all__ = ["SERVICE_ACCOUNT_TOKEN", "default_files"]

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
"""The Kubernetes client's in-cluster token (`kubernetes.config.incluster_config.SERVICE_TOKEN_FILENAME`)."""

_OVERRIDABLE = (
    ("AWS_SHARED_CREDENTIALS_FILE", ("~/.aws/credentials",), False),  # botocore.configprovider
    ("AWS_CONFIG_FILE", ("~/.aws/config",), False),  # profiles may hold keys too (botocore's ConfigProvider)
    ("BOTO_CONFIG", ("/etc/boto.cfg", "~/.boto"), False),  # botocore.credentials.BotoProvider
    ("NETRC", ("~/.netrc", "~/_netrc"), False),  # requests.utils.get_netrc_auth (MLflow's client uses requests)
    ("DATABRICKS_CONFIG_FILE", ("~/.databrickscfg",), True),  # databricks.sdk.config (MLflow, `databricks` URIs)
)
"""(variable, defaults, whether an empty variable counts as unset): the variable, when set, names the file instead
of the defaults. Set but empty, it names no file, except where the library falls back to its default (the
Databricks SDK's `if not config_file`)."""
_ONLY_WHEN_SET = ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
"""botocore's token files: read only where the variable names one (IRSA, EKS Pod Identity)."""
_FIXED = ("~/.mlflow/credentials", SERVICE_ACCOUNT_TOKEN)  # mlflow.utils.credentials; the in-cluster token


def default_files(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every credential file Odin's libraries would read by themselves in `environ` (default: this process's), as
    absolute paths (a relative one is taken from the working directory, as the library would), whether or not it
    exists now: the sandbox skips a missing one at each start and closes it from the first start after it appears."""
    env = os.environ if environ is None else environ
    return [os.path.abspath(_expand(path, env)) for path in _named(env)]  # noqa: PTH100 (no link is resolved)


def _named(env: Mapping[str, str]) -> Iterator[str]:
    for variable, defaults, empty_is_unset in _OVERRIDABLE:
        value = env.get(variable)
        if value is None or (empty_is_unset and not value):
            yield from defaults
        elif value:
            yield value
    for variable in _ONLY_WHEN_SET:
        if env.get(variable):
            yield env[variable]
    # kubernetes.config.kube_config: `KUBECONFIG` (entries separated by `:`), else `~/.kube/config`.
    yield from (entry for entry in env.get("KUBECONFIG", "~/.kube/config").split(":") if entry)
    yield from _FIXED


def _expand(path: str, env: Mapping[str, str]) -> str:
    """`os.path.expanduser` against `env`'s `HOME`, else the password database (only `~` and `~/...`: no library
    default names another user's home)."""
    if path != "~" and not path.startswith("~/"):
        return path
    home = env["HOME"] if "HOME" in env else pwd.getpwuid(os.getuid()).pw_dir
    return (home.rstrip("/") + path[1:]) or "/"
