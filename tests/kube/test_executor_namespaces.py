"""Where a run's objects go: a pipeline glob, else the repository's namespace, else the default -- and the files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from odin.controller.executors.kubernetes import KubeOptions
from odin.controller.store.db import transaction
from odin.controller.store.models import REPOSITORIES
from odin.controller.store.runs import NewRun, create_run
from odin.controller.vocabulary import RunStatus, Trigger
from odin.testing.kube.environment import KubeEnv, _create_namespace
from tests.kube.harness import TREE, KubeHarness, pipeline, sqlite_harness, task

pytestmark = pytest.mark.kube


@pytest.fixture
def h(kube: KubeEnv, tmp_path: Path) -> Iterator[KubeHarness]:
    yield from sqlite_harness(kube, tmp_path)


@pytest.fixture
def other_namespace(kube: KubeEnv) -> Iterator[str]:
    name = _create_namespace(kube.api_client)
    yield name
    kube.core.delete_namespace(name, propagation_policy="Background")


def test_namespace_resolution_order() -> None:
    options = KubeOptions(data_dir=Path("/tmp"), namespace="odin-runs",
                          pipeline_namespaces={"nlp/*": "team-nlp", "nlp/llm/*": "never-reached"})  # fmt: skip
    assert options.namespace_for("nlp/llm/finetune", "repo-ns") == "team-nlp"  # first match wins
    assert options.namespace_for("vision/resnet", "repo-ns") == "repo-ns"
    assert options.namespace_for("vision/resnet", None) == "odin-runs"


def test_a_repositorys_namespace_holds_its_runs_objects(kube: KubeEnv, h: KubeHarness, other_namespace: str) -> None:
    with transaction(h.db) as conn:
        repo_id = conn.execute(
            REPOSITORIES.insert()
            .values(name="ml", url="https://git.example.com/ml.git", branch="main", namespace=other_namespace,
                    conditions=[], poll_interval=30.0, run_policy="latest")
            .returning(REPOSITORIES.c.id)
        ).scalar_one()  # fmt: skip
        run_id = create_run(
            conn,
            NewRun(pipeline="p", spec=pipeline(task("t")), trigger=Trigger.WEBHOOK, params={}, repo_id=repo_id,
                   commit_sha="d" * 40, work_path=str(h.work), work_tree=TREE),
        ).run_id  # fmt: skip
    h.start()
    pod: Any = None

    def find() -> Any:
        items = kube.core.list_namespaced_pod(other_namespace, label_selector=f"odin.dev/run={run_id}").items
        return items[0] if items else None

    from odin.testing.kube.kubelet import wait_for

    pod = wait_for(find, 20)
    assert pod.metadata.annotations["odin.dev/repo-url"] == "https://git.example.com/ml.git"
    assert pod.metadata.annotations["odin.dev/trigger"] == "webhook"
    assert kube.core.list_namespaced_config_map(other_namespace, label_selector=f"odin.dev/run={run_id}").items
    kube.kubelet.succeed(pod)  # the kubelet acts through the API, in any namespace the pod names
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    row = h.task_row(run_id, "t")
    assert row.namespace == other_namespace
    with h.db.connect() as conn:
        assert conn.execute(sa.select(REPOSITORIES.c.namespace)).scalar_one() == other_namespace


def test_a_pipeline_directory_too_large_for_configmaps_fails_its_tasks(h: KubeHarness) -> None:
    h.start(work_max_bytes=10)
    run_id = h.create(pipeline(task("a", retries=2), task("b")))
    assert h.wait(run_id) == RunStatus.FAILED
    row = h.task_row(run_id, "a")
    assert (row.reason, row.failure, row.attempt) == ("WorkTreeTooLarge", "permanent", 1)
    assert "ODIN_KUBE_WORK_MAX_BYTES" in row.message
