"""Which files the local sandbox is told hold secrets (controller/secret_files.py): every one the settings name, and
every `file:` reference Odin parses or resolves, whoever asks. That the sandbox closes them is
tests/controller/test_local_sandbox.py; the whole path through `odin serve` is tests/e2e/test_task_secrets.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from odin.controller import library_credentials, secret_files
from odin.controller.artifacts.settings import ArtifactSettings, resolve_secret
from odin.controller.git.credentials import SecretRef, parse_secret_ref, resolve_secret_ref
from odin.controller.settings import Settings


def test_the_settings_name_their_secret_files_and_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ODIN_"):
            monkeypatch.delenv(name)
    secret = tmp_path / "secret"
    settings = Settings(
        data_dir=tmp_path / "data",
        repo="file:///srv/git/ml.git",  # a repository, not a secret
        jwt_secret_file=secret / "jwt",
        admin_password_file=secret / "admin",
        jwt_private_key_file=secret / "private.pem",
        jwt_public_key_file=secret / "public.pem",  # public
        git_ssh_key=str(secret / "id_ed25519"),
        kube_config=secret / "kubeconfig",
        webhook_secret=SecretStr(f"file:{secret}/hook"),
        webhook_secret_previous=SecretStr("env:ODIN_OLD_HOOK"),
        status_token=SecretStr(f" file:{secret}/status "),
        midgard_token=SecretStr("plain-value"),
    )
    artifacts = ArtifactSettings(backend="s3", bucket="b", secret_access_key=SecretStr(f"file:{secret}/s3"))
    secret_files.note_settings(settings, artifacts, None)
    named = secret_files.paths()
    wanted = {"jwt", "admin", "private.pem", "id_ed25519", "kubeconfig", "hook", "status", "s3"}
    assert {str(secret / name) for name in wanted} <= named
    assert str(secret / "public.pem") not in named
    assert not any(path.startswith("/srv") or "ODIN_OLD_HOOK" in path or "plain" in path for path in named)


def test_an_ssh_key_setting_that_is_a_reference_names_the_referenced_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", git_ssh_key=f"file:{tmp_path}/deploy-key")
    secret_files.note_settings(settings)
    assert str(tmp_path / "deploy-key") in secret_files.paths()
    assert f"file:{tmp_path}/deploy-key" not in secret_files.paths()


def test_every_file_reference_parsed_or_resolved_is_named(tmp_path: Path) -> None:
    """The API parses a repository's references when it is registered; webhooks, notifiers and the artifact store
    resolve theirs when used: each names its file before anything reads it."""
    parse_secret_ref(f"file:{tmp_path}/registered")
    parse_secret_ref("env:NOT_A_FILE")
    with pytest.raises(Exception, match="does not exist"):
        resolve_secret_ref(SecretRef("file", f"{tmp_path}/made-by-hand"))
    with pytest.raises(Exception, match="cannot read the credential file"):
        resolve_secret(SecretStr(f"file:{tmp_path}/s3-key"))
    named = secret_files.paths()
    assert {str(tmp_path / n) for n in ("registered", "made-by-hand", "s3-key")} <= named
    assert not any("NOT_A_FILE" in path for path in named)


LIBRARY_VARIABLES = (
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "BOTO_CONFIG", "NETRC", "DATABRICKS_CONFIG_FILE", "KUBECONFIG",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
)  # fmt: skip


def test_the_credential_files_the_libraries_find_by_themselves_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no variable set, each library's default place in `HOME`, existing or not (the sandbox skips a missing
    one at each start); the server's `HOME` is the one that counts, not the password database's."""
    home = tmp_path / "home"
    for name in LIBRARY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(home))
    secret_files.note_library_defaults()
    wanted = {
        ".aws/credentials", ".aws/config", ".boto", ".netrc", "_netrc", ".kube/config", ".mlflow/credentials",
        ".databrickscfg",
    }  # fmt: skip
    named = secret_files.paths()
    assert {str(home / name) for name in wanted} <= named
    assert {"/etc/boto.cfg", library_credentials.SERVICE_ACCOUNT_TOKEN} <= named
    assert str(home) not in named and str(home / ".aws") not in named, "a directory is never named"


