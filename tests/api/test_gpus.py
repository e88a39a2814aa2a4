"""`GET /v1/nodes`, `GET /v1/gpus` and `odinctl nodes/gpus` over a real `odin serve` and real agents on loopback.

Two servers: one aggregating agents (some live, some killed, some stalled; the token given by file reference), and
the embedded default reporting this machine in-process, where a local-executor task is put on a fake GPU and must
show up with its run, task and commit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from odin.testing.nvml import fake_gpu
from tests.api.conftest import PASSWORD, Served, start_server
from tests.support.agents import AgentGroup, agent_group
from tests.support.server import odinctl
from tests.support.wait import wait_until

TOKEN = "agent-token-0123456789"


@pytest.fixture(scope="module")
def agents() -> Iterator[tuple[AgentGroup, AgentGroup, AgentGroup]]:
    with agent_group(3, token=TOKEN) as live, agent_group(2, token=TOKEN) as doomed, agent_group(1, stall=True) as slow:
        yield live, doomed, slow


@pytest.fixture(scope="module")
def aggregating(
    agents: tuple[AgentGroup, AgentGroup, AgentGroup], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    live, doomed, slow = agents
    tmp = tmp_path_factory.mktemp("gpus")
    token_file = tmp / "agent-token"
    token_file.write_text(TOKEN + "\n")
    env = {
        "ODIN_MIDGARD_AGENTS": ",".join(live.urls + doomed.urls + slow.urls),
        "ODIN_MIDGARD_TOKEN": f"file:{token_file}",
        "ODIN_MIDGARD_TIMEOUT": "0.5",
        "ODIN_MIDGARD_CACHE_TTL": "0",
    }
    served = start_server(tmp, f"sqlite:///{tmp / 'odin.db'}", "sqlite", env)
    try:
        yield served
    finally:
        served.server.stop()


def test_gpus_fan_out_with_holders_filters_and_unreachable_nodes(
    aggregating: Served, agents: tuple[AgentGroup, AgentGroup, AgentGroup]
) -> None:
    live, doomed, _slow = agents
    viewer = aggregating.user("gpu-viewer", "viewer")
    assert aggregating.get("/v1/gpus", token="nope").status_code == 401

    r = aggregating.get("/v1/gpus", token=viewer)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "static"
    assert (body["total"], body["free"]) == (10, 5), "5 reachable nodes with 2 GPUs, one of each held"
    stalled = "127.0.0.1"  # before its first report a node is named by its URL's host
    assert body["unreachable_nodes"] == [stalled]
    held = [g for g in body["items"] if not g["free"]]
    port = live.ports[0]
    [mine] = [g for g in held if g["node"] == f"agent-{port}"]
    [holder] = mine["holders"]
    assert (holder["run"], holder["task"], holder["commit"][:6], holder["pids"]) == (
        f"run-{port}",
        "train",
        "c0ffee",
        [1000],
    )
    assert "s3cret" not in r.text and TOKEN not in r.text and TOKEN not in aggregating.server.log()

    def count(**query: str) -> int:
        answer = aggregating.get("/v1/gpus", params=query)
        assert answer.status_code == 200, answer.text
        return len(answer.json()["items"])

    assert count(free="true") == 5 and count(free="false") == 5
    assert count(model="a100") == 5 and count(model="H100", free="true") == 0
    assert count(node=f"agent-{port}") == 2 and count(run=f"run-{port}") == 1 and count(run="nope") == 0
    assert aggregating.get("/v1/gpus", params={"fre": "true"}).status_code == 400

    # Kill two nodes: listed unreachable from their last reading, and the answer stays fast.
    doomed.kill()
    started = time.monotonic()
    nodes = aggregating.get("/v1/nodes").json()
    assert time.monotonic() - started < 2.0
    by_name = {n["node"]: n for n in nodes["items"]}
    for p in doomed.ports:
        node = by_name[f"agent-{p}"]
        assert not node["reachable"] and node["error"].startswith("cannot connect")
        assert node["report"]["node"] == f"agent-{p}" and node["age_seconds"] >= 0
    assert nodes["unreachable"] == 3
    gpus = aggregating.get("/v1/gpus").json()
    assert gpus["total"] == 10, "the dead nodes' GPUs are still listed, from their last reading"
    assert sorted(gpus["unreachable_nodes"]) == sorted([stalled, *(f"agent-{p}" for p in doomed.ports)])


def test_odinctl_gpus_and_nodes(aggregating: Served, tmp_path: Path, agents: tuple[AgentGroup, ...]) -> None:
    res = odinctl("login", "--password-stdin", server=aggregating.server, config_dir=tmp_path, stdin=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    port = agents[0].ports[0]
    table = odinctl("gpus", server=aggregating.server, config_dir=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "HELD BY" in table.stdout and f"run-{port}/train@c0ffeec" in table.stdout
    assert "H100 80GB HBM3" in table.stdout and "30.0G/80.0G" in table.stdout and "97%" in table.stdout
    assert "GPUs free" in table.stdout and "unreachable" in table.stdout
    data = json.loads(odinctl("gpus", "--free", "-o", "json", server=aggregating.server, config_dir=tmp_path).stdout)
    assert data["items"] and all(g["free"] for g in data["items"])
    import yaml

    nodes_yaml = odinctl("nodes", "-o", "yaml", server=aggregating.server, config_dir=tmp_path)
    assert nodes_yaml.returncode == 0, nodes_yaml.stderr
    assert yaml.safe_load(nodes_yaml.stdout)["source"] == "static"
    nodes = odinctl("nodes", server=aggregating.server, config_dir=tmp_path)
    assert nodes.returncode == 0 and f"agent-{port}" in nodes.stdout and "unreachable" in nodes.stdout


def test_odinctl_gpus_watch_refreshes(aggregating: Served, tmp_path: Path) -> None:
    import subprocess

    from tests.support.server import BIN

    res = odinctl("login", "--password-stdin", server=aggregating.server, config_dir=tmp_path, stdin=PASSWORD + "\n")
    assert res.returncode == 0, res.stderr
    env = {"ODIN_CONFIG_DIR": str(tmp_path), "ODIN_SERVER": aggregating.url, "NO_COLOR": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [str(BIN / "odinctl"), "gpus", "--watch", "--interval", "0.2", "-o", "json"],
        stdout=subprocess.PIPE,
        text=True,
        env={**env, "PATH": "/usr/bin:/bin"},
    )
    try:
        assert proc.stdout is not None
        seen = 0
        deadline = time.monotonic() + 30
        while seen < 2 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen += line.startswith("{")
        assert seen >= 2, "two refreshes printed"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


# -- the embedded default, and attribution end to end --------------------------------------------------------------
GPU_PIPELINE = (
    "name: gpu\ntasks:\n  - {{name: hold, image: busybox, command: [sh, -c, 'echo $$ > {marks}/pid-$ODIN_RUN;"
    " while [ ! -e {marks}/go-$ODIN_RUN ]; do sleep 0.05; done']}}\n"
)


def write_gpus(path: Path, processes: list[dict[str, Any]]) -> None:
    doc = {"gpus": [fake_gpu(0, processes=processes, memory_used=(processes and 8 * 1024**3) or 0), fake_gpu(1)]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)


def test_embedded_default_reports_this_machine_and_the_task_holding_a_gpu(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("embedded")
    fake = tmp / "gpus.json"
    write_gpus(fake, [])
    served = start_server(
        tmp, f"sqlite:///{tmp / 'odin.db'}", "sqlite", {"MIDGARD_FAKE_NVML": str(fake), "ODIN_MIDGARD_CACHE_TTL": "0"}
    )
    try:
        nodes = served.get("/v1/nodes").json()
        assert nodes["source"] == "embedded" and len(nodes["items"]) == 1
        [me] = nodes["items"]
        assert me["reachable"] and me["url"] is None and me["gpu_count"] == 2
        sha = served.remote.commit({"gpu/main.yml": GPU_PIPELINE.format(marks=served.marks)}, message="gpu pipeline")
        wait_until(lambda: served.get("/v1/pipelines/gpu").status_code == 200, 30, message="the pipeline is synced")
        run = served.start("gpu")
        pid_file = served.marks / f"pid-{run['id']}"
        pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), 30, message="task started"))
        write_gpus(fake, [{"pid": pid, "used_memory": 8 * 1024**3}])

        def held() -> dict[str, Any] | None:
            items = served.get("/v1/gpus", params={"run": run["id"]}).json()["items"]
            return items[0] if items else None

        gpu = wait_until(held, 30, message="the GPU shows its holder")
        assert (gpu["index"], gpu["free"]) == (0, False)
        [holder] = gpu["holders"]
        assert (holder["run"], holder["task"], holder["commit"], holder["pids"]) == (run["id"], "hold", sha, [pid])
        free = served.get("/v1/gpus", params={"free": "true"}).json()
        assert [g["index"] for g in free["items"]] == [1] and free["source"] == "embedded"
        served.release(run["id"])
        served.wait_run(run["id"])
    finally:
        served.release_all()  # a task left gated by a failure above would outlive the server
        served.server.stop()
