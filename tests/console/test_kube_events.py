"""The run page of a task on Kubernetes shows the cluster's events about its pod beside Odin's own: why a pod waits
(FailedScheduling for want of a GPU) is what an ML engineer opens the page to learn.

A real `odin serve` with ODIN_EXECUTOR=kubernetes against the fake API server (or ODIN_TEST_KUBECONFIG), a real
repository, the browser; the event is created through the API as the scheduler would write it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from odin.testing.kube.environment import KubeEnv
from tests.console.conftest import PASSWORD, log_in
from tests.support.git import GitRemote
from tests.support.server import OdinServer
from tests.support.wait import wait_until

pytestmark = [pytest.mark.kube, pytest.mark.slow]

GPU_TASK = """\
name: big
tasks:
  - name: train
    image: busybox:1.36
    command: [echo, training]
    num_gpus: 8
"""
WHY = "0/4 nodes are available: 4 Insufficient nvidia.com/gpu. preemption: 0/4 nodes are available."


@pytest.fixture
def kube_server(kube_api: KubeEnv, git_remote: GitRemote, tmp_path: Path) -> Iterator[OdinServer]:
    git_remote.commit({"hello/main.yml": "name: hello\ntasks:\n  - {name: hi, image: busybox, command: [echo, hi]}\n"})
    env = {
        "ODIN_REPO": git_remote.file_url,
        "ODIN_POLL_INTERVAL": "0.2",
        "ODIN_ADMIN_PASSWORD": PASSWORD,
        "ODIN_EXECUTOR": "kubernetes",
        "ODIN_KUBE_IN_CLUSTER": "false",
        "ODIN_KUBE_CONFIG": str(kube_api.kubeconfig),
        "ODIN_KUBE_NAMESPACE": kube_api.namespace,
        "ODIN_KUBE_SCHEDULER_NAME": kube_api.scheduler_name,
        "NO_PROXY": "*",
        "HTTP_PROXY": "",
        "HTTPS_PROXY": "",
    }
    with OdinServer(tmp_path / "state", env) as server:
        wait_until(lambda: "first sync" in server.log(), 30, message="the server's first sync")
        yield server


def test_a_pending_pods_scheduling_events_show_on_its_task(
    kube_api: KubeEnv, kube_server: OdinServer, git_remote: GitRemote, page: Page, tmp_path: Path
) -> None:
    sha = git_remote.commit({"big/main.yml": GPU_TASK}, "add big")

    def pod() -> Any:
        pods = kube_api.core.list_namespaced_pod(kube_api.namespace, label_selector="odin.dev/task=train").items
        return pods[0] if pods else None

    waiting = wait_until(pod, 60, message=lambda: f"the train pod ({kube_server.log()[-2000:]})")  # type: ignore[arg-type]
    name = waiting.metadata.name
    kube_api.core.create_namespaced_event(
        kube_api.namespace,
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name}.scheduling", "namespace": kube_api.namespace},
            "involvedObject": {"kind": "Pod", "name": name, "namespace": kube_api.namespace, "apiVersion": "v1",
                               "uid": waiting.metadata.uid},
            "reason": "FailedScheduling",
            "message": WHY,
            "type": "Warning",
            "count": 3,
            "firstTimestamp": "2026-12-07T08:00:00Z",
            "lastTimestamp": "2026-12-07T08:00:10Z",
            "source": {"component": "default-scheduler"},
        },
    )  # fmt: skip
    token = httpx.post(f"{kube_server.url}/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    runs = wait_until(
        lambda: httpx.get(f"{kube_server.url}/v1/runs", params={"commit": sha}, headers=headers).json()["items"], 30
    )
    run_id = runs[0]["id"]

    log_in(page, kube_server)
    page.goto(f"{kube_server.url}/console/runs/{run_id}")
    page.get_by_role("button", name="train", exact=True).click()
    events = page.locator("#events")
    expect(events).to_contain_text("FailedScheduling")
    expect(events).to_contain_text("Insufficient nvidia.com/gpu")
    expect(events).to_contain_text(f"Pod/{name}")
    expect(page.locator("#events-state")).not_to_contain_text("no Kubernetes events")
    page.screenshot(path=tmp_path / "run-kube-events.png", full_page=True)

    # Once the pod runs and ends, the run ends as the cluster says.
    kube_api.kubelet.succeed(pod())
    wait_until(
        lambda: httpx.get(f"{kube_server.url}/v1/runs/{run_id}", headers=headers).json()["status"] == "succeeded", 60
    )
