"""How fast does Odin notice a push? Poll-tick and new-commit timings of `odin.controller.git.Mirror`.

Targets (docs/git-sync.md): on a repository with 10,000 commits and 500 pipelines, a poll tick that finds nothing
new takes <= 20 ms, and after a push, fetch + commits_between + changed_pipelines take <= 200 ms together.

The remote is built with pygit2 object writes (no index, no work tree) and packed like a real server's, then cached
under /tmp keyed by its parameters, so only the first run pays for it. Each run fetches it into a fresh cache.

    .venv/bin/python benchmarks/bench_git_poll.py [--commits 10000] [--pipelines 500] [--ticks 200] [--pushes 20]
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pygit2
from pygit2.enums import FetchPrune, FileMode

from odin.controller.git import Mirror

SIG_EPOCH = 1_700_000_000
LAYOUT_VERSION = 3  # bump when the generated layout changes, to invalidate cached remotes


def _sig(t: int) -> pygit2.Signature:
    return pygit2.Signature("Bench", "bench@odin.invalid", t, 0)


class RemoteBuilder:
    """A bare repository with `pipelines` pipeline dirs under pipelines/ and a linear history of `commits`."""

    def __init__(self, path: Path, pipelines: int) -> None:
        self.repo = pygit2.init_repository(str(path), bare=True, initial_head="main")
        self.names = [f"p{i:04d}" for i in range(pipelines)]
        self.clock = SIG_EPOCH
        self.step = 0

    def initial_tree(self) -> pygit2.Oid:
        repo = self.repo
        pipelines = repo.TreeBuilder()
        for name in self.names:
            src = repo.TreeBuilder()
            src.insert("train.py", repo.create_blob(f"# {name}\nprint('train')\n".encode()), FileMode.BLOB)
            src.insert("run.sh", repo.create_blob(b"#!/bin/sh\nexec python train.py\n"), FileMode.BLOB_EXECUTABLE)
            pipeline = repo.TreeBuilder()
            pipeline.insert("main.yml", repo.create_blob(f"name: {name}\nsteps: []\n".encode()), FileMode.BLOB)
            pipeline.insert("params.yaml", repo.create_blob(b"lr: 0.1\n"), FileMode.BLOB)
            pipeline.insert("src", src.write(), FileMode.TREE)
            pipelines.insert(name, pipeline.write(), FileMode.TREE)
        root = repo.TreeBuilder()
        root.insert("README.md", repo.create_blob(b"# bench\n"), FileMode.BLOB)
        root.insert("pipelines", pipelines.write(), FileMode.TREE)
        return root.write()

    def next_tree(self, parent_tree: pygit2.Tree) -> pygit2.Oid:
        """Change one file in one pipeline (pseudo-randomly spread), touching three trees."""
        repo = self.repo
        self.step += 1
        name = self.names[(self.step * 7919) % len(self.names)]
        pipelines_tree = parent_tree["pipelines"]
        assert isinstance(pipelines_tree, pygit2.Tree)
        old_pipeline = pipelines_tree[name]
        assert isinstance(old_pipeline, pygit2.Tree)
        pipeline = repo.TreeBuilder(old_pipeline)
        pipeline.insert("params.yaml", repo.create_blob(f"lr: 0.1\nstep: {self.step}\n".encode()), FileMode.BLOB)
        pipelines = repo.TreeBuilder(pipelines_tree)
        pipelines.insert(name, pipeline.write(), FileMode.TREE)
        root = repo.TreeBuilder(parent_tree)
        root.insert("pipelines", pipelines.write(), FileMode.TREE)
        return root.write()

    def commit(self, tree: pygit2.Oid, parents: list[pygit2.Oid], message: str) -> pygit2.Oid:
        self.clock += 1
        return self.repo.create_commit(None, _sig(self.clock), _sig(self.clock), message, tree, parents)

    def build(self, commits: int) -> pygit2.Oid:
        tree = self.initial_tree()
        tip = self.commit(tree, [], "initial layout")
        for i in range(1, commits):
            tree = self.next_tree(self.repo[tree].peel(pygit2.Tree))
            tip = self.commit(tree, [tip], f"change {i}")
        self.repo.references.create("refs/heads/main", tip, force=True)
        return tip

    def push_one(self) -> str:
        """Simulate a push: one new commit on main, written straight into the remote."""
        tip = self.repo.references["refs/heads/main"].target
        assert isinstance(tip, pygit2.Oid)
        commit = self.repo[tip].peel(pygit2.Commit)
        new = self.commit(self.next_tree(commit.tree), [tip], "pushed change")
        self.repo.references["refs/heads/main"].set_target(new)
        return str(new)


def pack_and_prune_loose(repo: pygit2.Repository) -> None:
    repo.pack(n_threads=0)
    objects = Path(repo.path) / "objects"
    for loose in objects.iterdir():
        if len(loose.name) == 2:
            shutil.rmtree(loose)


def build_or_load(commits: int, pipelines: int, rebuild: bool) -> Path:
    key = hashlib.sha256(f"{LAYOUT_VERSION}:{commits}:{pipelines}".encode()).hexdigest()[:12]
    root = Path(tempfile.gettempdir()) / f"odin-bench-git-{commits}c-{pipelines}p-{key}"
    done = root / "complete"
    if rebuild and root.exists():
        shutil.rmtree(root)
    if not done.exists():
        if root.exists():
            shutil.rmtree(root)
        started = time.perf_counter()
        builder = RemoteBuilder(root / "remote.git", pipelines)
        builder.build(commits)
        pack_and_prune_loose(builder.repo)
        done.write_text("ok\n")
        print(f"built remote ({commits} commits, {pipelines} pipelines) in {time.perf_counter() - started:.1f} s")
    else:
        print(f"using cached remote {root}")
    return root / "remote.git"


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--pipelines", type=int, default=500)
    parser.add_argument("--ticks", type=int, default=200, help="no-change poll ticks to time")
    parser.add_argument("--pushes", type=int, default=20, help="single-commit pushes to time")
    parser.add_argument("--url-form", choices=["path", "file"], default="file")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached remote")
    args = parser.parse_args()

    pristine = build_or_load(args.commits, args.pipelines, args.rebuild)
    with tempfile.TemporaryDirectory(prefix="odin-bench-") as scratch:
        # The run pushes commits: work on a copy so that the cached remote stays as built.
        remote_path = Path(scratch) / "remote.git"
        shutil.copytree(pristine, remote_path)
        url = remote_path.as_uri() if args.url_form == "file" else str(remote_path)
        mirror = Mirror(url, Path(scratch) / "cache")
        initial_ms = timed(mirror.fetch)
        print(f"initial fetch (full clone into an empty cache): {initial_ms:.0f} ms")
        tip = mirror.tip()
        assert tip is not None
        list_ms = timed(lambda: mirror.list_pipelines(tip))
        print(f"list_pipelines (first time, {len(mirror.list_pipelines(tip))} pipelines): {list_ms:.1f} ms")

        for _ in range(5):  # warm-up
            mirror.fetch()
        ticks = [timed(mirror.fetch) for _ in range(args.ticks)]
        print(
            f"no-change tick (ls-remote + compare), {args.ticks} ticks: "
            f"median {statistics.median(ticks):.2f} ms, p95 {p95(ticks):.2f} ms, max {max(ticks):.2f} ms"
        )

        # For comparison: what a plain fetch of the same refspecs costs when nothing changed (no ls-remote probe).
        repo = pygit2.Repository(str(mirror.path))
        refspecs = ["+refs/heads/main:refs/remotes/origin/main", "+refs/tags/*:refs/tags/*"]

        def raw_fetch() -> None:
            repo.remotes.create_anonymous(url).fetch(refspecs, prune=FetchPrune.NO_PRUNE)

        raw = [timed(raw_fetch) for _ in range(min(args.ticks, 50))]
        print(
            f"  for comparison, a plain no-change fetch: median {statistics.median(raw):.2f} ms, p95 {p95(raw):.2f} ms"
        )

        writer = RemoteBuilder.__new__(RemoteBuilder)
        writer.repo = pygit2.Repository(str(remote_path))
        writer.names = [f"p{i:04d}" for i in range(args.pipelines)]
        writer.clock = SIG_EPOCH + 10 * args.commits
        writer.step = args.commits
        totals: list[float] = []
        parts: dict[str, list[float]] = {"fetch": [], "commits_between": [], "changed_pipelines": []}
        for _ in range(args.pushes):
            pushed = writer.push_one()
            t0 = time.perf_counter()
            result = mirror.fetch()
            t1 = time.perf_counter()
            commits = mirror.commits_between(result.previous_tip, result.tip)
            t2 = time.perf_counter()
            changes = mirror.changed_pipelines(result.previous_tip, result.tip)
            t3 = time.perf_counter()
            assert result.changed and result.tip == pushed and len(commits) == 1 and len(changes.changed) == 1
            parts["fetch"].append((t1 - t0) * 1000)
            parts["commits_between"].append((t2 - t1) * 1000)
            parts["changed_pipelines"].append((t3 - t2) * 1000)
            totals.append((t3 - t0) * 1000)
        breakdown = ", ".join(f"{name} {statistics.median(v):.2f}" for name, v in parts.items())
        print(
            f"new-commit detect (fetch + commits_between + changed_pipelines), {args.pushes} pushes: "
            f"median {statistics.median(totals):.1f} ms, max {max(totals):.1f} ms ({breakdown} ms medians)"
        )

        # A push of ten commits at once.
        before = mirror.tip()
        for _ in range(10):
            writer.push_one()
        t0 = time.perf_counter()
        result = mirror.fetch()
        commits = mirror.commits_between(before, result.tip)
        changes = mirror.changed_pipelines(before, result.tip)
        multi_ms = (time.perf_counter() - t0) * 1000
        assert len(commits) == 10
        print(f"10-commit push detect: {multi_ms:.1f} ms ({len(changes.changed)} pipelines changed)")


if __name__ == "__main__":
    main()
