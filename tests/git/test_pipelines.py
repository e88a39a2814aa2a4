"""Which directories are pipelines, and which of them a range of commits changed."""

from __future__ import annotations

from odin.controller.git import ChangeSet, Mirror
from tests.support.git import Executable, FileContent, GitRemote, Symlink

LAYOUT: dict[str, FileContent] = {
    "README.md": "# repo",
    "train/main.yml": "steps: []",
    "train/src/model.py": "print(1)",
    "train/src/deep/util.py": "x = 1",
    "evaluate/main.yml": "steps: []",
    "teams/vision/detect/main.yml": "steps: []",
    "teams/vision/detect/params.yaml": "lr: 1",
    "teams/vision/shared.py": "# not a pipeline dir",
    "nested/main.yml": "outer",
    "nested/inner/main.yml": "inner",
    "nested/inner/data.csv": "a,b",
    ".github/workflows/main.yml": "hidden",
    "docs/.hidden/main.yml": "hidden",
    "main.yml": "the root is never a pipeline",
    "linked/main.yml": Symlink("../train/main.yml"),
    "notes/main.yml/readme": "main.yml is a directory here",
}


def fetched(remote: GitRemote, mirror: Mirror, files: dict[str, FileContent], message: str = "change") -> str:
    sha = remote.commit(files, message=message)
    mirror.fetch()
    return sha


def test_list_pipelines(git_remote: GitRemote, mirror: Mirror) -> None:
    sha = fetched(git_remote, mirror, LAYOUT)
    expected = ["evaluate", "nested", "nested/inner", "teams/vision/detect", "train"]
    assert mirror.list_pipelines(sha) == expected
    assert mirror.list_pipelines(sha) == expected  # cached path gives the same


def test_first_sight_reports_every_pipeline(git_remote: GitRemote, mirror: Mirror) -> None:
    sha = fetched(git_remote, mirror, LAYOUT)
    changes = mirror.changed_pipelines(None, sha)
    assert changes.changed == mirror.list_pipelines(sha)
    assert changes.deleted == []
    assert "README.md" in changes.files and "train/src/deep/util.py" in changes.files
    assert changes.files == sorted(changes.files)


def test_nested_file_counts_for_its_pipeline(git_remote: GitRemote, mirror: Mirror) -> None:
    old = fetched(git_remote, mirror, LAYOUT)
    new = fetched(git_remote, mirror, {"train/src/deep/util.py": "x = 2"})
    assert mirror.changed_pipelines(old, new) == ChangeSet(
        changed=["train"], deleted=[], files=["train/src/deep/util.py"]
    )


def test_nearest_pipeline_owns_the_path(git_remote: GitRemote, mirror: Mirror) -> None:
    old = fetched(git_remote, mirror, LAYOUT)
    new = fetched(git_remote, mirror, {"nested/inner/data.csv": "c,d", "nested/other.txt": "o"})
    assert mirror.changed_pipelines(old, new).changed == ["nested", "nested/inner"]


def test_files_outside_pipelines_change_nothing(git_remote: GitRemote, mirror: Mirror) -> None:
    old = fetched(git_remote, mirror, LAYOUT)
    new = fetched(
        git_remote,
        mirror,
        {"README.md": "new", "teams/vision/shared.py": "changed", ".github/workflows/main.yml": "x", "main.yml": "y"},
    )
    changes = mirror.changed_pipelines(old, new)
    assert changes.changed == [] and changes.deleted == [] and changes.is_empty
    assert changes.files == [".github/workflows/main.yml", "README.md", "main.yml", "teams/vision/shared.py"]


def test_new_pipeline_and_new_main_yml(git_remote: GitRemote, mirror: Mirror) -> None:
    old = fetched(git_remote, mirror, {**LAYOUT, "later/params.yaml": "lr: 1"})
    new = fetched(git_remote, mirror, {"brand/new/main.yml": "steps: []", "later/main.yml": "steps: []"})
    assert mirror.changed_pipelines(old, new).changed == ["brand/new", "later"]


