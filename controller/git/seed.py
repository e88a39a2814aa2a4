"""Create a local repository pair (bare "remote" + working clone) seeded from a directory: `odin demo` uses it.

A newcomer gets a real git remote on disk that Odin follows, and a working clone to edit and `git push` from, so
the demo exercises exactly the path a real repository takes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pygit2


@dataclass(frozen=True)
class SeededRepository:
    remote: Path  # bare repository Odin follows
    workspace: Path  # working clone for the user
    head: str


def seed_repository(
    remote: Path,
    workspace: Path,
    source: Path,
    *,
    branch: str = "main",
    message: str = "Seed pipelines from sample-pipelines/",
    author: tuple[str, str] = ("Odin Demo", "demo@odin.invalid"),
) -> SeededRepository:
    """Create `remote` (bare) and `workspace` (clone), copy `source` into the workspace, commit and push.

    Idempotent: if both exist already, nothing is changed and the current head is returned.
    """
    if (remote / "HEAD").exists() and (workspace / ".git").exists():
        repo = pygit2.Repository(str(workspace))
        return SeededRepository(remote, workspace, str(repo.head.target))
    remote.parent.mkdir(parents=True, exist_ok=True)
    pygit2.init_repository(str(remote), bare=True, initial_head=branch)
    repo = pygit2.init_repository(str(workspace), initial_head=branch)
    shutil.copytree(source, workspace, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    repo.index.add_all()
    repo.index.write()
    tree = repo.index.write_tree()
    signature = pygit2.Signature(*author)
    head = repo.create_commit(f"refs/heads/{branch}", signature, signature, message, tree, [])
    origin = repo.remotes.create("origin", str(remote))
    origin.push([f"refs/heads/{branch}:refs/heads/{branch}"])
    repo.config[f"branch.{branch}.remote"] = "origin"
    repo.config[f"branch.{branch}.merge"] = f"refs/heads/{branch}"
    return SeededRepository(remote, workspace, str(head))
