"""The failure classification table (docs/kubernetes.md), line by line, on pod statuses as the kubelet writes them."""

from __future__ import annotations

from typing import Any

import pytest

from odin.controller.executors.kubernetes.failures import (
    Deadlines,
    PodState,
    classify_pod,
    missing_volume_message,
)
from odin.controller.vocabulary import Failure

pytestmark = pytest.mark.kube

NOW = 1_000_000.0
DEADLINES = Deadlines(image_pull_grace=60, missing_volume=120, unschedulable=600)


def pod(
    phase: str = "Pending",
    *,
    reason: str | None = None,
    message: str | None = None,
    conditions: list[dict[str, Any]] | None = None,
    containers: list[dict[str, Any]] | None = None,
    node: str | None = "node-1",
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": conditions or []}
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    if containers is not None:
        status["containerStatuses"] = containers
    return {"metadata": {"name": "p", "uid": "u1"}, "spec": {"nodeName": node}, "status": status}


def terminated(code: int, reason: str = "Error", message: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"exitCode": code, "reason": reason}
    if message:
        state["message"] = message
    return {"name": "main", "state": {"terminated": state}}


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    return {"name": "main", "state": {"waiting": {"reason": reason, "message": message}}}


def cond(cond_type: str, status: str, reason: str = "", message: str = "", since: float = NOW) -> dict[str, Any]:
    import datetime as dt

    when = dt.datetime.fromtimestamp(since, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"type": cond_type, "status": status, "reason": reason, "message": message, "lastTransitionTime": when}


def classify(p: dict[str, Any], *, seen: float = NOW, now: float = NOW, event: str | None = None) -> PodState:
    return classify_pod(p, now=now, deadlines=DEADLINES, first_seen=lambda _: seen, missing_volume_event=event)


@pytest.mark.parametrize(
    ("status", "reason", "failure", "exit_code"),
    [
        (pod("Failed", containers=[terminated(1)]), "Error", Failure.USER, 1),
        (pod("Failed", containers=[terminated(137, "OOMKilled")]), "OOMKilled", Failure.USER, 137),
        (pod("Failed", containers=[terminated(127)]), "CommandNotFound", Failure.PERMANENT, 127),
        (pod("Failed", containers=[terminated(126)]), "NotExecutable", Failure.PERMANENT, 126),
        (pod("Failed", containers=[terminated(128, "StartError", 'exec: "trian": not found')]), "StartError",
         Failure.PERMANENT, 128),
        (pod("Failed", reason="Evicted", message="low on memory", containers=[terminated(137)]), "Evicted",
         Failure.INFRA, 137),
        (pod("Failed", conditions=[cond("DisruptionTarget", "True", "PreemptionByScheduler")]), "Preempted",
         Failure.INFRA, None),
        (pod("Failed", conditions=[cond("DisruptionTarget", "True", "DeletionByPodGC")]), "NodeLost", Failure.INFRA,
         None),
        (pod("Failed", reason="NodeLost"), "NodeLost", Failure.INFRA, None),
        (pod("Failed", reason="OutOfnvidia.com/gpu"), "AdmissionRejected", Failure.INFRA, None),
        (pod("Failed", reason="DeadlineExceeded"), "DeadlineExceeded", Failure.USER, None),
    ],
)  # fmt: skip
def test_failed_pods(status: dict[str, Any], reason: str, failure: Failure, exit_code: int | None) -> None:
    state = classify(status)
    assert (state.failed, state.reason, state.failure, state.exit_code) == (True, reason, failure, exit_code)
    assert not state.stuck


def test_termination_message_is_the_failure_message() -> None:
    state = classify(pod("Failed", containers=[terminated(2, message="ValueError: bad lr\n")]))
    assert state.message == "exit code 2: ValueError: bad lr"


def test_succeeded_and_running() -> None:
    assert classify(pod("Succeeded")).succeeded
    running = classify(pod("Running", containers=[{"name": "main", "state": {"running": {}}}]))
    assert running.running and not running.terminal


@pytest.mark.parametrize("reason", ["ImagePullBackOff", "ErrImagePull"])
def test_image_pull_failures_wait_for_the_grace_period_then_are_permanent(reason: str) -> None:
    status = pod(containers=[waiting(reason, 'Back-off pulling image "nope:1"')])
    early = classify(status, seen=NOW - 10)
    assert not early.failed and early.recheck_at == NOW - 10 + 60
    late = classify(status, seen=NOW - 61)
    assert (late.failed, late.stuck, late.reason, late.failure) == (True, True, reason, Failure.PERMANENT)
    assert "nope:1" in (late.message or "") and "more than 1m00s" in (late.message or "")


def test_invalid_image_name_fails_at_once() -> None:
    state = classify(pod(containers=[waiting("InvalidImageName", "couldn't parse image name")]))
    assert (state.stuck, state.failure) == (True, Failure.PERMANENT)


def test_missing_secret_in_env_fails_after_the_volume_deadline() -> None:
    status = pod(containers=[waiting("CreateContainerConfigError", 'secret "creds" not found')])
    assert not classify(status, seen=NOW - 100).failed
    assert classify(status, seen=NOW - 121).reason == "CreateContainerConfigError"


def test_unschedulable_past_its_deadline_is_permanent() -> None:
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    status = pod(conditions=[cond("PodScheduled", "False", "Unschedulable", message, since=NOW - 100)], node=None)
    waiting_state = classify(status)
    assert not waiting_state.failed and waiting_state.recheck_at == NOW - 100 + 600
    late = classify(status, now=NOW + 600)
    assert (late.reason, late.failure, late.stuck) == ("Unschedulable", Failure.PERMANENT, True)
    assert "Insufficient nvidia.com/gpu" in (late.message or "")


def test_waiting_in_a_queue_is_not_unschedulable() -> None:
    status = pod(conditions=[cond("PodScheduled", "False", "SchedulingGated", since=NOW - 10_000)], node=None)
    state = classify(status)
    assert not state.failed and state.recheck_at is None


def test_missing_pvc_uses_the_volume_deadline() -> None:
    message = '0/3 nodes are available: persistentvolumeclaim "datasets" not found.'
    status = pod(conditions=[cond("PodScheduled", "False", "Unschedulable", message, since=NOW - 121)], node=None)
    state = classify(status)
    assert (state.reason, state.failure) == ("MissingVolume", Failure.PERMANENT)


def test_volumes_not_mounting_ask_for_the_events_then_fail_on_a_missing_source() -> None:
    status = pod(conditions=[cond("PodScheduled", "True", since=NOW - 200)], containers=[waiting("ContainerCreating")])
    state = classify(status)
    assert state.check_events and not state.failed
    event = 'FailedMount: MountVolume.SetUp failed for volume "secret-0" : secret "creds" not found'
    failed = classify(status, event=event)
    assert (failed.reason, failed.failure, failed.message) == ("MissingVolume", Failure.PERMANENT, event)
    assert not classify(
        pod(conditions=[cond("PodScheduled", "True")], containers=[waiting("ContainerCreating")])
    ).check_events


def test_disruption_of_a_running_pod_is_remembered() -> None:
    status = pod("Running", conditions=[cond("DisruptionTarget", "True", "DeletionByTaintManager")])
    assert classify(status).disruption == "NodeLost"


def test_missing_volume_message_from_events() -> None:
    events = [
        {"reason": "Scheduled", "message": "assigned"},
        {"reason": "FailedMount", "message": 'MountVolume.SetUp failed for volume "c" : configmap "cfg" not found'},
    ]
    assert missing_volume_message(events) == (
        'FailedMount: MountVolume.SetUp failed for volume "c" : configmap "cfg" not found'
    )
    assert missing_volume_message([{"reason": "FailedMount", "message": "timed out waiting for the condition"}]) is None
