"""Clean-up by `deletecollection` (issue 15 item 4): a run's objects go in one request per kind once it has ended,
ended attempts of a run still going in one request per batch -- never a retry or a running task, never before the
logs are saved -- and a Role without the verb falls back to a DELETE per object.

The request counts need the fake (it records every request); the outcomes are checked through the API, so the
pods-gone assertions hold on a real cluster too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from odin.controller.executors.kubernetes import names
from odin.controller.executors.kubernetes.api import JOBS, PODS
from odin.controller.executors.kubernetes.deletions import MAX_VALUES, Target, attempt_batches, run_batches
from odin.controller.vocabulary import RunStatus
from odin.testing.kube.environment import KubeEnv
from odin.testing.kube.kubelet import wait_for
from tests.kube.harness import KubeHarness, pipeline, sqlite_harness, task

pytestmark = pytest.mark.kube

BASE = "app.kubernetes.io/managed-by=odin,odin.dev/instance=default"


@pytest.fixture
def h(kube: KubeEnv, tmp_path: Path) -> Iterator[KubeHarness]:
    """On SQLite only: clean-up does not touch the store."""
    yield from sqlite_harness(kube, tmp_path)


# -- the selectors ----------------------------------------------------------------------------------------------------
def test_attempt_batches_never_cross_attempt_numbers() -> None:
    """`task in (a,b),attempt in (1,2)` would match b#2, a retry still running: one request per attempt number."""
    target = Target("ns", PODS, "Background")
    batches = attempt_batches(BASE, {target: [("r1", "a", 1), ("r1", "b", 1), ("r1", "a", 2)]})
    assert [(b.selector, b.keys) for b in batches] == [
        (f"{BASE},odin.dev/run=r1,odin.dev/attempt=1,odin.dev/task in (a,b)", (("r1", "a", 1), ("r1", "b", 1))),
        (f"{BASE},odin.dev/run=r1,odin.dev/attempt=2,odin.dev/task in (a)", (("r1", "a", 2),)),
    ]


def test_long_lists_are_cut_and_label_values_are_the_labels() -> None:
    target = Target("ns", JOBS, "Foreground")
    keys = [("train-1", f"t{i:03}", 1) for i in range(MAX_VALUES + 5)]
    batches = attempt_batches(BASE, {target: keys})
    assert [len(b.keys) for b in batches] == [MAX_VALUES, 5]
    assert sorted(k for b in batches for k in b.keys) == sorted(keys)
    [whole] = run_batches(BASE, {target: ["vision/resnet-1"]})
    assert whole.selector == f"{BASE},odin.dev/run in ({names.label_value('vision/resnet-1')})"
    assert whole.runs == ("vision/resnet-1",)


# -- end to end -------------------------------------------------------------------------------------------------------
def test_a_run_is_cleaned_up_in_one_request_per_kind_after_its_logs_are_saved(kube: KubeEnv, h: KubeHarness) -> None:
    fake = kube.require_fake("counts requests")
    h.start(cleanup_ttl=0.2)
    run_id = h.create(pipeline(*(task(f"t{i}") for i in range(6))))
    pods = h.wait_pods(f"odin.dev/run={run_id}", 6)
    for pod in pods:
        kube.kubelet.succeed(pod)
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    wait_for(lambda: not h.pods(f"odin.dev/run={run_id}"), 20, message="the run's pods were not deleted")
    selector = f"odin.dev/run={run_id}"
    wait_for(lambda: not kube.core.list_namespaced_config_map(kube.namespace, label_selector=selector).items, 20)
    assert fake.requests.count(verb="delete", resource="pods") == 0
    collections = fake.requests.filter(verb="deletecollection", resource="pods")
    assert 1 <= len(collections) <= 2  # the run's, and at most one batch of attempts that fell due before it ended
    assert fake.requests.count(verb="deletecollection", resource="configmaps") == 1
    assert fake.requests.count(verb="delete", resource="configmaps") == 0
    logs = fake.requests.filter(subresource="log")
    assert len(logs) == 6 and max(r.time for r in logs) <= min(r.time for r in collections)
    for i in range(6):
        assert (h.data_dir / "tasks" / run_id / f"t{i}.1.log").exists()
    assert not h.executor.attempts_snapshot()  # nothing left to track or clean


def test_ended_attempts_of_a_running_run_go_in_batches_sparing_retries_and_running_tasks(
    kube: KubeEnv, h: KubeHarness
) -> None:
    fake = kube.require_fake("counts requests")
    h.start(cleanup_ttl=0)
    run_id = h.create(pipeline(task("flaky", retries=1), task("b"), task("c"), task("long")))
    run = f"odin.dev/run={run_id}"
    first = {p.metadata.labels["odin.dev/task"]: p for p in h.wait_pods(run, 4)}
    kube.kubelet.start(first["long"])
    kube.kubelet.fail(first["flaky"], exit_code=1)
    kube.kubelet.succeed(first["b"])
    kube.kubelet.succeed(first["c"])
    retry = h.wait_pod(run_id, "flaky", attempt=2)
    kube.kubelet.start(retry)

    def remaining() -> set[tuple[str, str]]:
        return {(p.metadata.labels["odin.dev/task"], p.metadata.labels["odin.dev/attempt"]) for p in h.pods(run)}

    wait_for(lambda: remaining() == {("flaky", "2"), ("long", "1")}, 20,
             message=lambda: f"ended attempts not cleaned up: {remaining()}")  # fmt: skip
    assert fake.requests.count(verb="delete", resource="pods") == 0
    selectors = [r.query.get("labelSelector", "") for r in fake.requests.filter(verb="deletecollection")]
    assert selectors and all("odin.dev/attempt=" in s for s in selectors)  # per batch, not the whole run yet
    kube.kubelet.succeed(retry)
    kube.kubelet.succeed(first["long"])
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    wait_for(lambda: not h.pods(run), 20, message="the run's last pods were not deleted")
    assert fake.requests.count(verb="delete", resource="pods") == 0


def test_without_the_deletecollection_verb_objects_are_deleted_one_by_one(kube: KubeEnv, h: KubeHarness) -> None:
    fake = kube.require_fake("injects a 403")
    fake.faults.add(403, verb="deletecollection", resource="pods")
    h.start(cleanup_ttl=0)
    run_id = h.create(pipeline(task("a"), task("b")))
    for pod in h.wait_pods(f"odin.dev/run={run_id}", 2):
        kube.kubelet.succeed(pod)
    assert h.wait(run_id) == RunStatus.SUCCEEDED
    wait_for(lambda: not h.pods(f"odin.dev/run={run_id}"), 20, message="the fallback did not delete the pods")
    assert fake.requests.count(verb="deletecollection", resource="pods", status=403) == 1
    assert fake.requests.count(verb="delete", resource="pods") == 2
    assert h.executor.janitor.per_object
