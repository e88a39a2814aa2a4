"""Many repositories, many branches (issue 13, Speed): the CPU one poll cycle with no change costs.

Target: 500 repositories followed by one controller, 5 branches each (`main` plus `release/*` matches): a poll
cycle that finds nothing new takes <= 2 s of CPU in total. A cycle is what the pollers do between them: per
repository, a sync of its own branch (one round trip to the remote, nothing downloaded), the listing of the remote's
branches its patterns need (`Mirror.remote_branches`), and a sync of each further branch. The remotes are local
bare repositories (libgit2's local transport: no network, so the figure is Odin's own work plus libgit2's), the store
SQLite. Pollers are not started: the same syncs run in one thread, so `time.process_time` sees all of the work.

    .venv/bin/python benchmarks/bench_repos.py [--repos 500] [--branches 5] [--cycles 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from odin.controller.git.mirror import Mirror
from odin.controller.repo_specs import matches_branch
from odin.controller.store.db import create_db_engine, migrate
from odin.controller.store.repositories import follow_repository
from odin.controller.sync import RepoSync

PATTERNS = ("main", "release/*")


def make_remote(path: Path, branches: int) -> None:
    """A bare repository with one pipeline and `branches` branches (main, release/1...) at one commit."""
    repo = pygit2.init_repository(str(path), bare=True, initial_head="main")
    pipeline = repo.TreeBuilder()
    pipeline.insert("main.yml", repo.create_blob(b"name: p\ntasks:\n  - {name: t, image: x, command: [true]}\n"),
                    FileMode.BLOB)  # fmt: skip
    root = repo.TreeBuilder()
    root.insert("p", pipeline.write(), FileMode.TREE)
    sig = pygit2.Signature("Bench", "bench@odin.invalid", 1_700_000_000, 0)
    commit = repo.create_commit("refs/heads/main", sig, sig, "seed", root.write(), [])
    for i in range(1, branches):
        repo.references.create(f"refs/heads/release/{i}", commit)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=int, default=500)
    parser.add_argument("--branches", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="odin-bench-repos-") as tmp_dir:
        tmp = Path(tmp_dir)
        db = create_db_engine(f"sqlite:///{tmp / 'odin.db'}")
        migrate(db)
        started = time.perf_counter()
        followed: list[tuple[Mirror, dict[str, RepoSync]]] = []
        for n in range(args.repos):
            remote = tmp / "remotes" / f"r{n:04d}.git"
            make_remote(remote, args.branches)
            repo_id = follow_repository(db, f"r{n:04d}", url=str(remote), branch="main").repo_id
            mirror = Mirror(str(remote), tmp / "cache", branch="main")
            syncs = {"main": RepoSync(db, repo_id, mirror, branch="main", trees_dir=tmp / "trees")}
            for branch in mirror.remote_branches():
                if branch != "main" and matches_branch(PATTERNS, branch):
                    further = Mirror(str(remote), tmp / "cache", branch=branch)
                    syncs[branch] = RepoSync(db, repo_id, further, branch=branch, trees_dir=tmp / "trees", further=True)
            followed.append((mirror, syncs))
        for _mirror, syncs in followed:  # first sight: each branch's baseline
            for sync in syncs.values():
                sync.sync()
        print(f"set up {args.repos} repositories x {args.branches} branches in {time.perf_counter() - started:.1f} s")

        for cycle in range(1, args.cycles + 1):
            cpu, wall = time.process_time(), time.perf_counter()
            syncs_run = 0
            for mirror, syncs in followed:
                for sync in syncs.values():
                    outcome = sync.sync()
                    assert not outcome.changed and outcome.error is None, outcome
                    syncs_run += 1
                mirror.remote_branches()  # what BranchFollowers.discover asks after the own branch's sync
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            verdict = "ok" if cpu <= 2.0 * args.repos / 500 else "OVER"
            print(f"cycle {cycle}: {syncs_run} syncs + {len(followed)} branch listings, no change: "
                  f"{cpu:.2f} s CPU, {wall:.2f} s wall (target <= 2 s CPU for 500 x 5: {verdict})")  # fmt: skip
        db.dispose()


if __name__ == "__main__":
    main()
