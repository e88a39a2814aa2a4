"""Task caching on Kubernetes (issue 11 item 6): the engine decides a hit before submission, so a cached task of a
second run creates no pod, while its uncached dependent runs as usual. The real engine and store, the Kubernetes
executor, pods moved by the fake kubelet through the API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine as DbEngine

from odin.controller.vocabulary import CACHED, RunStatus
from odin.testing.kube.environment import KubeEnv
from tests.kube.harness import COMMIT, KubeHarness, pipeline, task

pytestmark = pytest.mark.kube


@pytest.fixture
def harness(kube: KubeEnv, db: DbEngine, tmp_path: Path) -> Iterator[KubeHarness]:
    h = KubeHarness(kube, db, tmp_path)
    yield h
    h.stop()


def test_a_cached_task_creates_no_pod_on_a_hit(harness: KubeHarness) -> None:
    kube = harness.kube
    harness.start()
    spec = pipeline(task("prepare", "echo prep", cache=True), task("train", "echo train", depends=("prepare",)))
    first = harness.create(spec)
    kube.kubelet.succeed(harness.wait_pod(first, "prepare"))
    kube.kubelet.succeed(harness.wait_pod(first, "train"))
    assert harness.wait(first) == RunStatus.SUCCEEDED
    key = harness.task_row(first, "prepare").cache_key
    assert key and harness.task_row(first, "train").cache_key is None

    second = harness.create(spec)
    kube.kubelet.succeed(harness.wait_pod(second, "train"))  # started once `prepare` was reused
    assert harness.wait(second) == RunStatus.SUCCEEDED
    prepare = harness.task_row(second, "prepare")
    assert (prepare.status, prepare.reason, prepare.cache_key) == ("succeeded", CACHED, key)
    assert prepare.message == f"cached from run {first} (commit {COMMIT[:12]})"
    assert prepare.resource_name is None  # never submitted
    assert harness.pods(f"odin.dev/run={second},odin.dev/task=prepare") == []