def test_a_librarys_variable_replaces_its_default_as_the_library_reads_it(tmp_path: Path) -> None:
    home, other = tmp_path / "home", tmp_path / "elsewhere"
    env = {
        "HOME": str(home),
        "AWS_SHARED_CREDENTIALS_FILE": f"{other}/aws-credentials",
        "AWS_CONFIG_FILE": "~/aws-config",  # botocore expands `~`
        "KUBECONFIG": f"{other}/a::~/b",  # a list, `:` separated; empty entries skipped
        "NETRC": "",  # set but empty: requests reads no netrc at all
        "DATABRICKS_CONFIG_FILE": "",  # set but empty: the Databricks SDK falls back to its default
        "AWS_WEB_IDENTITY_TOKEN_FILE": f"{other}/web-identity",
        "BOTO_CONFIG": "relative.cfg",  # from the working directory, as boto would open it
    }
    files = library_credentials.default_files(env)
    assert files == [
        f"{other}/aws-credentials", f"{home}/aws-config", os.path.abspath("relative.cfg"), f"{home}/.databrickscfg",
        f"{other}/web-identity", f"{other}/a", f"{home}/b", f"{home}/.mlflow/credentials",
        library_credentials.SERVICE_ACCOUNT_TOKEN,
    ]  # fmt: skip
    assert not any(".netrc" in f or ".aws/credentials" in f or ".kube/config" in f for f in files)


LIBRARIES_SAY = r"""
import json, os
import botocore.session
from botocore.credentials import AssumeRoleWithWebIdentityProvider, BotoProvider, ContainerProvider
from databricks.sdk.config import Config
from kubernetes.config import incluster_config, kube_config
from mlflow.utils.credentials import _get_credentials_path
from requests.utils import NETRC_FILES

session = botocore.session.Session()
print(json.dumps({
    "aws": [os.path.expanduser(session.get_config_variable(v)) for v in ("credentials_file", "config_file")],
    "aws_variables": [botocore.session.Session.SESSION_VARIABLES[v][1] for v in ("credentials_file", "config_file")],
    "boto": [BotoProvider.BOTO_CONFIG_ENV, *map(os.path.expanduser, BotoProvider.DEFAULT_CONFIG_FILENAMES)],
    "tokens": [AssumeRoleWithWebIdentityProvider._CONFIG_TO_ENV_VAR["web_identity_token_file"],
               ContainerProvider.ENV_VAR_AUTH_TOKEN_FILE],
    "kube": [os.path.expanduser(kube_config.KUBE_CONFIG_DEFAULT_LOCATION), kube_config.ENV_KUBECONFIG_PATH_SEPARATOR,
             incluster_config.SERVICE_TOKEN_FILENAME],
    "netrc": [os.path.expanduser(f"~/{name}") for name in NETRC_FILES],
    "mlflow": _get_credentials_path(),
    "databricks": [a.env for a in Config.attributes() if a.name == "config_file"][0],
}))
"""


def test_the_copied_defaults_are_the_installed_libraries_own(tmp_path: Path) -> None:
    """`library_credentials` copies the libraries' constants rather than importing them (start-up cost, the
    import contracts): a real interpreter with the libraries imported says what they would read, in a `HOME` of
    the test's and with none of their variables set."""
    env = {k: v for k, v in os.environ.items() if k not in LIBRARY_VARIABLES} | {"HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", LIBRARIES_SAY], env=env, capture_output=True, text=True, timeout=120, check=True
    ).stdout
    said = json.loads(out.splitlines()[-1])
    ours = library_credentials.default_files({"HOME": str(tmp_path)})
    assert said["aws_variables"] == ["AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"]
    assert said["boto"][0] == "BOTO_CONFIG" and said["databricks"] == "DATABRICKS_CONFIG_FILE"
    assert said["kube"][1] == ":" and said["kube"][2] == library_credentials.SERVICE_ACCOUNT_TOKEN
    for path in [*said["aws"], *said["boto"][1:], said["kube"][0], *said["netrc"], said["mlflow"]]:
        assert path in ours, f"{path} is read by a library but not closed"
    with_tokens = library_credentials.default_files({"HOME": str(tmp_path)} | {v: f"/t/{v}" for v in said["tokens"]})
    assert {f"/t/{v}" for v in said["tokens"]} <= set(with_tokens)
