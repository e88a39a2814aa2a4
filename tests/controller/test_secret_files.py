"""Which files the local sandbox is told hold secrets (controller/secret_files.py): every one the settings name, and
every `file:` reference Odin parses or resolves, whoever asks. That the sandbox closes them is
tests/controller/test_local_sandbox.py; the whole path through `odin serve` is tests/e2e/test_task_secrets.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from odin.controller import secret_files
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
