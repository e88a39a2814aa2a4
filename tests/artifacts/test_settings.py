"""`ODIN_ARTIFACTS_*`: credentials by reference, never printed, and what a pod is given."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from odin.controller.artifacts.local import LocalStore
from odin.controller.artifacts.s3 import S3Store
from odin.controller.artifacts.settings import ArtifactSettings, MissingCredential, open_store, resolve_secret
from tests.support.seaweedfs import S3Endpoint


def test_local_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ODIN_ARTIFACTS_BACKEND", "ODIN_ARTIFACTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    store = open_store(ArtifactSettings(), tmp_path)
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "artifacts"


def test_s3_needs_a_bucket() -> None:
    with pytest.raises(ValidationError, match="ODIN_ARTIFACTS_BUCKET"):
        ArtifactSettings(backend="s3")


def test_prefix_is_a_folder() -> None:
    assert ArtifactSettings(prefix="/team/odin").prefix == "team/odin/"
    assert ArtifactSettings(prefix="").prefix == ""


def test_references_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_S3_SECRET", "from-env")
    (tmp_path / "key").write_text("from-file\n")
    assert resolve_secret(SecretStr("env:MY_S3_SECRET")) == "from-env"
    assert resolve_secret(SecretStr(f"file:{tmp_path / 'key'}")) == "from-file"
    assert resolve_secret(SecretStr("plain")) == "plain"
    assert resolve_secret(None) is None
    monkeypatch.delenv("MY_S3_SECRET")
    with pytest.raises(MissingCredential, match="MY_S3_SECRET"):
        resolve_secret(SecretStr("env:MY_S3_SECRET"))
    with pytest.raises(MissingCredential, match="cannot read"):
        resolve_secret(SecretStr(f"file:{tmp_path / 'missing'}"))


def test_secrets_never_print_and_values_never_reach_a_pod() -> None:
    settings = ArtifactSettings(
        backend="s3",
        bucket="b",
        endpoint_url="http://minio:9000",
        access_key_id=SecretStr("AKIAPLAINVALUE"),
        secret_access_key=SecretStr("env:S3_SECRET"),
    )
    assert "AKIAPLAINVALUE" not in repr(settings)
    assert "AKIAPLAINVALUE" not in str(settings.model_dump())
    env = settings.pod_env()
    assert "ODIN_ARTIFACTS_ACCESS_KEY_ID" not in env, "a plain value stays with the controller"
    assert env["ODIN_ARTIFACTS_SECRET_ACCESS_KEY"] == "env:S3_SECRET", "a reference travels as it is"
    assert env["ODIN_ARTIFACTS_BUCKET"] == "b"
    assert settings.references() == ["env:S3_SECRET"]
    assert ArtifactSettings(**{k.removeprefix("ODIN_ARTIFACTS_").lower(): v for k, v in env.items()}).bucket == "b"


def test_open_store_from_settings_reaches_the_server(
    s3_endpoint: S3Endpoint, test_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3_endpoint.env(prefix=test_prefix).items():
        monkeypatch.setenv(name, value)
    store = open_store(ArtifactSettings())
    assert isinstance(store, S3Store)
    blob = store.put_bytes(b"configured from the environment")
    assert store.exists(blob.digest)


def test_current_settings_still_have_the_credentials_after_the_server_withheld_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`odin serve` moves `ODIN_*KEY*` variables out of its environment at start; the store still opens with them."""
    from odin.controller import secrecy
    from odin.controller.artifacts.settings import current_settings

    monkeypatch.setattr(secrecy, "_withheld", {})
    monkeypatch.setenv("ODIN_ARTIFACTS_BACKEND", "s3")
    monkeypatch.setenv("ODIN_ARTIFACTS_BUCKET", "models")
    monkeypatch.setenv("ODIN_ARTIFACTS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("ODIN_ARTIFACTS_SECRET_ACCESS_KEY", "env:S3_SECRET")
    monkeypatch.setenv("S3_SECRET", "the-secret")
    withheld = secrecy.withhold_secrets(current_settings().references())
    assert {"ODIN_ARTIFACTS_ACCESS_KEY_ID", "ODIN_ARTIFACTS_SECRET_ACCESS_KEY", "S3_SECRET"} <= set(withheld)
    settings = current_settings()
    assert settings.access_key_id is not None and settings.access_key_id.get_secret_value() == "AKIAEXAMPLE"
    assert resolve_secret(settings.secret_access_key) == "the-secret"
    assert "the-secret" not in repr(settings) and "AKIAEXAMPLE" not in str(settings.pod_env())


def test_transfer_defaults_are_boto3s_and_payload_signing_reaches_the_pod_and_the_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in os.environ if n.startswith("ODIN_ARTIFACTS_")]:
        monkeypatch.delenv(name)
    defaults = ArtifactSettings(backend="s3", bucket="b")
    assert (defaults.multipart_threshold_mb, defaults.multipart_chunk_mb, defaults.max_concurrency) == (8, 8, 10)
    assert defaults.payload_signing is False
    unsigned = open_store(defaults)
    assert isinstance(unsigned, S3Store) and unsigned.client.meta.config.s3["payload_signing_enabled"] is False
    env = ArtifactSettings(backend="s3", bucket="b", payload_signing=True).pod_env()
    assert env["ODIN_ARTIFACTS_PAYLOAD_SIGNING"] == "true"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    signed = open_store(ArtifactSettings())
    assert isinstance(signed, S3Store) and signed.client.meta.config.s3["payload_signing_enabled"] is True
