"""How the S3 store moves bytes (issue 11, speed): multipart and ranged parts at their boundaries, a failed part
retried, a damaged download refused, and no second hash of each body for its signature.

Against the real SeaweedFS server, through `tests.support.s3_proxy`, which sees every request and fails the ones a
test asks for. Parts are 5 MiB here (S3's smallest), so a few MiB already take the multipart paths.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from odin.controller.artifacts.digest import object_key
from odin.controller.artifacts.errors import CorruptArtifact, StoreUnavailable
from odin.controller.artifacts.s3 import S3Store
from tests.support.s3_proxy import Fault, S3Proxy, s3_proxy
from tests.support.seaweedfs import S3Endpoint

PART = 5 * 1024 * 1024


@pytest.fixture
def proxy(s3_endpoint: S3Endpoint) -> Iterator[S3Proxy]:
    with s3_proxy(s3_endpoint.url) as p:
        yield p


def store_via(proxy: S3Proxy, endpoint: S3Endpoint, prefix: str, **kwargs: object) -> S3Store:
    return S3Store(
        bucket=endpoint.bucket,
        prefix=prefix,
        endpoint_url=proxy.url,
        region=endpoint.region,
        access_key_id=endpoint.access_key,
        secret_access_key=endpoint.secret_key,
        addressing_style="path",
        multipart_threshold=PART,
        multipart_chunksize=PART,
        max_concurrency=4,
        **kwargs,  # type: ignore[arg-type]
    )


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("size", [0, 1, PART - 1, PART, PART + 1, 2 * PART, 2 * PART + 7])
def test_sizes_around_the_part_boundaries_go_up_and_down_in_the_expected_parts(
    proxy: S3Proxy, s3_endpoint: S3Endpoint, test_prefix: str, tmp_path: Path, size: int
) -> None:
    data = os.urandom(size)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    store = store_via(proxy, s3_endpoint, test_prefix)
    blob = store.put_file(source)
    assert blob.digest == "sha256:" + hashlib.sha256(data).hexdigest() and blob.size == size
    parts = proxy.requests("PUT", partNumber="")
    if size < PART:  # boto3: multipart from the threshold on
        assert parts == [] and len(proxy.requests("PUT")) == 1
    else:
        assert sorted(int(p.query["partNumber"][0]) for p in parts) == list(range(1, -(-size // PART) + 1))
    out = tmp_path / "out" / "blob"
    out.parent.mkdir()
    assert store.get_file(blob.digest, out) == blob
    assert out.read_bytes() == data
    ranges = sorted(p.headers["range"] for p in proxy.requests("GET") if "range" in p.headers)
    expected = sorted(f"bytes={o}-{min(o + PART, size) - 1}" for o in range(0, size, PART))
    assert ranges == expected, "one ranged GET per part, none past the end"
    assert leftovers(out.parent) == ["blob"], "no temporary file left beside it"


def test_bodies_are_not_hashed_again_for_the_signature(
    proxy: S3Proxy, s3_endpoint: S3Endpoint, test_prefix: str, tmp_path: Path
) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(PART + 10))
    store_via(proxy, s3_endpoint, test_prefix).put_file(source)
    uploads = proxy.requests("PUT")
    assert uploads and {p.headers["x-amz-content-sha256"] for p in uploads} == {"UNSIGNED-PAYLOAD"}
    assert not [h for p in uploads for h in p.headers if h.startswith("x-amz-checksum")], "no CRC either"
    proxy.seen.clear()
    signed = store_via(proxy, s3_endpoint, test_prefix + "signed/", payload_signing=True)
    signed.put_bytes(b"signed body")
    (put,) = proxy.requests("PUT")
    assert put.headers["x-amz-content-sha256"] == hashlib.sha256(b"signed body").hexdigest()


def test_a_failed_upload_part_is_retried(
    proxy: S3Proxy, s3_endpoint: S3Endpoint, test_prefix: str, tmp_path: Path
) -> None:
    data = os.urandom(3 * PART)
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    proxy.faults.append(Fault(lambda s: s.method == "PUT" and s.query.get("partNumber") == ["2"], status=500))
    store = store_via(proxy, s3_endpoint, test_prefix)
    blob = store.put_file(source)
    assert len(proxy.requests("PUT", partNumber="2")) == 2, "part 2 was sent again"
    assert store.get_file(blob.digest, tmp_path / "out") == blob
    assert (tmp_path / "out").read_bytes() == data


def test_a_download_cut_halfway_is_retried_from_the_parts_start(
    proxy: S3Proxy, s3_endpoint: S3Endpoint, test_prefix: str, tmp_path: Path
) -> None:
    data = os.urandom(3 * PART + 1)
    store = store_via(proxy, s3_endpoint, test_prefix)
    blob = store.put_bytes(data)
    second = f"bytes={PART}-{2 * PART - 1}"
    proxy.faults.append(Fault(lambda s: s.headers.get("range") == second, cut_after=PART // 2))
    assert store.get_file(blob.digest, tmp_path / "out") == blob
    assert (tmp_path / "out").read_bytes() == data
    assert [s.headers["range"] for s in proxy.requests("GET")].count(second) == 2


def test_a_part_that_keeps_failing_fails_the_download_and_leaves_nothing(
    proxy: S3Proxy, s3_endpoint: S3Endpoint, test_prefix: str, tmp_path: Path
) -> None:
    store = store_via(proxy, s3_endpoint, test_prefix)
    blob = store.put_bytes(os.urandom(2 * PART))
    last = f"bytes={PART}-{2 * PART - 1}"
    proxy.faults.append(Fault(lambda s: s.headers.get("range") == last, times=100, cut_after=1000))
    out = tmp_path / "out" / "blob"
    out.parent.mkdir()
    with pytest.raises(StoreUnavailable):
        store.get_file(blob.digest, out)
    assert leftovers(out.parent) == [], "neither the file nor its temporary"


def test_a_multipart_blob_with_other_bytes_of_its_size_is_refused(
    proxy: S3Proxy, s3_endpoint: S3Endpoint, test_prefix: str, tmp_path: Path
) -> None:
    data = os.urandom(2 * PART + 3)
    store = store_via(proxy, s3_endpoint, test_prefix)
    blob = store.put_bytes(data)
    damaged = bytearray(data)
    damaged[PART + 1] ^= 0xFF  # one bit, in the second part
    s3_endpoint.client().put_object(
        Bucket=s3_endpoint.bucket, Key=test_prefix + object_key(blob.digest), Body=bytes(damaged)
    )
    out = tmp_path / "out" / "blob"
    out.parent.mkdir()
    out.write_bytes(b"what was there before")
    with pytest.raises(CorruptArtifact, match="hash to"):
        store.get_file(blob.digest, out)
    assert out.read_bytes() == b"what was there before" and leftovers(out.parent) == ["blob"]
    assert store.get_file(blob.digest, out, verify=False).size == len(data)
    assert out.read_bytes() == bytes(damaged), "ODIN_ARTIFACTS_VERIFY=false takes the bytes as they are"