def test_deleted_pipeline(git_remote: GitRemote, mirror: Mirror) -> None:
    old = fetched(git_remote, mirror, LAYOUT)
    new = fetched(git_remote, mirror, {"evaluate/main.yml": None, "nested/inner/main.yml": None})
    changes = mirror.changed_pipelines(old, new)
    assert changes.deleted == ["evaluate", "nested/inner"]
    # nested/inner's files now belong to nested, which therefore changed
    assert changes.changed == ["nested"]
    assert "evaluate" not in mirror.list_pipelines(new)


def test_pipeline_whose_main_yml_is_removed_but_files_stay(git_remote: GitRemote, mirror: Mirror) -> None:
    old = fetched(git_remote, mirror, LAYOUT)
    new = fetched(git_remote, mirror, {"train/main.yml": None})
    changes = mirror.changed_pipelines(old, new)
    assert changes.deleted == ["train"] and changes.changed == []


def test_rename_counts_for_both_sides(git_remote: GitRemote, mirror: Mirror) -> None:
    old = fetched(git_remote, mirror, LAYOUT)
    new = fetched(
        git_remote,
        mirror,
        {
            "train/src/model.py": None,
            "evaluate/model.py": "print(1)",  # moved between pipelines (identical content)
            "teams/vision/detect/main.yml": None,
            "teams/vision/detect/params.yaml": None,
            "teams/vision/detector/main.yml": "steps: []",  # pipeline directory renamed
            "teams/vision/detector/params.yaml": "lr: 1",
        },
    )
    changes = mirror.changed_pipelines(old, new)
    assert changes.changed == ["evaluate", "teams/vision/detector", "train"]
    assert changes.deleted == ["teams/vision/detect"]
    assert "train/src/model.py" in changes.files and "evaluate/model.py" in changes.files


def test_executable_bit_change_counts(git_remote: GitRemote, mirror: Mirror) -> None:
    old = fetched(git_remote, mirror, LAYOUT)
    new = fetched(git_remote, mirror, {"train/src/model.py": Executable("print(1)")})
    assert mirror.changed_pipelines(old, new).changed == ["train"]


def test_range_of_several_commits(git_remote: GitRemote, mirror: Mirror) -> None:
    old = fetched(git_remote, mirror, LAYOUT)
    git_remote.commit({"train/a": "1"})
    git_remote.commit({"evaluate/b": "2"})
    git_remote.commit({"train/a": None})  # undone within the range: the net effect on train is nil
    new = fetched(git_remote, mirror, {"README.md": "x"})
    assert mirror.changed_pipelines(old, new).changed == ["evaluate"]


def test_force_push_diffs_from_the_merge_base(git_remote: GitRemote, mirror: Mirror) -> None:
    base = fetched(git_remote, mirror, LAYOUT)
    old = fetched(git_remote, mirror, {"train/a": "discarded"})
    git_remote.reset_hard(base)
    git_remote.commit({"evaluate/b": "kept"}, push=False)
    git_remote.push(force=True)
    new = mirror.fetch().tip

    # `train` only changed on the discarded side: relative to the merge base, only `evaluate` changed.
    assert mirror.changed_pipelines(old, new).changed == ["evaluate"]


def test_unrelated_history_compares_trees(git_remote: GitRemote, mirror: Mirror) -> None:
    old = fetched(git_remote, mirror, LAYOUT)
    new = git_remote.commit({"train/main.yml": "steps: []", "fresh/main.yml": "x"}, parents=[])
    mirror.fetch()
    changes = mirror.changed_pipelines(old, new)
    assert changes.changed == ["fresh", "train"]
    assert "evaluate" in changes.deleted and "train" not in changes.deleted


def test_same_tree_is_empty(git_remote: GitRemote, mirror: Mirror) -> None:
    old = fetched(git_remote, mirror, LAYOUT)
    new = fetched(git_remote, mirror, {"README.md": "# repo"})  # identical content: same tree
    assert mirror.changed_pipelines(old, new) == ChangeSet()
