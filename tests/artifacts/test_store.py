"""The store interface, against both backends: a local directory and a real S3 server (SeaweedFS)."""

from __future__ import annotations

import hashlib
import io
import os
import socket
from pathlib import Path

import pytest

from odin.controller.artifacts import ArtifactNotFound, CorruptArtifact, StoreUnavailable
from odin.controller.artifacts.digest import hash_bytes, object_key
from odin.controller.artifacts.local import LocalStore
from odin.controller.artifacts.s3 import S3Store
from odin.controller.artifacts.store import ArtifactStore
from tests.artifacts.conftest import s3_store
from tests.support.seaweedfs import S3Endpoint


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_put_get_roundtrip_and_digest(store: ArtifactStore, tmp_path: Path) -> None:
    data = b"weights " * 1000
    blob = store.put_file(write(tmp_path / "model.bin", data))
    assert blob.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert blob.size == len(data)
    assert store.exists(blob.digest)
    assert store.stat(blob.digest) == blob
    out = store.get_file(blob.digest, tmp_path / "out.bin")
    assert out == blob
    assert (tmp_path / "out.bin").read_bytes() == data
    assert not list(tmp_path.glob(".out.bin.*")), "no temporary file left behind"


def test_identical_content_is_stored_once(store: ArtifactStore, tmp_path: Path) -> None:
    a = store.put_file(write(tmp_path / "a", b"same bytes"))
    b = store.put_stream(io.BytesIO(b"same bytes"))
    c = store.put_bytes(b"other bytes")
    assert a == b
    assert sorted(x.digest for x in store.list()) == sorted({a.digest, c.digest})


def test_multipart_sized_object_streams_and_ranges(store: ArtifactStore, tmp_path: Path) -> None:
    data = os.urandom(12 * 1024 * 1024 + 123)  # above the fixture's 5 MiB part size: a multipart upload on S3
    blob = store.put_stream(io.BytesIO(data))
    assert blob.size == len(data)
    store.get_file(blob.digest, tmp_path / "big")
    assert hashlib.sha256((tmp_path / "big").read_bytes()).digest() == hashlib.sha256(data).digest()
    with store.open_range(blob.digest, 5 * 1024 * 1024 - 10, 20) as chunks:
        assert b"".join(chunks) == data[5 * 1024 * 1024 - 10 : 5 * 1024 * 1024 + 10]
    with store.open_range(blob.digest, len(data) - 5) as chunks:
        assert b"".join(chunks) == data[-5:]
    with store.open_range(blob.digest) as chunks:
        pieces = list(chunks)
    assert len(pieces) > 1, "streamed in chunks, not one read"
    assert b"".join(pieces) == data


def test_range_edges(store: ArtifactStore) -> None:
    blob = store.put_bytes(b"0123456789")
    with store.open_range(blob.digest, 0, 0) as chunks:
        assert b"".join(chunks) == b""
    with store.open_range(blob.digest, 8, 100) as chunks:
        assert b"".join(chunks) == b"89"
    with store.open_range(blob.digest, 10) as chunks:
        assert b"".join(chunks) == b""
    with pytest.raises(ValueError, match="negative"):
        store.open_range(blob.digest, -1)


