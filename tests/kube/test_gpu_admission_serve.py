"""GPU admission on Kubernetes through a real `odin serve` (ODIN_EXECUTOR=kubernetes) on the fake API server.

A push adds three pipelines: one asks for more GPUs than any node has, one for a GPU model no node offers, one fits.
The first two are recorded failed with the message (API, events, `odinctl show`), the third runs; starting the first
two through `POST /v1/runs` answers 422 with the same message. SQLite and Postgres.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from odin.testing.kube.environment import KubeEnv
from odin.testing.kube.fake_apiserver import FakeApiServer
from tests.api.conftest import PASSWORD, Served, start_server
from tests.support.postgres import scratch_database
from tests.support.server import odinctl
from tests.support.wait import wait_until

pytestmark = [pytest.mark.kube, pytest.mark.slow]

PRODUCT = "nvidia.com/gpu.product"
H100 = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-80GB"
H200 = "NVIDIA-H200-141GB-HBM3e"
TOO_MANY = f"task train asks for 16 GPUs; the largest node has 8 (node-a: 8\u00d7 {H100})"
NO_MODEL = (
    f"task train asks for 1 GPU on nodes with {PRODUCT}={H200}; nodes with {PRODUCT}={H200}: none; "
    f"the largest node has 8 (node-a: 8\u00d7 {H100}); "
    f"products present: {A100} (1 node, 4 GPUs), {H100} (1 node, 8 GPUs)"
)


def _pipeline(name: str, gpus: int, selector: dict[str, str] | None = None) -> str:
    select = f", node_selector: {{{', '.join(f'{k}: {v}' for k, v in (selector or {}).items())}}}" if selector else ""
    return (
        f"name: {name}\ntasks:\n"
        "  - {name: prep, image: busybox:1.36, command: [echo, prep]}\n"
        f"  - {{name: train, image: busybox:1.36, command: [echo, train], num_gpus: {gpus}{select}, depends: prep}}\n"
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield "sqlite", f"sqlite:///{tmp_path / 'odin.db'}"
        return
    with scratch_database(request.getfixturevalue("postgres_admin_url")) as url:
        yield "postgres", url


@pytest.fixture
def served(kube: KubeEnv, kube_fake: FakeApiServer, database: tuple[str, str], tmp_path: Path) -> Iterator[Served]:
    kube_fake.add_node("node-a", gpus=8, labels={PRODUCT: H100})
    kube_fake.add_node("node-b", gpus=4, labels={PRODUCT: A100})
    kube_fake.add_node("cpu-1")
    backend, url = database
    env = {
        "ODIN_EXECUTOR": "kubernetes",
        "ODIN_KUBE_IN_CLUSTER": "false",
        "ODIN_KUBE_CONFIG": str(kube.kubeconfig),
        "ODIN_KUBE_NAMESPACE": kube.namespace,
        "ODIN_KUBE_SCHEDULER_NAME": kube.scheduler_name,
        "NO_PROXY": "*",
        "HTTP_PROXY": "",
        "HTTPS_PROXY": "",
    }
    s = start_server(tmp_path / "served", url, backend, env)
    try:
        yield s
    finally:
        s.server.stop()


def _runs_at(served: Served, sha: str) -> dict[str, dict[str, Any]] | None:
    items = served.get("/v1/runs", params={"commit": sha}).json()["items"]
    return {r["pipeline"]: r for r in items} if len(items) == 3 else None


def test_runs_that_no_node_can_hold_are_rejected_on_push_and_on_request(
    served: Served, kube: KubeEnv, tmp_path: Path
) -> None:
    sha = served.remote.commit(
        {
            "big/main.yml": _pipeline("big", 16),
            "h200/main.yml": _pipeline("h200", 1, {PRODUCT: H200}),
            "fits/main.yml": _pipeline("fits", 8, {PRODUCT: H100}),
        }
    )
    runs = wait_until(lambda: _runs_at(served, sha), 60, interval=0.1, message="the push's three runs")

    # Pushed: the two that can never fit are failed with the message, their tasks never started.
    for pipeline, message in (("big", TOO_MANY), ("h200", NO_MODEL)):
        run = served.get(f"/v1/runs/{runs[pipeline]['id']}").json()
        assert (run["status"], run["message"]) == ("failed", message), run
        assert {t["name"]: (t["status"], t["reason"]) for t in run["tasks"]} == {
            "prep": ("skipped", "Rejected"), "train": ("skipped", "Rejected"),
        }  # fmt: skip
        events = served.get(f"/v1/runs/{run['id']}/events").json()["items"]
        assert [e["kind"] for e in events] == ["run.created", "run.status"]
        assert events[1]["data"] == {"status": "failed", "reason": "Rejected", "message": message, "pipeline": pipeline}
    # ... and the commit's other pipeline runs: its pods are created (prep first, then train asking for 8 GPUs).
    fits = runs["fits"]["id"]
    label = f"odin.dev/commit={sha}"

    def pod(task: str) -> Any:
        pods = kube.core.list_namespaced_pod(kube.namespace, label_selector=f"{label},odin.dev/task={task}").items
        return pods[0] if pods else None

    kube.kubelet.succeed(wait_until(lambda: pod("prep"), 30, message="the prep pod of the run that fits"))
    train = wait_until(lambda: pod("train"), 30, message="the train pod")
    assert train.spec.containers[0].resources.limits["nvidia.com/gpu"] == "8"
    assert train.spec.node_selector == {PRODUCT: H100}
    kube.kubelet.succeed(train)
    assert served.wait_run(fits)["status"] == "succeeded"
    assert not kube.core.list_namespaced_pod(kube.namespace, label_selector="odin.dev/pipeline=big").items

    # Asked for: refused at once with the same message, nothing recorded.
    for pipeline, message in (("big", TOO_MANY), ("h200", NO_MODEL)):
        r = served.post("/v1/runs", json={"pipeline": pipeline})
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == message
    assert len(served.get("/v1/runs", params={"pipeline": "big"}).json()["items"]) == 1
    assert served.post("/v1/runs", json={"pipeline": "fits"}).status_code == 201

    # odinctl show says why.
    login = odinctl("login", "--password-stdin", server=served.server, config_dir=tmp_path, stdin=PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    shown = odinctl("show", runs["big"]["id"], server=served.server, config_dir=tmp_path)
    assert shown.returncode == 1, shown.stderr  # a failed run
    assert "failed" in shown.stdout and TOO_MANY in " ".join(shown.stdout.split()), shown.stdout
