"""A whole poll tick, as the controller runs it: `RepoSync.sync()` against a large repository.

Unlike bench_git_poll.py (the git adapter alone), this includes everything after the fetch: reading the changed
pipeline at the commit, validating it, materialising its files, and recording the commit and the run in the store.

Targets (issue: a commit becomes a run): on 10,000 commits and 500 pipelines, a tick with no change <= 20 ms; a new
commit becomes a recorded run <= 200 ms after the tick that sees it.

    .venv/bin/python benchmarks/bench_sync.py [--commits 10000] [--pipelines 500] [--pushes 20]
                                              [--database-url postgresql+psycopg2://postgres@127.0.0.1/bench]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pygit2
import sqlalchemy as sa
from pygit2.enums import FileMode

from odin.controller.git import Mirror
from odin.controller.store.db import create_db_engine, migrate, transaction
from odin.controller.store.repositories import REPOS
from odin.controller.sync import RepoSync

MAIN = """\
name: {name}
params:
  lr: "0.1"
tasks:
  - name: prepare
    image: python:3.12-slim
    command: [python3, prepare.py, --out, "${{RUN_PATH}}/data"]
  - name: train
    image: python:3.12-slim
    command: [python3, train.py, --lr, "${{params.lr}}", --data, "${{RUN_PATH}}/data"]
    depends: prepare
    num_gpus: 1
  - name: evaluate
    image: python:3.12-slim
    command: [python3, evaluate.py]
    depends: train
"""


def build_remote(path: Path, commits: int, pipelines: int) -> None:
    repo = pygit2.init_repository(str(path), bare=True, initial_head="main")
    names = [f"p{i:04d}" for i in range(pipelines)]
    pipes = repo.TreeBuilder()
    subtrees: dict[str, pygit2.Oid] = {}
    for name in names:
        tb = repo.TreeBuilder()
        tb.insert("main.yml", repo.create_blob(MAIN.format(name=name).encode()), FileMode.BLOB)
        tb.insert("train.py", repo.create_blob(f"print('{name}')\n".encode()), FileMode.BLOB)
        subtrees[name] = tb.write()
        pipes.insert(name, subtrees[name], FileMode.TREE)
    parent: list[pygit2.Oid] = []
    pipes_id = pipes.write()
    for i in range(commits):
        name = names[i % pipelines]
        sub = repo.TreeBuilder(repo.get(subtrees[name]))
        sub.insert("train.py", repo.create_blob(f"print('{name} {i}')\n".encode()), FileMode.BLOB)
        subtrees[name] = sub.write()
        pt = repo.TreeBuilder(repo.get(pipes_id))
        pt.insert(name, subtrees[name], FileMode.TREE)
        pipes_id = pt.write()
        root = repo.TreeBuilder()
        root.insert("pipelines", pipes_id, FileMode.TREE)
        sig = pygit2.Signature("Bench", "bench@odin.invalid", 1_700_000_000 + i, 0)
        oid = repo.create_commit(None, sig, sig, f"commit {i}", root.write(), parent)
        parent = [oid]
    repo.references.create("refs/heads/main", parent[0], force=True)


def push_change(path: Path, step: int) -> None:
    """Commit straight into the bare remote (what a push leaves there): one pipeline's file changes."""
    repo = pygit2.Repository(str(path))
    head = repo.revparse_single("refs/heads/main")
    assert isinstance(head, pygit2.Commit)
    pipes = head.tree["pipelines"]
    name = f"p{step % 500:04d}"
    sub = repo.TreeBuilder(repo.get(pipes[name].id))  # type: ignore[index]
    sub.insert("train.py", repo.create_blob(f"print('push {step}')\n".encode()), FileMode.BLOB)
    pt = repo.TreeBuilder(pipes)  # type: ignore[arg-type]
    pt.insert(name, sub.write(), FileMode.TREE)
    root = repo.TreeBuilder()
    root.insert("pipelines", pt.write(), FileMode.TREE)
    sig = pygit2.Signature("Bench", "bench@odin.invalid", 1_800_000_000 + step, 0)
    repo.create_commit("refs/heads/main", sig, sig, f"push {step}", root.write(), [head.id])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--pipelines", type=int, default=500)
    parser.add_argument("--pushes", type=int, default=20)
    parser.add_argument("--ticks", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temp dir")
    args = parser.parse_args()

    cache = Path(tempfile.gettempdir()) / f"odin-bench-sync-{args.commits}-{args.pipelines}.git"
    if not (cache / "HEAD").exists():
        t = time.perf_counter()
        build_remote(cache.with_suffix(".tmp"), args.commits, args.pipelines)
        cache.with_suffix(".tmp").rename(cache)
        print(f"built remote with {args.commits} commits, {args.pipelines} pipelines in {time.perf_counter() - t:.1f}s")
    with tempfile.TemporaryDirectory(prefix="odin-bench-sync-") as tmp:
        remote = Path(tmp) / "remote.git"
        shutil.copytree(cache, remote)
        db = create_db_engine(args.database_url or f"sqlite:///{tmp}/odin.db")
        migrate(db)
        with transaction(db) as conn:
            conn.execute(REPOS.delete().where(REPOS.c.name == "bench"))
            repo_id = int(
                conn.execute(
                    REPOS.insert().values(name="bench", url=str(remote), branch="main", conditions=[])
                    .returning(REPOS.c.id)
                ).scalar_one()
            )  # fmt: skip
        sync = RepoSync(db, repo_id, Mirror(str(remote), Path(tmp) / "cache"), branch="main",
                        trees_dir=Path(tmp) / "trees")  # fmt: skip
        t = time.perf_counter()
        sync.sync()
        first = time.perf_counter() - t

        ticks = []
        for _ in range(args.ticks):
            t = time.perf_counter()
            out = sync.sync()
            ticks.append((time.perf_counter() - t) * 1000)
            assert not out.changed
        detect = []
        for step in range(args.pushes):
            push_change(remote, step)
            t = time.perf_counter()
            out = sync.sync()
            detect.append((time.perf_counter() - t) * 1000)
            assert len(out.runs) == 1, out
        with db.connect() as conn:
            runs = conn.execute(sa.text("SELECT count(*) FROM runs")).scalar()
        db.dispose()

    ticks.sort()
    print(f"repository: {args.commits} commits, {args.pipelines} pipelines; store: {db.dialect.name}")
    print(f"first sync (clone + baseline validation of every pipeline): {first:.2f} s")
    print(f"no-change tick:  median {statistics.median(ticks):.2f} ms, p95 {ticks[int(len(ticks) * 0.95)]:.2f} ms"
          "   (target <= 20 ms)")  # fmt: skip
    print(f"push -> run recorded within the tick: median {statistics.median(detect):.1f} ms, max {max(detect):.1f} ms"
          f"   (target <= 200 ms; {runs} runs created)")  # fmt: skip


if __name__ == "__main__":
    main()
