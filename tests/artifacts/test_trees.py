"""Directory artifacts as trees of file digests, against both backends."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from odin.controller.artifacts import ArtifactError, CorruptArtifact, UnsafeArtifactPath
from odin.controller.artifacts.store import ArtifactStore
from odin.controller.artifacts.trees import (
    TreeEntry,
    decode_manifest,
    encode_manifest,
    get_tree,
    put_tree,
    read_tree,
    safe_relpath,
)


def make_dir(root: Path) -> Path:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.bin").write_bytes(os.urandom(2048))
    (root / "sub" / "deeper" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "sub" / "deeper" / "run.sh").chmod(0o755)
    (root / "sub" / "copy.txt").write_text("alpha")  # same bytes as a.txt: one blob
    return root


def test_tree_roundtrip(store: ArtifactStore, tmp_path: Path) -> None:
    src = make_dir(tmp_path / "src")
    tree = put_tree(store, src, workers=4)
    assert [e.path for e in tree.entries] == ["a.txt", "sub/b.bin", "sub/copy.txt", "sub/deeper/run.sh"]
    assert tree.size == 5 + 2048 + 5 + len("#!/bin/sh\necho hi\n")
    assert len(tree.digests()) == 4, "manifest + 3 distinct blobs (a.txt and copy.txt share one)"
    got = get_tree(store, tree.digest, tmp_path / "dst")
    assert got == tree
    for entry in tree.entries:
        assert (tmp_path / "dst" / entry.path).read_bytes() == (src / entry.path).read_bytes()
    assert os.access(tmp_path / "dst" / "sub" / "deeper" / "run.sh", os.X_OK)
    assert not os.access(tmp_path / "dst" / "a.txt", os.X_OK)


def test_same_contents_same_digest(store: ArtifactStore, tmp_path: Path) -> None:
    one = put_tree(store, make_dir(tmp_path / "one"))
    two_root = make_dir(tmp_path / "two")
    (two_root / "sub" / "b.bin").write_bytes((tmp_path / "one" / "sub" / "b.bin").read_bytes())
    os.utime(two_root / "a.txt", (0, 0))  # times are not part of a tree
    assert put_tree(store, two_root).digest == one.digest
    (two_root / "a.txt").write_text("changed")
    assert put_tree(store, two_root).digest != one.digest


def test_symlinks_are_refused(store: ArtifactStore, tmp_path: Path) -> None:
    src = make_dir(tmp_path / "src")
    (src / "escape").symlink_to("/etc/passwd")
    with pytest.raises(ArtifactError, match="symbolic links"):
        put_tree(store, src)


@pytest.mark.parametrize("path", ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a\\b", "a\x00b"])
def test_unsafe_paths(path: str) -> None:
    with pytest.raises(UnsafeArtifactPath):
        safe_relpath(path)


def test_manifest_with_escaping_path_is_refused_before_writing(store: ArtifactStore, tmp_path: Path) -> None:
    blob = store.put_bytes(b"payload")
    evil = encode_manifest([TreeEntry("ok.txt", 7, blob.digest), TreeEntry("../outside.txt", 7, blob.digest)])
    manifest = store.put_bytes(evil)
    with pytest.raises(UnsafeArtifactPath):
        get_tree(store, manifest.digest, tmp_path / "dst")
    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "dst" / "ok.txt").exists()


def test_a_file_is_not_a_tree(store: ArtifactStore) -> None:
    blob = store.put_bytes(b'{"not": "a tree"}')
    with pytest.raises(CorruptArtifact, match="not an Odin tree"):
        read_tree(store, blob.digest)
    with pytest.raises(CorruptArtifact):
        decode_manifest(b"\xff not json")


def test_empty_directory(store: ArtifactStore, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    tree = put_tree(store, tmp_path / "empty")
    assert tree.entries == ()
    assert get_tree(store, tree.digest, tmp_path / "out").entries == ()
