"""One SeaweedFS S3 server per session; each test gets its own key prefix in its bucket, or its own local store."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from odin.controller.artifacts.local import LocalStore
from odin.controller.artifacts.s3 import S3Store
from odin.controller.artifacts.store import ArtifactStore
from tests.support.seaweedfs import S3Endpoint, seaweedfs_server


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    with seaweedfs_server(tmp_path_factory.mktemp("seaweedfs")) as endpoint:
        yield endpoint


def s3_store(endpoint: S3Endpoint, prefix: str, **kwargs: object) -> S3Store:
    return S3Store(
        bucket=endpoint.bucket,
        prefix=prefix,
        endpoint_url=endpoint.url,
        region=endpoint.region,
        access_key_id=endpoint.access_key,
        secret_access_key=endpoint.secret_key,
        addressing_style="path",
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def test_prefix() -> str:
    return f"t-{uuid.uuid4().hex[:12]}/"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, test_prefix: str) -> ArtifactStore:
    """Each backend in turn: the tests of the interface hold for both."""
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    endpoint: S3Endpoint = request.getfixturevalue("s3_endpoint")
    # Small parts so that a few MiB already take the multipart path.
    return s3_store(endpoint, test_prefix, multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
