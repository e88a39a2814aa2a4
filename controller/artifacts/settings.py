"""Artifact store settings (`ODIN_ARTIFACTS_*`), and the one function that opens the configured store.

Kept apart from `controller/settings.py` so that the transfer command in a pod reads only these (it has no
repository, database or API to configure). Credentials are `SecretStr` holding either the value or, preferably, a
reference: `env:NAME` (a variable, e.g. one a Kubernetes Secret fills) or `file:/path` (re-read on each open, so a
rotated key needs no restart). Neither the values nor the resolved secrets ever appear in a repr, a log line or
`pod_env`. With no credentials at all, boto3's own chain applies (AWS_* variables, IRSA / web identity, instance
profile).

Read these before `secrecy.withhold_secrets` moves the `ODIN_*KEY*` variables out of the environment, and pass
`references()` to it so the variables that `env:` references name are withheld too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from odin.controller import secret_files
from odin.controller.artifacts.local import LocalStore
from odin.controller.artifacts.store import ArtifactStore

MiB = 1024 * 1024


class MissingCredential(ValueError):
    """A credential reference that names nothing (an unset variable, a missing file)."""


def resolve_secret(value: SecretStr | None) -> str | None:
    """The secret a value-or-reference stands for: `env:NAME`, `file:/path`, or the value itself."""
    if value is None:
        return None
    raw = value.get_secret_value().strip()
    if raw.startswith("env:"):
        from odin.controller.secrecy import withheld

        name = raw[4:]
        found = os.environ.get(name) or withheld(name)
        if not found:
            raise MissingCredential(f"the variable {name} named by a credential reference is not set")
        return found
    if raw.startswith("file:"):
        secret_files.note_reference(raw)  # closed to local tasks (executors.sandbox)
        path = Path(raw[5:])
        try:
            return path.read_text().strip()
        except OSError as e:
            raise MissingCredential(f"cannot read the credential file {path}: {e.strerror}") from e
    return raw


class ArtifactSettings(BaseSettings):
    """Where artifacts are stored. Field names map to `ODIN_ARTIFACTS_<NAME>` environment variables."""

    model_config = SettingsConfigDict(env_prefix="ODIN_ARTIFACTS_", extra="ignore", validate_default=True)

    backend: Literal["local", "s3"] = Field(
        default="local", description="local: a directory (embedded default); s3: S3-compatible object storage."
    )
    dir: Path | None = Field(default=None, description="Root of the local store. Default: <ODIN_DATA_DIR>/artifacts.")
    bucket: str | None = Field(default=None, description="Bucket (s3). Created by the operator, not by Odin.")
    prefix: str = Field(default="odin/", description="Key prefix inside the bucket; '' for the whole bucket.")
    endpoint_url: str | None = Field(
        default=None,
        description="S3 endpoint: unset for AWS; https://storage.googleapis.com for GCS, the MinIO or SeaweedFS URL.",
    )
    region: str | None = Field(default=None, description="Region (AWS: the bucket's; others: usually us-east-1).")
    access_key_id: SecretStr | None = Field(
        default=None, description="Access key id, or a reference env:NAME / file:/path. Unset: boto3's own chain."
    )
    secret_access_key: SecretStr | None = Field(
        default=None, description="Secret access key, or a reference env:NAME / file:/path."
    )
    addressing_style: Literal["auto", "path", "virtual"] = Field(
        default="auto", description="path for MinIO/SeaweedFS behind one host name; virtual or auto for AWS and GCS."
    )
    checksums: Literal["when_required", "when_supported"] = Field(
        default="when_required",
        description="boto3's extra CRC checksums: when_supported (AWS) or when_required (GCS, older MinIO).",
    )
    # boto3's TransferConfig defaults (8 MiB, 10 threads): measured against larger parts on SeaweedFS, small parts
    # keep every thread busy to the end and let a download's hash start after the first 8 MiB (docs/artifacts.md).
    multipart_threshold_mb: int = Field(default=8, ge=5, description="Objects above this upload in parts, MiB.")
    multipart_chunk_mb: int = Field(default=8, ge=5, description="Size of each uploaded or downloaded part, MiB.")
    max_concurrency: int = Field(default=10, ge=1, le=64, description="Parts and tree files in flight at once.")
    payload_signing: bool = Field(
        default=False,
        description="SHA-256 every request body for its signature as well (the digest already guards the bytes).",
    )
    verify: bool = Field(default=True, description="Hash every downloaded blob against its digest.")
    keep_runs: int | None = Field(
        default=None, ge=0, description="Retention of the repository the settings name: keep the last N runs of each "
        "pipeline (and any run younger than keep_days). Unset with keep_days unset: keep everything.",
    )  # fmt: skip
    keep_days: float | None = Field(default=None, ge=0, description="Retention: keep runs younger than N days.")
    retention_interval: float = Field(
        default=3600.0, gt=0, description="Seconds between the leader's retention sweeps."
    )

    @field_validator("prefix")
    @classmethod
    def _prefix_is_a_folder(cls, value: str) -> str:
        value = value.lstrip("/")
        return value if not value or value.endswith("/") else f"{value}/"

    @model_validator(mode="after")
    def _s3_needs_a_bucket(self) -> ArtifactSettings:
        if self.backend == "s3" and not self.bucket:
            raise ValueError("ODIN_ARTIFACTS_BUCKET is required with ODIN_ARTIFACTS_BACKEND=s3")
        return self

    def references(self) -> list[str]:
        """The credential references, for `secrecy.withhold_secrets` (values that are not references are omitted)."""
        return [
            s.get_secret_value()
            for s in (self.access_key_id, self.secret_access_key)
            if s is not None and s.get_secret_value().startswith(("env:", "file:"))
        ]

    def pod_env(self) -> dict[str, str]:
        """The `ODIN_ARTIFACTS_*` variables that let the transfer command in a pod open the same store: everything
        but credential values. A credential given as a value is left out (the pod gets it from a Secret, through a
        reference or boto3's AWS_* variables); a reference is passed as it is."""
        env: dict[str, str] = {"ODIN_ARTIFACTS_BACKEND": self.backend, "ODIN_ARTIFACTS_PREFIX": self.prefix}
        optional = {
            "BUCKET": self.bucket,
            "ENDPOINT_URL": self.endpoint_url,
            "REGION": self.region,
        }
        env.update({f"ODIN_ARTIFACTS_{k}": v for k, v in optional.items() if v})
        for name, secret in (("ACCESS_KEY_ID", self.access_key_id), ("SECRET_ACCESS_KEY", self.secret_access_key)):
            if secret is not None and secret.get_secret_value().startswith(("env:", "file:")):
                env[f"ODIN_ARTIFACTS_{name}"] = secret.get_secret_value()
        env.update(
            {
                "ODIN_ARTIFACTS_ADDRESSING_STYLE": self.addressing_style,
                "ODIN_ARTIFACTS_CHECKSUMS": self.checksums,
                "ODIN_ARTIFACTS_MULTIPART_THRESHOLD_MB": str(self.multipart_threshold_mb),
                "ODIN_ARTIFACTS_MULTIPART_CHUNK_MB": str(self.multipart_chunk_mb),
                "ODIN_ARTIFACTS_MAX_CONCURRENCY": str(self.max_concurrency),
                "ODIN_ARTIFACTS_PAYLOAD_SIGNING": "true" if self.payload_signing else "false",
                "ODIN_ARTIFACTS_VERIFY": "true" if self.verify else "false",
            }
        )
        return env


def current_settings() -> ArtifactSettings:
    """`ArtifactSettings` from the environment, credentials included even after `secrecy.withhold_secrets` moved
    `ODIN_ARTIFACTS_ACCESS_KEY_ID` / `_SECRET_ACCESS_KEY` out of it (what the server does at start)."""
    from odin.controller.secrecy import withheld

    given: dict[str, SecretStr] = {}
    for name in ("access_key_id", "secret_access_key"):
        variable = f"ODIN_ARTIFACTS_{name.upper()}"
        value = None if variable in os.environ else withheld(variable)
        if value:
            given[name] = SecretStr(value)
    return ArtifactSettings(**given)  # type: ignore[arg-type]


def open_store(settings: ArtifactSettings, data_dir: Path | None = None) -> ArtifactStore:
    """The store `settings` describe. `data_dir` is where the local store lives by default."""
    if settings.backend == "local":
        root = settings.dir or (data_dir / "artifacts" if data_dir else None)
        if root is None:
            raise ValueError("the local artifact store needs ODIN_ARTIFACTS_DIR (or the server's data directory)")
        return LocalStore(root)
    from odin.controller.artifacts.s3 import S3Store  # boto3 is imported only when an S3 store is configured

    assert settings.bucket is not None  # the model validator
    return S3Store(
        bucket=settings.bucket,
        prefix=settings.prefix,
        endpoint_url=settings.endpoint_url,
        region=settings.region,
        access_key_id=resolve_secret(settings.access_key_id),
        secret_access_key=resolve_secret(settings.secret_access_key),
        addressing_style=settings.addressing_style,
        checksums=settings.checksums,
        multipart_threshold=settings.multipart_threshold_mb * MiB,
        multipart_chunksize=settings.multipart_chunk_mb * MiB,
        max_concurrency=settings.max_concurrency,
        payload_signing=settings.payload_signing,
    )
