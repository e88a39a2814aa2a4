"""What a commit changed, for the console's commit page and run comparison: against its parent, or another commit."""

from __future__ import annotations

from odin.controller.git import Mirror
from odin.controller.git.models import FileChange
from tests.support.git import GitRemote


def test_a_commit_against_its_parent_and_a_root_commit(git_remote: GitRemote, mirror: Mirror) -> None:
    root = git_remote.commit({"p/main.yml": "a: 1\n", "p/notes.txt": "x\n", "old.txt": "o\n" * 50})
    child = git_remote.commit(
        {"p/main.yml": "a: 2\n", "p/notes.txt": None, "q/new.txt": "n\n", "old.txt": None, "moved.txt": "o\n" * 50}
    )
    mirror.fetch()

    first = mirror.files_changed(root)
    assert first.base is None and not first.truncated
    assert [(f.status, f.path) for f in first.files] == [
        ("added", "old.txt"), ("added", "p/main.yml"), ("added", "p/notes.txt"),
    ]  # fmt: skip

    changed = mirror.files_changed(child)
    assert changed.base == root
    assert changed.files == [
        FileChange("renamed", "moved.txt", "old.txt"),
        FileChange("modified", "p/main.yml"),
        FileChange("deleted", "p/notes.txt"),
        FileChange("added", "q/new.txt"),
    ]


def test_between_two_commits_and_a_limit(git_remote: GitRemote, mirror: Mirror) -> None:
    a = git_remote.commit({"p/main.yml": "a: 1\n"})
    git_remote.commit({"p/one.txt": "1\n"})
    b = git_remote.commit({"p/two.txt": "2\n", "p/main.yml": "a: 3\n"})
    mirror.fetch()
    between = mirror.files_changed(b, a)
    assert [(f.status, f.path) for f in between.files] == [
        ("modified", "p/main.yml"), ("added", "p/one.txt"), ("added", "p/two.txt"),
    ]  # fmt: skip
    limited = mirror.files_changed(b, a, limit=2)
    assert len(limited.files) == 2 and limited.truncated
    assert mirror.files_changed(a, a).files == []
