# ruff: noqa: E501 (the pipeline below is YAML, one shell command a line, as users write them)
"""Artifact retention with real runs in the store (SQLite and Postgres): runs of the local engine whose outputs are
files, and records of artifacts in a content-addressed store (blobs and trees shared between runs)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine as DbEngine

from odin.controller.artifacts.local import LocalStore
from odin.controller.artifacts.retention import RetentionPolicy
from odin.controller.artifacts.trees import put_tree
from odin.controller.reruns import plan_rerun
from odin.controller.retention import RetentionSweeper, sweep_once
from odin.controller.store import retention as rows
from odin.controller.store.db import transaction
from odin.controller.store.models import RUNS, TASK_RUNS
from odin.controller.store.repositories import follow_repository
from odin.controller.store.runs import NewRun, create_run
from odin.controller.vocabulary import RunStatus, Trigger
from odin.schema import load_pipeline
from odin.schema.model import PipelineSpec
from tests.engine.test_engine_local import Harness
from tests.support.wait import wait_until

PRODUCE = """
tasks:
  - name: train
    image: busybox
    command: [sh, -c, 'printf "%s" "$ODIN_RUN" > "$OUTPUT_PATH/model"']
    outputs:
      artifacts: [model]
"""


def pipeline(yaml: str) -> PipelineSpec:
    result = load_pipeline(yaml.encode(), file="main.yml", default_name="p")
    assert result.spec is not None, [str(p) for p in result.problems]
    return result.spec


@pytest.fixture
def harness(db: DbEngine, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(db, tmp_path / "data")
    yield h
    h.close()


def artifacts_of(db: DbEngine, run_id: str) -> dict[str, Any]:
    with db.connect() as conn:
        return dict(conn.execute(sa.select(TASK_RUNS.c.artifacts).where(TASK_RUNS.c.run_id == run_id)).scalar_one())


def expired_at(db: DbEngine, run_id: str) -> datetime | None:
    with db.connect() as conn:
        value: datetime | None = conn.execute(
            sa.select(RUNS.c.artifacts_expired_at).where(RUNS.c.id == run_id)
        ).scalar_one()
        return value


def test_local_runs_beyond_the_last_n_lose_their_files_unless_a_kept_run_references_them(harness: Harness) -> None:
    engine = harness.start()
    runs = []
    for _ in range(4):
        run_id = harness.create(pipeline(PRODUCE))
        assert engine.wait(run_id, 30) == RunStatus.SUCCEEDED
        runs.append(run_id)
    oldest, reused, previous, newest = runs
    files = {r: Path(artifacts_of(harness.db, r)["model"]["location"]) for r in runs}
    assert all(f.read_text() == r for r, f in files.items())
    # The newest run took `train` from an older one (a rerun reusing it, a cache hit): it carries that run's record.
    with transaction(harness.db) as conn:
        conn.execute(
            TASK_RUNS.update().where(TASK_RUNS.c.run_id == newest).values(artifacts=artifacts_of(harness.db, reused))
        )

    report = sweep_once(harness.db, None, RetentionPolicy(keep_runs=2), outputs_dir=harness.data_dir / "outputs")

    assert sorted(report.expired_runs) == sorted([oldest, reused])
    assert not files[oldest].exists()  # expired, referenced by no kept run
    assert files[reused].read_text() == reused  # expired, but the newest (kept) run references it
    assert files[previous].exists() and files[newest].exists()
    assert artifacts_of(harness.db, oldest)["model"]["gone"] is True
    assert artifacts_of(harness.db, reused)["model"]["gone"] is True  # the run's own record says so
    assert "gone" not in artifacts_of(harness.db, newest)["model"]
    assert expired_at(harness.db, oldest) is not None and expired_at(harness.db, previous) is None
    # A second sweep finds nothing more to do.
    assert sweep_once(harness.db, None, RetentionPolicy(keep_runs=2), outputs_dir=harness.data_dir / "outputs") == (
        type(report)((), 0)
    )


def test_store_blobs_and_tree_files_go_only_when_no_kept_run_references_them(db: DbEngine, tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    repo_id = follow_repository(db, "ml", url="https://git.example.com/ml.git", branch="main").repo_id
    rows.set_policy(db, repo_id, keep_runs=None, keep_days=7)
    shared = store.put_bytes(b"tokenizer")
    old_only = store.put_bytes(b"old weights")
    (tmp_path / "old" / "sub").mkdir(parents=True)
    (tmp_path / "old" / "vocab").write_bytes(b"tokenizer")  # same bytes as a blob the new run keeps
    (tmp_path / "old" / "sub" / "w").write_bytes(b"only in the old tree")
    old_tree = put_tree(store, tmp_path / "old")

    def record(digest: str, *, tree: bool = False) -> dict[str, Any]:
        return {"path": "x", "location": store.uri(digest).replace(str(store.root), "s3://b/odin"), "type": "file",
                "size": 1, "digest": digest, **({"tree": True, "type": "directory"} if tree else {})}  # fmt: skip

    now = datetime.now(UTC)
    old = make_run(db, repo_id, "old", now - timedelta(days=30), {"model": record(old_only.digest),
                                                                   "ckpt": record(old_tree.digest, tree=True)})  # fmt: skip
    new = make_run(db, repo_id, "new", now - timedelta(days=1), {"vocab": record(shared.digest)})
    running = make_run(db, repo_id, "running", now - timedelta(days=60), {"m": record(old_only.digest)}, "running")

    report = sweep_once(db, store, RetentionPolicy(), now=now)

    assert report.expired_runs == (old,)
    assert store.exists(old_only.digest)  # an unfinished run references it: kept, however old
    assert not store.exists(old_tree.digest)  # the tree manifest, referenced only by the expired run
    tree_files = {e.digest for e in old_tree.entries}
    assert store.exists(shared.digest) and shared.digest in tree_files  # shared with the kept run's blob
    assert [d for d in tree_files - {shared.digest} if store.exists(d)] == []
    assert expired_at(db, new) is None and expired_at(db, running) is None


def make_run(
    db: DbEngine, repo_id: int, name: str, created: datetime, artifacts: dict[str, Any], status: str = "succeeded"
) -> str:
    run_id = f"{name}-{repo_id}"
    with transaction(db) as conn:
        conn.execute(
            RUNS.insert().values(
                id=run_id, repo_id=repo_id, pipeline="train", trigger="manual", params={}, spec={}, status=status,
                created_at=created, absorbed_commits=[], conditions=[],
            )
        )  # fmt: skip
        conn.execute(TASK_RUNS.insert().values(run_id=run_id, name="train", status="succeeded", artifacts=artifacts))
    return run_id


def test_the_sweeper_runs_periodically_and_survives_a_failing_store(harness: Harness) -> None:
    engine = harness.start()
    first = harness.create(pipeline(PRODUCE))
    assert engine.wait(first, 30) == RunStatus.SUCCEEDED
    second = harness.create(pipeline(PRODUCE))
    assert engine.wait(second, 30) == RunStatus.SUCCEEDED
    opened: list[int] = []

    def store() -> None:
        opened.append(1)
        if len(opened) == 1:
            raise OSError("the store is down")

    sweeper = RetentionSweeper(
        harness.db, store, RetentionPolicy(keep_runs=1), interval=0.05, outputs_dir=harness.data_dir / "outputs"
    )
    sweeper.start()
    try:
        wait_until(lambda: expired_at(harness.db, first) is not None, timeout=10)
    finally:
        sweeper.stop()
    assert len(opened) >= 2 and expired_at(harness.db, second) is None


def test_a_rerun_reusing_a_task_whose_artifacts_are_gone_says_so(harness: Harness) -> None:
    engine = harness.start()
    spec = pipeline("""
