"""Git-backed editing: path rules (the security boundary) and commits pushed to a real remote."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from odin.controller.git import Mirror
from odin.controller.git.edit import Author, EditConflict, NotAPipeline, commit_file, pipeline_file_path
from odin.controller.git.errors import PathEscapes, UnsupportedEntry
from odin.controller.git.models import FetchResult
from tests.support.git import GitRemote, Symlink

ALICE = Author("alice", "alice@example.com")
ODIN = Author("Odin", "odin@localhost")


@pytest.mark.parametrize(
    ("pipeline", "path", "expected"),
    [
        ("train", "run.py", ("train", "train/run.py")),
        ("train/", "conf/a.yaml", ("train", "train/conf/a.yaml")),
        ("vision/detector", "main.yml", ("vision/detector", "vision/detector/main.yml")),
    ],
)
def test_paths_inside_the_pipeline(pipeline: str, path: str, expected: tuple[str, str]) -> None:
    assert pipeline_file_path(pipeline, path) == expected


@pytest.mark.parametrize(
    ("pipeline", "path"),
    [
        ("train", "../other/main.yml"),
        ("train", "a/../../x"),
        ("train", "/etc/passwd"),
        ("train", "a\\..\\b"),
        ("train", "a\0b"),
        ("train", "a\nb"),
        ("train", ".git/config"),
        ("train", "sub/.GIT/hooks/x"),
        ("train", ".git./x"),
        ("train", ""),
        ("train", "."),
        ("train", "./conf/a.yaml"),
        ("train", "conf//a.yaml"),
        ("train", "conf/"),
        ("train", "//etc/passwd"),
        ("..", "x"),
        ("", "x"),
        (".github", "x"),
        ("a/.hidden", "x"),
        ("/abs", "x"),
    ],
)
def test_paths_that_leave_the_pipeline_are_refused(pipeline: str, path: str) -> None:
    with pytest.raises(PathEscapes):
        pipeline_file_path(pipeline, path)


@pytest.fixture
def remote(git_remote: GitRemote) -> GitRemote:
    git_remote.commit(
        {"train/main.yml": "name: t\ntasks: []\n", "train/run.py": "print(1)\n", "train/link": Symlink("../other")},
        message="start",
    )
    return git_remote


def test_a_file_becomes_a_commit_on_the_branch(remote: GitRemote, tmp_path: Path) -> None:
    mirror = Mirror(remote.url, tmp_path / "cache")
    base = remote.remote_tip()
    done = commit_file(
        mirror, pipeline="train", path="conf/lr.yaml", content=b"0.1\n", author=ALICE, committer=ODIN, message="lr"
    )
    assert done.changed and done.base == base and remote.remote_tip() == done.sha
    commit = remote.bare[done.sha].peel(pygit2.Commit)
    assert (commit.author.name, commit.committer.name, commit.message) == ("alice", "Odin", "lr")
    assert remote.bare[done.sha].peel(pygit2.Commit).tree["train/conf/lr.yaml"].data == b"0.1\n"
    again = commit_file(mirror, pipeline="train", path="conf/lr.yaml", content=b"0.1\n", author=ALICE, committer=ODIN)
    assert not again.changed and again.sha == done.sha


def test_the_expected_base_must_be_the_tip(remote: GitRemote, tmp_path: Path) -> None:
    mirror = Mirror(remote.url, tmp_path / "cache")
    old = remote.remote_tip()
    remote.commit({"train/run.py": "print(2)\n"})
    with pytest.raises(EditConflict, match="read the file again"):
        commit_file(
            mirror, pipeline="train", path="run.py", content=b"x", author=ALICE, committer=ODIN, expected_base=old
        )


def test_a_push_the_remote_refuses_as_non_fast_forward_is_a_conflict(
    remote: GitRemote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = Mirror(remote.url, tmp_path / "cache")
    stale = mirror.fetch()
    remote.commit({"train/run.py": "print(3)\n"}, message="someone else")
    monkeypatch.setattr(
        mirror, "fetch", lambda: FetchResult(tip=stale.tip, previous_tip=stale.tip, changed=False, forced=False)
    )
    with pytest.raises(EditConflict, match="moved"):
        commit_file(mirror, pipeline="train", path="run.py", content=b"mine", author=ALICE, committer=ODIN)
    assert remote.files(remote.remote_tip())["train/run.py"] == b"print(3)\n", "nothing was overwritten"


def test_links_files_on_the_way_and_missing_pipelines(remote: GitRemote, tmp_path: Path) -> None:
    mirror = Mirror(remote.url, tmp_path / "cache")
    with pytest.raises(PathEscapes, match="symbolic link"):
        commit_file(mirror, pipeline="train", path="link/x", content=b"x", author=ALICE, committer=ODIN)
    with pytest.raises(PathEscapes, match="symbolic link"):
        commit_file(mirror, pipeline="train", path="link", content=b"x", author=ALICE, committer=ODIN)
    with pytest.raises(UnsupportedEntry, match="not a directory"):
        commit_file(mirror, pipeline="train", path="run.py/x", content=b"x", author=ALICE, committer=ODIN)
    with pytest.raises(NotAPipeline):
        commit_file(mirror, pipeline="other", path="x.py", content=b"x", author=ALICE, committer=ODIN)
    created = commit_file(
        mirror, pipeline="other", path="main.yml", content=b"name: o\ntasks: []\n", author=ALICE, committer=ODIN
    )
    assert created.changed


def test_a_templated_pipeline_is_a_pipeline_to_edit_and_its_template_creates_one(
    remote: GitRemote, tmp_path: Path
) -> None:
    # A directory holding only a main.yml.jinja2 is a pipeline to the controller: its other files are editable,
    # and writing the template is how such a pipeline is created (the API validates it first).
    remote.commit({"sweep/main.yml.jinja2": "tasks: []\n"}, message="template")
    mirror = Mirror(remote.url, tmp_path / "cache")
    helper = commit_file(mirror, pipeline="sweep", path="run.sh", content=b"echo\n", author=ALICE, committer=ODIN)
    assert helper.changed
    created = commit_file(
        mirror, pipeline="fresh", path="main.yml.jinja2", content=b"tasks: []\n", author=ALICE, committer=ODIN
    )
    assert created.changed
    assert remote.bare[created.sha].peel(pygit2.Commit).tree["fresh/main.yml.jinja2"].data == b"tasks: []\n"
    with pytest.raises(NotAPipeline, match=r"main\.yml\.jinja2"):
        commit_file(mirror, pipeline="other", path="main.yml.j2", content=b"x", author=ALICE, committer=ODIN)
