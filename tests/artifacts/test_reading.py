"""Reading recorded artifacts back (what the download API serves): from the attempt's files on this machine, never
through a symbolic link, and from the artifact store (local directory and a real S3 server) when the files are gone;
directories file by file and as a tar stream."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from odin.controller.artifacts.errors import ArtifactNotFound, UnsafeArtifactPath
from odin.controller.artifacts.reading import ArtifactReader
from odin.controller.artifacts.store import ArtifactStore
from odin.controller.artifacts.tarstream import tar_stream
from odin.controller.artifacts.trees import put_tree


def read(source: Any, start: int = 0, length: int | None = None) -> bytes:
    with source.open_range(start, length) as chunks:
        return b"".join(chunks)


def attempt(root: Path) -> Path:
    """An attempt's ${OUTPUT_PATH} as the local executor lays it out, with a file and a directory."""
    out = root / "outputs" / "run-1" / "train" / "1" / "artifacts"
    (out / "report" / "sub").mkdir(parents=True)
    (out / "model.bin").write_bytes(b"0123456789" * 1000)
    (out / "report" / "a.txt").write_bytes(b"hi\n")
    (out / "report" / "sub" / "b.sh").write_bytes(b"#!/bin/sh\n")
    (out / "report" / "sub" / "b.sh").chmod(0o755)
    return out


def test_local_files_by_range_and_directories(tmp_path: Path) -> None:
    out = attempt(tmp_path)
    reader = ArtifactReader(tmp_path / "outputs")
    model = reader.file({"location": str(out / "model.bin"), "digest": "sha256:x"})
    assert (model.size, model.etag) == (10_000, "sha256:x")
    assert read(model, 5, 7) == b"5678901" and read(model, 9_998) == b"89"
    record = {"location": str(out / "report"), "digest": "sha256:d", "type": "directory"}
    assert [(f.path, f.size, f.executable) for f in reader.listing(record)] == [
        ("a.txt", 3, False),
        ("sub/b.sh", 10, True),
    ]
    member = reader.member(record, "sub/b.sh")
    assert (read(member), member.etag) == (b"#!/bin/sh\n", "sha256:d/sub/b.sh")
    with pytest.raises(ArtifactNotFound):
        reader.member(record, "sub/nope")
    with pytest.raises(UnsafeArtifactPath):
        reader.member(record, "../model.bin")


def test_links_are_never_followed(tmp_path: Path) -> None:
    out = attempt(tmp_path)
    secret = tmp_path / "secret"
    secret.write_text("not yours")
    os.symlink(secret, out / "report" / "leak")
    os.symlink(tmp_path, out / "report" / "up")
    reader = ArtifactReader(tmp_path / "outputs")
    record = {"location": str(out / "report"), "digest": "sha256:d", "type": "directory"}
    assert [f.path for f in reader.listing(record)] == ["a.txt", "sub/b.sh"]
    for path in ("leak", "up/secret"):
        with pytest.raises(UnsafeArtifactPath):
            read(reader.member(record, path))
    # a directory on the way swapped for a link after the task recorded it: refused, not followed
    (out / "report" / "sub" / "b.sh").unlink()
    (out / "report" / "sub").rmdir()
    os.symlink(tmp_path, out / "report" / "sub")
    with pytest.raises(UnsafeArtifactPath):
        reader.member(record, "sub/secret")


def test_a_location_outside_the_outputs_root_is_not_opened(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.bin"
    elsewhere.write_bytes(b"x")
    reader = ArtifactReader(tmp_path / "outputs")
    with pytest.raises(ArtifactNotFound, match="no artifact store"):
        reader.file({"location": str(elsewhere), "digest": "sha256:" + "0" * 64})


def test_from_the_store_when_the_files_are_gone(tmp_path: Path, store: ArtifactStore) -> None:
    out = attempt(tmp_path)
    blob = store.put_file(out / "model.bin")
    tree = put_tree(store, out / "report")
    reader = ArtifactReader(tmp_path / "outputs", lambda: store)
    gone = str(tmp_path / "outputs" / "run-0" / "model.bin")
    model = reader.file({"location": gone, "digest": blob.digest})
    assert (model.size, model.etag, read(model, 10, 5)) == (10_000, blob.digest, b"01234")
    record = {"location": gone, "digest": tree.digest, "type": "directory"}
    assert [(f.path, f.size, f.executable) for f in reader.listing(record)] == [
        ("a.txt", 3, False),
        ("sub/b.sh", 10, True),
    ]
    assert read(reader.member(record, "sub/b.sh"), 3) == b"bin/sh\n"
    with pytest.raises(ArtifactNotFound):
        reader.member(record, "nope")
    with pytest.raises(ArtifactNotFound, match="neither on this machine nor in the artifact store"):
        reader.file({"location": gone, "digest": "sha256:" + "1" * 64})


def test_a_directory_as_a_tar_stream(tmp_path: Path) -> None:
    out = attempt(tmp_path)
    reader = ArtifactReader(tmp_path / "outputs")
    record = {"location": str(out / "report"), "digest": "sha256:d", "type": "directory"}
    files = [(f, reader.member(record, f.path)) for f in reader.listing(record)]
    data = b"".join(tar_stream(files, prefix="report"))
    assert len(data) % 512 == 0
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: (m.mode, tar.extractfile(m).read()) for m in tar.getmembers()}  # type: ignore[union-attr]
    assert members == {"report/a.txt": (0o644, b"hi\n"), "report/sub/b.sh": (0o755, b"#!/bin/sh\n")}
    again = [(f, reader.member(record, f.path)) for f in reader.listing(record)]
    assert b"".join(tar_stream(again, prefix="report")) == data, "the same directory gives the same bytes"