tasks:
  - name: train
    image: busybox
    command: [sh, -c, 'printf w > "$OUTPUT_PATH/model"']
    outputs: {artifacts: [model]}
  - name: use
    image: busybox
    command: [sh, -c, 'cat ${tasks.train.artifacts.model}; exit 1']
    depends: train
""")
    parent = harness.create(spec)
    assert engine.wait(parent, 30) == RunStatus.FAILED
    sweep_once(harness.db, None, RetentionPolicy(keep_runs=0), outputs_dir=harness.data_dir / "outputs")
    parent_rows = {n: dict(r._mapping) for n, r in harness.tasks(parent).items()}
    assert parent_rows["train"]["artifacts"]["model"]["gone"] is True
    plan = plan_rerun(spec, parent, parent_rows, failed_only=True)
    new = NewRun(
        pipeline="p", spec=spec, trigger=Trigger.RERUN, params={}, work_path=str(harness.work), commit_sha="a" * 40,
        parent_run=parent, run_path_id=parent, initial_tasks=plan.initial_tasks,
    )  # fmt: skip
    with transaction(harness.db) as conn:
        rerun = create_run(conn, new).run_id
    engine.submit(rerun)
    assert engine.wait(rerun, 30) == RunStatus.FAILED
    use = harness.tasks(rerun)["use"]
    assert (use.reason, use.failure) == ("UnresolvedReference", "permanent")
    assert "deleted by artifact retention" in use.message


def store_record(store: LocalStore, digest: str, *, tree: bool = False) -> dict[str, Any]:
    return {"path": "x", "location": store.uri(digest).replace(str(store.root), "s3://b/odin"), "type": "file",
            "size": 1, "digest": digest, **({"tree": True, "type": "directory"} if tree else {})}  # fmt: skip


def test_a_blob_a_kept_run_of_another_repository_references_is_never_deleted(db: DbEngine, tmp_path: Path) -> None:
    """Blobs are shared by content across the whole store, so one repository's expired run may hold the very bytes
    another repository keeps: its policy may let go of the run, never of what another repository's run holds."""
    store = LocalStore(tmp_path / "store")
    expiring = follow_repository(db, "a", url="https://git.example.com/a.git", branch="main").repo_id
    keeps_all = follow_repository(db, "b", url="https://git.example.com/b.git", branch="main").repo_id
    keeps_last = follow_repository(db, "c", url="https://git.example.com/c.git", branch="main").repo_id
    rows.set_policy(db, expiring, keep_runs=None, keep_days=7)
    rows.set_policy(db, keeps_last, keep_runs=1, keep_days=None)  # keeps its one run, and sweeps
    in_b = store.put_bytes(b"the same model in a and b")
    in_c = store.put_bytes(b"the same tokenizer in a and c")
    only_a = store.put_bytes(b"only a's old weights")
    now = datetime.now(UTC)
    old = make_run(db, expiring, "old", now - timedelta(days=30), {
        "m": store_record(store, in_b.digest), "t": store_record(store, in_c.digest), "w": store_record(store, only_a.digest),
    })  # fmt: skip
    make_run(db, keeps_all, "b-run", now - timedelta(days=400), {"m": store_record(store, in_b.digest)})
    make_run(db, keeps_last, "c-run", now - timedelta(days=400), {"t": store_record(store, in_c.digest)})

    report = sweep_once(db, store, RetentionPolicy(), now=now)

    assert report.expired_runs == (old,)
    assert store.exists(in_b.digest)  # a repository whose policy keeps everything holds it
    assert store.exists(in_c.digest)  # another repository's kept run holds it
    assert not store.exists(only_a.digest)  # nothing else does
    assert report.deleted == 1