def test_missing_blob(store: ArtifactStore, tmp_path: Path) -> None:
    missing = hash_bytes(b"never stored")
    assert store.stat(missing) is None
    assert not store.exists(missing)
    with pytest.raises(ArtifactNotFound):
        store.get_file(missing, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(ArtifactNotFound), store.open_range(missing) as chunks:
        list(chunks)
    store.delete(missing)  # not an error


def test_delete(store: ArtifactStore) -> None:
    blob = store.put_bytes(b"to be deleted")
    keep = store.put_bytes(b"to be kept")
    store.delete(blob.digest)
    assert not store.exists(blob.digest)
    assert [b.digest for b in store.list()] == [keep.digest]


def test_malformed_digest_is_refused(store: ArtifactStore) -> None:
    with pytest.raises(ValueError, match="not a digest"):
        store.stat("sha256:../../etc/passwd")


def test_local_corruption_is_detected(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    blob = store.put_bytes(b"original")
    path = tmp_path / "store" / object_key(blob.digest)
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    with pytest.raises(CorruptArtifact):
        store.get_file(blob.digest, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert store.get_file(blob.digest, tmp_path / "out", verify=False).size == len(b"tampered")


def test_s3_corruption_is_detected(s3_endpoint: S3Endpoint, test_prefix: str, tmp_path: Path) -> None:
    store = s3_store(s3_endpoint, test_prefix)
    blob = store.put_bytes(b"original")
    s3_endpoint.client().put_object(Bucket=s3_endpoint.bucket, Key=test_prefix + object_key(blob.digest), Body=b"bad")
    with pytest.raises(CorruptArtifact):
        store.get_file(blob.digest, tmp_path / "out")


def test_s3_wrong_credentials_are_unavailable_not_missing(s3_endpoint: S3Endpoint, test_prefix: str) -> None:
    store = S3Store(
        bucket=s3_endpoint.bucket,
        prefix=test_prefix,
        endpoint_url=s3_endpoint.url,
        region=s3_endpoint.region,
        access_key_id=s3_endpoint.access_key,
        secret_access_key="wrong-secret",
        addressing_style="path",
    )
    with pytest.raises(StoreUnavailable) as info:
        store.put_bytes(b"x")
    assert "wrong-secret" not in info.value.message


def test_s3_unreachable_is_unavailable(tmp_path: Path) -> None:
    with socket.socket() as held:
        # Bound and never listening: every connection is refused, and no other server can take the port meanwhile.
        held.bind(("127.0.0.1", 0))
        store = S3Store(
            bucket="b",
            endpoint_url=f"http://127.0.0.1:{held.getsockname()[1]}",
            region="us-east-1",
            access_key_id="a",
            secret_access_key="s",
            connect_timeout=1,
        )
        with pytest.raises(StoreUnavailable):
            store.exists(hash_bytes(b"x"))


def test_s3_prefixes_isolate_stores(s3_endpoint: S3Endpoint, test_prefix: str) -> None:
    one = s3_store(s3_endpoint, test_prefix + "one/")
    two = s3_store(s3_endpoint, test_prefix + "two/")
    blob = one.put_bytes(b"only in one")
    assert not two.exists(blob.digest)
    assert [b.digest for b in one.list()] == [blob.digest]
    assert list(two.list()) == []


def test_records_are_named_objects_beside_the_blobs(store: ArtifactStore) -> None:
    assert store.get_record("runs/r1/train/1/outputs.json", 100) is None
    store.put_record("runs/r1/train/1/outputs.json", b'{"a": 1}')
    store.put_record("runs/r1/train/1/outputs.json", b'{"a": 2}')  # replaced, as a retried upload step does
    assert store.get_record("runs/r1/train/1/outputs.json", 100) == b'{"a": 2}'
    with pytest.raises(CorruptArtifact):
        store.get_record("runs/r1/train/1/outputs.json", 3)
    with pytest.raises(ValueError):
        store.put_record("runs/../../escape", b"x")
    assert list(store.list()) == []  # records are not blobs: retention's sweep never sees them


def test_record_folders_are_walked_a_page_at_a_time_and_deleted_by_name(store: ArtifactStore) -> None:
    """What log retention walks: the folders under a records prefix, a page of `limit` at a time from `after`, each
    exactly once whatever the store's order (S3 lists keys, so "p-1.x/" before "p-1/"; SeaweedFS lists names);
    deleting a folder deletes only it (never "p-10" for "p-1", nor a blob or another prefix's records)."""
    names = ["p-1", "p-10", "p-1.x", "p-1-2", "p-2", "q-1"]
    for name in names:
        for i in range(3):
            store.put_record(f"logs/{name}/t.{i}.log", name.encode())
    store.put_record("logs-not/p-1/t.log", b"other prefix")
    store.put_record("runs/p-1/train/1", b"outputs")
    blob = store.put_bytes(b"a model")
    everything = list(store.record_folders("logs"))
    assert sorted(everything) == sorted(names)
    for limit in (1, 2, 4):
        walked: list[str] = []
        while page := list(store.record_folders("logs", after=walked[-1] if walked else "", limit=limit)):
            assert len(page) <= limit
            walked += page
        assert walked == everything, f"pages of {limit}: each folder once, in the store's order"
    assert list(store.record_folders("nothing-here")) == []

    assert store.delete_records("logs/p-1") == 3
    assert store.delete_records("logs/p-1") == 0, "deleting what is gone is not an error"
    assert sorted(store.record_folders("logs")) == sorted(set(names) - {"p-1"})
    assert store.get_record("logs/p-10/t.0.log", 10) == b"p-10"
    assert store.get_record("logs-not/p-1/t.log", 100) == b"other prefix"
    assert store.get_record("runs/p-1/train/1", 100) == b"outputs" and store.exists(blob.digest)
    with pytest.raises(ValueError):
        store.delete_records("logs/../runs")


def test_uri_names_the_blob_where_it_lives(store: ArtifactStore) -> None:
    blob = store.put_bytes(b"model")
    uri = store.uri(blob.digest)
    assert uri.endswith(blob.digest.partition(":")[2])
    assert uri.startswith("s3://") if store.kind == "s3" else Path(uri).read_bytes() == b"model"
