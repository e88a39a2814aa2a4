"""Large blobs reach a run's files with memory bounded by a chunk, not by the blob; and byte for byte."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pygit2
import pytest

from odin.controller.git._blobs import STREAM_THRESHOLD, CorruptObject, _verified, stream_blob
from odin.controller.git.mirror import Mirror
from tests.support.git import GitRemote

MB = 1_000_000
BLOB = 50 * 1024 * 1024
PIPELINE = "name: big\ntasks:\n  - {name: a, image: busybox, command: [sh, -c, 'true']}\n"

# Run in a fresh interpreter so that its RSS is the copy's and nothing else's: fetch first, then measure the peak
# RSS (sampled on a thread every 2 ms) while the pipeline directory is materialized.
MEASURE = """
import sys, threading, time
from pathlib import Path
import psutil
from odin.controller.git.mirror import Mirror

url, cache, trees = sys.argv[1:4]
mirror = Mirror(url, Path(cache))
mirror.fetch()
process = psutil.Process()
baseline = peak = process.memory_info().rss
done = threading.Event()

def sample():
    global peak
    while not done.is_set():
        peak = max(peak, process.memory_info().rss)
        time.sleep(0.002)

sampler = threading.Thread(target=sample)
sampler.start()
mirror.materialize(mirror.tip(), "big", Path(trees))
done.set()
sampler.join()
print(peak - baseline)
"""


def test_materializing_a_50_mb_blob_grows_rss_by_much_less_than_the_blob(git_remote: GitRemote, tmp_path: Path) -> None:
    content = os.urandom(BLOB)  # incompressible: the pack holds it at full size
    git_remote.commit({"big/main.yml": PIPELINE, "big/weights.bin": content}, "A large file")
    trees = tmp_path / "trees"
    run = subprocess.run(
        [sys.executable, "-c", MEASURE, git_remote.file_url, str(tmp_path / "cache"), str(trees)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    growth = int(run.stdout.split()[-1])
    assert growth < BLOB / 2, f"materializing a {BLOB / MB:.0f} MB blob grew RSS by {growth / MB:.1f} MB"
    [copy] = trees.glob("*/weights.bin")
    assert hashlib.sha256(copy.read_bytes()).digest() == hashlib.sha256(content).digest()


def test_loose_packed_and_delta_blobs_are_copied_byte_for_byte(git_remote: GitRemote, tmp_path: Path) -> None:
    first = os.urandom(3 * STREAM_THRESHOLD)
    second = first[:STREAM_THRESHOLD] + b"changed" + first[STREAM_THRESHOLD + 7 :]  # likely stored as a delta
    git_remote.commit({"big/main.yml": PIPELINE, "big/a.bin": first}, "first")
    sha = git_remote.commit({"big/b.bin": second, "big/tiny.txt": "small\n"}, "second")

    # Loose objects: the working clone wrote them one file each.
    work = pygit2.Repository(str(git_remote.work_path))
    oid = str(work.create_blob(first))
    loose = stream_blob(Path(work.path), oid)
    assert loose is not None and b"".join(loose) == first

    # Packed (whole or as deltas, as the fetch stored them): materialize is exact either way.
    mirror = Mirror(git_remote.file_url, tmp_path / "cache")
    mirror.fetch()
    target = mirror.materialize(sha, "big", tmp_path / "trees")
    assert (target / "a.bin").read_bytes() == first
    assert (target / "b.bin").read_bytes() == second
    assert (target / "tiny.txt").read_bytes() == b"small\n"
    assert not os.access(target / "a.bin", os.W_OK) or os.geteuid() == 0
    assert oct((target / "a.bin").stat().st_mode & 0o777) == oct(0o444)


def test_bytes_that_do_not_hash_to_the_object_id_fail_the_read() -> None:
    content = b"x" * 100
    oid = hashlib.sha1(b"blob 100\0" + content, usedforsecurity=False).hexdigest()
    assert b"".join(_verified(oid, iter([(100, content[:60]), (0, content[60:])]))) == content
    with pytest.raises(CorruptObject):
        b"".join(_verified(oid, iter([(100, content[:60]), (0, b"y" * 40)])))
    with pytest.raises(CorruptObject):
        b"".join(_verified(oid, iter([(100, content[:60])])))  # short


def test_a_symbolic_link_longer_than_any_path_is_a_problem_found_from_its_size(tmp_path: Path) -> None:
    # Written straight into a bare repository: no checkout could create such a link.
    bare = pygit2.init_repository(str(tmp_path / "remote.git"), bare=True, initial_head="main")
    inner = bare.TreeBuilder()
    inner.insert("main.yml", bare.create_blob(PIPELINE.encode()), pygit2.enums.FileMode.BLOB)
    inner.insert("link", bare.create_blob(b"a/" * (3 * STREAM_THRESHOLD)), pygit2.enums.FileMode.LINK)  # 6 MiB
    inner.insert("ok", bare.create_blob(b"main.yml"), pygit2.enums.FileMode.LINK)
    top = bare.TreeBuilder()
    top.insert("big", inner.write(), pygit2.enums.FileMode.TREE)
    who = pygit2.Signature("t", "t@odin.invalid", 1_700_000_000, 0)
    sha = str(bare.create_commit("refs/heads/main", who, who, "a huge link", top.write(), []))
    mirror = Mirror(str(tmp_path / "remote.git"), tmp_path / "cache")
    mirror.fetch()
    [problem] = mirror.check_pipeline_dir(sha, "big")
    assert problem.file == "big/link"
    assert "longer than 4096 bytes" in problem.message