def test_the_pipeline_directories_stored_for_pods_keep_their_blobs(db: DbEngine, tmp_path: Path) -> None:
    """A pipeline directory over the ConfigMap limit is stored as a tree once per git tree id and downloaded by every
    later pod that runs it: an expired run whose output has the same bytes as one of its files must not take the
    file away (the next pod's `odin-work` step would fail)."""
    from odin.controller.artifacts.settings import ArtifactSettings
    from odin.controller.executors.kubernetes.transfer import LazyStore, WorkTrees

    lazy = LazyStore(ArtifactSettings(backend="local", dir=tmp_path / "store"))
    store = lazy.get()
    assert isinstance(store, LocalStore)
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data" / "vocab.txt").write_bytes(b"a vocabulary the pipeline also writes as an output")
    (work / "main.yml").write_text("tasks: []\n")
    tree_digest = WorkTrees(lazy).digest(work, "f" * 40)
    output = store.put_bytes(b"a vocabulary the pipeline also writes as an output")
    repo_id = follow_repository(db, "ml", url="https://git.example.com/ml.git", branch="main").repo_id
    rows.set_policy(db, repo_id, keep_runs=0, keep_days=None)
    now = datetime.now(UTC)
    make_run(db, repo_id, "old", now - timedelta(days=30), {"vocab": store_record(store, output.digest)})

    report = sweep_once(db, store, RetentionPolicy(), now=now)

    assert len(report.expired_runs) == 1
    assert store.exists(output.digest) and store.exists(tree_digest)
    # A restarted controller finds the stored directory whole and does not store it again.
    assert WorkTrees(LazyStore(lazy.settings)).digest(tmp_path / "elsewhere", "f" * 40) == tree_digest
