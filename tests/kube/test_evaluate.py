"""The pure half of tracking: an attempt's record and the time in, the status decision out -- no API server.

Each case builds the record the watches would have filled (the object, its pods, what was reported before) and asks
`evaluate` what it makes of it; the fake API server tests (test_executor_*.py) cover the I/O around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from odin.controller.executors.kubernetes.attempts import Attempt
from odin.controller.executors.kubernetes.config import KubeOptions
from odin.controller.executors.kubernetes.failures import Deadlines
from odin.controller.executors.kubernetes.handlers.base import ResourceHandler
from odin.controller.executors.kubernetes.handlers.job import JobHandler
from odin.controller.executors.kubernetes.handlers.pod import PodHandler
from odin.controller.executors.kubernetes.tracking import Evaluation, evaluate
from odin.controller.vocabulary import Failure, TaskStatus
from odin.schema.model import TaskSpec

pytestmark = pytest.mark.kube

NOW = 1_000_000.0
KEY = ("run-1", "train", 1)
OPTIONS = KubeOptions(data_dir=Path("/nonexistent"), deadlines=Deadlines(image_pull_grace=60, missing_volume=120))
LOG = "/data/tasks/run-1/train.1.log"


def pod(name: str = "a", phase: str = "Running", *, node: str = "node-1", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "uid": f"uid-{name}"}, "spec": {"nodeName": node},
            "status": {"phase": phase, **status}}  # fmt: skip


def job(*conditions: tuple[str, str]) -> dict[str, Any]:
    conds = [{"type": t, "status": "True", "reason": r, "message": f"{t}: {r}"} for t, r in conditions]
    return {"metadata": {"name": "job"}, "spec": {"backoffLimit": 0}, "status": {"conditions": conds}}


def attempt(
    handler: ResourceHandler | None = None,
    *,
    pods: Sequence[dict[str, Any]] = (),
    **fields: Any,
) -> Attempt:
    handler = handler or PodHandler()
    fields.setdefault("tracked", True)
    record = Attempt(KEY, "ns", "a", handler=handler, created_at=NOW - 10,
                     spec=TaskSpec(name="train", image="busybox", command=("true",)), **fields)  # fmt: skip
    record.pods = {p["metadata"]["name"]: p for p in pods}
    if isinstance(handler, PodHandler) and pods and "obj" not in fields:
        record.obj = pods[0]
    return record


def look(record: Attempt, *, now: float = NOW, seen: float = NOW) -> Evaluation:
    return evaluate(record, now=now, options=OPTIONS, first_seen=lambda _: seen, log_path=LOG)


def test_a_running_pod_is_reported_running_once_with_where_it_runs() -> None:
    first = look(attempt(pods=[pod()]))
    assert first.verdict.status == TaskStatus.RUNNING and not first.ended
    assert first.observation is not None and first.observation.status == TaskStatus.RUNNING
    assert dict(first.observation.resource) == {
        "resource_kind": "Pod", "resource_name": "a", "namespace": "ns", "log_path": LOG, "node": "node-1",
    }  # fmt: skip
    again = look(attempt(pods=[pod()], reported=TaskStatus.RUNNING))
    assert again.observation is None


def test_gpus_are_counted_per_node() -> None:
    record = attempt(JobHandler(), obj=job(), pods=[pod("a"), pod("b"), pod("c", node="node-2")])
    record.spec = TaskSpec(name="train", image="busybox", command=("true",), num_gpus=2)
    observation = look(record).observation
    assert observation is not None and observation.resource["gpus"] == ["node-1:4", "node-2:2"]


def test_a_failed_pod_ends_the_attempt_with_its_exit_code() -> None:
    terminated = {"name": "main", "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}
    result = look(attempt(pods=[pod(phase="Failed", containerStatuses=[terminated])], reported=TaskStatus.RUNNING))
    assert result.ended
    assert result.observation is not None
    assert (result.observation.status, result.observation.exit_code, result.observation.failure) == (
        TaskStatus.FAILED, 3, Failure.USER,
    )  # fmt: skip


def test_a_final_status_is_reported_once() -> None:
    ended = attempt(pods=[pod(phase="Succeeded")], reported=TaskStatus.SUCCEEDED, terminal_at=NOW - 1)
    result = look(ended)
    assert result.verdict.status == TaskStatus.SUCCEEDED
    assert result.observation is None and not result.ended


def test_an_untracked_attempt_is_evaluated_but_not_reported() -> None:
    result = look(attempt(pods=[pod(phase="Succeeded")], tracked=False))
    assert result.ended and result.observation is None and not result.forget


def test_an_untracked_attempt_whose_objects_are_gone_is_forgotten() -> None:
    assert look(attempt(tracked=False, deleted=True)).forget


def test_a_pull_failing_past_its_grace_fails_permanently_and_deletes_the_pod() -> None:
    pulling = {"name": "main", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such image"}}}
    record = attempt(pods=[pod(phase="Pending", containerStatuses=[pulling])])
    waiting = look(record, now=NOW, seen=NOW - 10)
    assert waiting.verdict.status is None and waiting.verdict.recheck_at == NOW + 50
    stuck = look(record, now=NOW, seen=NOW - 61)
    assert stuck.verdict.status == TaskStatus.FAILED and stuck.verdict.delete
    assert stuck.observation is not None and stuck.observation.failure == Failure.PERMANENT


def test_a_deleted_pod_fails_with_the_disruption_seen_before() -> None:
    disrupted = pod(conditions=[{"type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler"}])
    seen = look(attempt(pods=[disrupted]))
    assert seen.disruption == "Preempted"
    gone = look(attempt(deleted=True, disruption=seen.disruption, reported=TaskStatus.RUNNING))
    assert gone.observation is not None
    assert (gone.observation.reason, gone.observation.failure) == ("Preempted", Failure.INFRA)


def test_a_job_failed_before_its_pods_said_why_asks_for_the_pods_first() -> None:
    record = attempt(JobHandler(), obj=job(("Failed", "BackoffLimitExceeded")), pods=[pod("job-x")])
    first = look(record)
    assert first.refresh_pods and first.observation is None and not first.ended
    record.pods_refreshed = True
    second = look(record)
    assert not second.refresh_pods and second.ended
    assert second.observation is not None and second.observation.status == TaskStatus.FAILED


def test_volumes_not_mounting_past_the_deadline_ask_for_the_pods_events_once_per_interval() -> None:
    creating = {"name": "main", "state": {"waiting": {"reason": "ContainerCreating"}}}
    scheduled = [{"type": "PodScheduled", "status": "True"}]
    record = attempt(pods=[pod(phase="Pending", containerStatuses=[creating], conditions=scheduled)])
    assert look(record, seen=NOW - 121).check_events == ("a",)
    record.events_checked["a"] = NOW - 60
    assert look(record, seen=NOW - 121).check_events == ()


def test_evaluate_changes_nothing() -> None:
    record = attempt(pods=[pod(phase="Succeeded")])
    before = repr(record)
    look(record)
    assert repr(record) == before
