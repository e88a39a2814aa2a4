"""Reading files and pipeline directories out of commit trees, and writing them to disk safely."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest

from odin.controller.git import FileMissing, FileTooLarge, Mirror, PathEscapes, UnsupportedEntry
from tests.support.git import Executable, FileContent, GitRemote, Submodule, Symlink


def test_read_file_from_an_old_commit_after_the_tree_changed(git_remote: GitRemote, mirror: Mirror) -> None:
    old = git_remote.commit({"p/main.yml": "version: 1\n"})
    git_remote.commit({"p/main.yml": "version: 2\n"})
    git_remote.commit({"p/main.yml": None, "q/main.yml": "moved"})
    mirror.fetch()
    # The remote's working clone shows the newest state; the cache reads commit trees.
    assert not (git_remote.work_path / "p" / "main.yml").exists()

    assert mirror.read_file(old, "p/main.yml", max_size=1024) == b"version: 1\n"
    assert mirror.read_file(old, "./p//main.yml", max_size=1024) == b"version: 1\n"


def test_read_file_size_limit(git_remote: GitRemote, mirror: Mirror) -> None:
    sha = git_remote.commit({"p/big.bin": b"x" * 5000})
    mirror.fetch()
    assert mirror.read_file(sha, "p/big.bin", max_size=5000) == b"x" * 5000
    with pytest.raises(FileTooLarge) as err:
        mirror.read_file(sha, "p/big.bin", max_size=4999)
    assert (err.value.size, err.value.limit) == (5000, 4999)
    assert "5000 bytes" in str(err.value)


@pytest.mark.parametrize(
    ("path", "error", "match"),
    [
        ("p/nope.yml", FileMissing, "does not exist"),
        ("nope/deeper/x", FileMissing, "does not exist"),
        ("p", FileMissing, "is a directory"),
        ("p/link", FileMissing, "symbolic link"),
        ("p/sub", FileMissing, "not a regular file"),
        ("", FileMissing, "root"),
        ("/etc/passwd", PathEscapes, "absolute"),
        ("p/../../x", PathEscapes, r"\.\."),
    ],
)
def test_read_file_refusals(
    git_remote: GitRemote, mirror: Mirror, path: str, error: type[Exception], match: str
) -> None:
    empty = git_remote.commit({"unrelated": "x"})
    sha = git_remote.commit({"p/main.yml": "x", "p/link": Symlink("main.yml"), "p/sub": Submodule(empty)})
    mirror.fetch()
    with pytest.raises(error, match=match):
        mirror.read_file(sha, path, max_size=100)


def test_pipeline_tree_id_is_a_content_address(git_remote: GitRemote, mirror: Mirror) -> None:
    first = git_remote.commit({"a/main.yml": "same", "b/main.yml": "same"})
    second = git_remote.commit({"c/other": "unrelated"})
    third = git_remote.commit({"a/main.yml": "different"})
    mirror.fetch()
    assert mirror.pipeline_tree_id(first, "a") == mirror.pipeline_tree_id(first, "b")  # same content, any path
    assert mirror.pipeline_tree_id(first, "a") == mirror.pipeline_tree_id(second, "a")  # unchanged by others
    assert mirror.pipeline_tree_id(first, "a") != mirror.pipeline_tree_id(third, "a")
    assert len(mirror.pipeline_tree_id(first, "a")) == 40
    with pytest.raises(FileMissing):
        mirror.pipeline_tree_id(first, "zzz")
    with pytest.raises(FileMissing, match="not a directory"):
        mirror.pipeline_tree_id(first, "a/main.yml")


PIPELINE: dict[str, FileContent] = {
    "p/main.yml": "steps: []\n",
    "p/run.sh": Executable("#!/bin/sh\necho hi\n"),
    "p/src/model.py": "print('model')\n",
    "p/src/link_to_model": Symlink("model.py"),
    "p/config": Symlink("src"),
    "p/src/up_and_back": Symlink("../main.yml"),
}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_materialize_writes_read_only_files(git_remote: GitRemote, mirror: Mirror, tmp_path: Path) -> None:
    sha = git_remote.commit(PIPELINE)
    mirror.fetch()
    store = tmp_path / "store"

    out = mirror.materialize(sha, "p", store)

    assert out == store / mirror.pipeline_tree_id(sha, "p")
    assert (out / "main.yml").read_bytes() == b"steps: []\n"
    assert (out / "src" / "model.py").read_text() == "print('model')\n"
    assert mode(out / "main.yml") == 0o444
    assert mode(out / "run.sh") == 0o555
    assert mode(out / "src" / "model.py") == 0o444
    assert mode(out) == 0o555 and mode(out / "src") == 0o555
    assert (out / "src" / "link_to_model").is_symlink()
    assert (out / "src" / "link_to_model").read_text() == "print('model')\n"
    assert (out / "config" / "model.py").read_text() == "print('model')\n"
    assert (out / "src" / "up_and_back").read_text() == "steps: []\n"
    assert not any(p.name.startswith(".tmp-") for p in store.iterdir())


def test_materialize_reuses_identical_content(git_remote: GitRemote, mirror: Mirror, tmp_path: Path) -> None:
    first = git_remote.commit(PIPELINE)
    second = git_remote.commit({"elsewhere/main.yml": "x"})
    mirror.fetch()
    store = tmp_path / "store"
    out = mirror.materialize(first, "p", store)
    marker_inode = (out / "main.yml").stat().st_ino

    again = mirror.materialize(second, "p", store)

    assert again == out
    assert (again / "main.yml").stat().st_ino == marker_inode  # not rewritten
    assert [p.name for p in store.iterdir()] == [out.name]


def test_materialize_concurrently(git_remote: GitRemote, mirror: Mirror, tmp_path: Path) -> None:
    sha = git_remote.commit({**PIPELINE, **{f"p/data/{i}.txt": f"{i}\n" * 100 for i in range(50)}})
    mirror.fetch()
    store = tmp_path / "store"
    results: list[Path] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def worker() -> None:
        try:
            start.wait(timeout=30)
            results.append(mirror.materialize(sha, "p", store))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert errors == []
    assert len(set(results)) == 1 and len(results) == 6
    assert [p.name for p in store.iterdir()] == [results[0].name]  # losers cleaned up after themselves
    assert (results[0] / "data" / "49.txt").read_text() == "49\n" * 100


@pytest.mark.parametrize(
    ("link_path", "target"),
    [
        ("p/escape", "../../etc/passwd"),
        ("p/absolute", "/etc/passwd"),
        ("p/sub/dir/up", "../../../x"),
        ("p/dot", "."),  # harmless alone; "p/via_dot" below uses it to climb out
    ],
)
def test_materialize_refuses_escaping_symlinks(
    git_remote: GitRemote, mirror: Mirror, tmp_path: Path, link_path: str, target: str
) -> None:
    files: dict[str, FileContent] = {"p/main.yml": "x", link_path: Symlink(target)}
    if link_path == "p/dot":
        files["p/via_dot"] = Symlink("dot/../secret")  # textually "secret"; on disk "../secret"
    sha = git_remote.commit(files)
    mirror.fetch()
    store = tmp_path / "store"

    with pytest.raises(PathEscapes, match="symbolic link"):
        mirror.materialize(sha, "p", store)
    assert not store.exists() or list(store.iterdir()) == []


def test_materialize_refuses_submodules(git_remote: GitRemote, mirror: Mirror, tmp_path: Path) -> None:
    other = git_remote.commit({"x": "1"})
    sha = git_remote.commit({"p/main.yml": "x", "p/vendor/lib": Submodule(other)})
    mirror.fetch()
    with pytest.raises(UnsupportedEntry, match="submodule"):
        mirror.materialize(sha, "p", tmp_path / "store")


def test_check_pipeline_dir_reports_problems(git_remote: GitRemote, mirror: Mirror) -> None:
    other = git_remote.commit({"x": "1"})
    sha = git_remote.commit(
        {
            "p/main.yml": "x",
            "p/ok_link": Symlink("main.yml"),
            "p/escape": Symlink("../../etc/passwd"),
            "p/abs": Symlink("/etc/passwd"),
            "p/deeper/loop_a": Symlink("loop_b"),
            "p/deeper/loop_b": Symlink("loop_a"),
            "p/vendor/lib": Submodule(other),
            "q/main.yml": "fine",
        }
    )
    mirror.fetch()

    problems = mirror.check_pipeline_dir(sha, "p")

    assert [(p.file, p.line, p.column) for p in problems] == [
        ("p/abs", 1, 1),
        ("p/deeper/loop_a", 1, 1),
        ("p/deeper/loop_b", 1, 1),
        ("p/escape", 1, 1),
        ("p/vendor/lib", 1, 1),
    ]
    messages = {p.file: p.message for p in problems}
    assert "absolute" in messages["p/abs"]
    assert "loop" in messages["p/deeper/loop_a"]
    assert "outside" in messages["p/escape"]
    assert "submodule" in messages["p/vendor/lib"]
    assert mirror.check_pipeline_dir(sha, "q") == []
