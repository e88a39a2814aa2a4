"""A new CRD is one subclass and an entry point: the registry finds it, pipelines may name it, the executor runs it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from odin.controller.executors.kubernetes import HandlerRegistry
from odin.controller.vocabulary import RunStatus
from odin.schema import load_pipeline, schemafile
from odin.testing.kube.environment import KubeEnv
from odin.testing.kube.kubelet import wait_for
from tests.kube.harness import KubeHarness, pipeline, task
from tests.kube.plugin_rayjob import RayJobHandler

pytestmark = pytest.mark.kube


def _clear_schema_caches() -> None:
    for cached in (schemafile._schema, schemafile.validator, schemafile.fast_check, schemafile._with_plugins):
        cached.cache_clear()


@pytest.fixture
def rayjob_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A plugin distribution 'installed' the way pip would: a dist-info with an entry point, on sys.path."""
    site = tmp_path / "site"
    dist = site / "odin_rayjob-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: odin-rayjob\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[odin.resource_handlers]\nRayJob = tests.kube.plugin_rayjob:RayJobHandler\n"
    )
    monkeypatch.syspath_prepend(str(site))
    _clear_schema_caches()
    yield
    monkeypatch.undo()
    _clear_schema_caches()


YAML = b"""
tasks:
  - name: tune
    image: rayproject/ray:2.40.0
    command: python tune.py
    resource_type: RayJob
    num_workers: 4
"""


def test_without_the_plugin_the_resource_type_is_refused() -> None:
    result = load_pipeline(YAML, file="main.yml", default_name="p")
    assert [p.message for p in result.problems] == [
        "`resource_type` must be one of Pod, Job, PyTorchJob, TFJob, MPIJob, ElasticJob, TrainJob, not `RayJob` "
        "(did you mean `Job`?)"
    ]


@pytest.mark.usefixtures("rayjob_plugin")
def test_the_plugin_is_found_by_its_entry_point_and_validates() -> None:
    registry = HandlerRegistry.load()
    assert isinstance(registry.get("RayJob"), RayJobHandler)
    assert schemafile.plugin_resource_types() == ("RayJob",)
    result = load_pipeline(YAML, file="main.yml", default_name="p")
    assert result.ok, result.problems
    assert result.spec is not None and result.spec.tasks[0].resource_type == "RayJob"


@pytest.mark.usefixtures("rayjob_plugin")
def test_the_executor_runs_a_plugin_kind(kube: KubeEnv, tmp_path: Path) -> None:
    fake = kube.require_fake("serves the RayJob CRD")
    fake.register_custom_kind("ray.io", "v1", "rayjobs", "RayJob")
    from odin.controller.store.db import create_db_engine, migrate

    db = create_db_engine(f"sqlite:///{tmp_path / 'odin.db'}")
    migrate(db)
    h = KubeHarness(kube, db, tmp_path)
    try:
        h.start()
        run_id = h.create(pipeline(task("tune", resource_type="RayJob", num_workers=4)))
        selector = f"odin.dev/run={run_id}"
        job = wait_for(
            lambda: (kube.custom.list_namespaced_custom_object(
                "ray.io", "v1", kube.namespace, "rayjobs", label_selector=selector)["items"] or [None])[0],
            10,
        )  # fmt: skip
        assert job["spec"]["entrypoint"] == "sh -c true"
        assert job["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["replicas"] == 4
        kube.kubelet.update_custom_status(job, lambda s: {**s, "jobStatus": "RUNNING"})
        h.wait_task(run_id, "tune", "running")
        kube.kubelet.update_custom_status(job, lambda s: {**s, "jobStatus": "SUCCEEDED"})
        assert h.wait(run_id) == RunStatus.SUCCEEDED
        assert h.task_row(run_id, "tune").resource_kind == "RayJob"
    finally:
        h.stop()
        db.dispose()
