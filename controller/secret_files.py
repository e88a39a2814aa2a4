"""Every file this process reads a secret from, so that the local sandbox can close each to tasks (issue 8 item 2).

Secrets outside the data directory are files the operator names: `ODIN_JWT_SECRET_FILE`, `ODIN_ADMIN_PASSWORD_FILE`,
`ODIN_JWT_PRIVATE_KEY_FILE`, `ODIN_GIT_SSH_KEY`, `ODIN_KUBE_CONFIG`, and any `file:/path` reference, in the settings
(`ODIN_WEBHOOK_SECRET=file:...`, `ODIN_STATUS_TOKEN`, `ODIN_MIDGARD_TOKEN`, the artifact store's keys...) or in a
repository registered through the API (`credentials_ref`, `webhook_secret_ref`); and the files Odin's libraries read
by themselves when the settings name none (`~/.aws/credentials`, `$KUBECONFIG`, `~/.netrc`...:
`library_credentials`), and the files that those credential files name in turn, read out of them as they are at
each start (a kubeconfig's `client-key` and `tokenFile`, an AWS profile's `web_identity_token_file`, the `*.json`
token files in `~/.aws/sso/cache`...: `library_credentials.files_named_in`). A task of Odin's own user passes
every permission check on them; the Landlock sandbox (`executors.sandbox`) denies each one it is told about, so this
module is where they are told: the settings and the libraries' defaults at start (`note_settings`,
`note_library_defaults`), a repository's references when it is
registered or loaded, and every `file:` reference when it is parsed or resolved (`note_reference`, called by
`git.credentials`), whoever resolves it. The sandbox reads `paths()` at each task start, so a reference added
while Odin runs is closed to every task started after it, and so is a key that a kubeconfig names from then on.

Only additions: a path once named stays closed for the life of the process (a rotated secret's old file is still a
secret). Paths are kept as given; the sandbox resolves links at each start, so a Kubernetes Secret swapped in behind
a link is followed to its current file.
"""

from __future__ import annotations

import threading
from pathlib import Path

from pydantic import BaseModel, SecretStr

from odin.controller import library_credentials

__all__ = [
    "PATH_FIELDS", "note_kubeconfig", "note_library_defaults", "note_path", "note_reference", "note_settings", "paths",
]  # fmt: skip

PATH_FIELDS = ("jwt_secret_file", "admin_password_file", "jwt_private_key_file", "git_ssh_key", "kube_config")
"""Settings that hold the path of a secret file itself (not a `file:` reference). `jwt_public_key_file` is public."""

_paths: set[str] = set()
_sources = [library_credentials.Sources()]  # the credential files whose named files are read out at each `paths()`
_lock = threading.Lock()


def note_path(path: str | Path) -> None:
    """Close `path` (absolute, or taken relative to the working directory as Odin would read it) to tasks."""
    text = str(Path(path).absolute())
    with _lock:
        _paths.add(text)


def note_reference(reference: str | None) -> None:
    """Close the file a `file:/path` reference names; anything else (`env:NAME`, a plain value, None) is ignored."""
    if reference is None:
        return
    text = reference.strip()
    if text.startswith("file:") and len(text) > len("file:"):
        note_path(text[len("file:") :])


def note_settings(*settings: BaseModel | None) -> None:
    """Every secret file that settings objects name: the `PATH_FIELDS` and each `file:` reference among their
    secret fields (`Settings`, `ArtifactSettings`...). Plain strings are left alone: `ODIN_REPO=file:///srv/x.git`
    is a repository, not a secret."""
    for model in settings:
        if model is None:
            continue
        for name in type(model).model_fields:
            value = getattr(model, name, None)
            if isinstance(value, SecretStr):
                note_reference(value.get_secret_value())
            elif name in PATH_FIELDS and isinstance(value, str | Path):
                text = str(value)
                if text.startswith("file:"):  # `ODIN_GIT_SSH_KEY` takes a reference too
                    note_reference(text)
                elif not text.startswith("env:"):
                    note_path(text)
                    if name == "kube_config":
                        note_kubeconfig(text)


def note_library_defaults() -> None:
    """The credential files Odin's libraries would find by themselves in this process's environment (boto3's,
    the Kubernetes client's, MLflow's, `~/.netrc`: `library_credentials.default_files`), existing or not: one that
    appears later is closed from the first task start after it appears, as any named file is."""
    for path in library_credentials.default_files():
        note_path(path)
    _note_sources(library_credentials.sources())


def note_kubeconfig(value: str) -> None:
    """Close the kubeconfigs a `KUBECONFIG`-style value names (`ODIN_KUBE_CONFIG`: the Kubernetes client splits it
    at `:` and expands `~`, as it does `KUBECONFIG`), and from each start on the files they name then."""
    entries = library_credentials.kubeconfig_entries(value)
    for entry in entries:
        note_path(entry)
    _note_sources(library_credentials.Sources(kubeconfigs=(entries,)))


def _note_sources(found: library_credentials.Sources) -> None:
    with _lock:
        _sources[0] |= found


def paths() -> frozenset[str]:
    """The secret files named so far, as given (not resolved), with the files the credential files noted as such
    name now (read again only where one changed since the last call: `library_credentials.files_named_in`). A file
    once named stays in, as every named file does: a key a kubeconfig named before an edit is still a key."""
    with _lock:
        found = _sources[0]
    named = library_credentials.files_named_in(found)
    with _lock:
        _paths.update(named)
        return frozenset(_paths)
