"""The fan-out against real `midgard serve` agents (fake NVML GPUs) over loopback, behind a real `odin serve`:
several agents, one killed and one replaced by a server that stalls; a process on a fake GPU attributed to its run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from odin.testing.nvml import fake_gpu
from tests.api.conftest import start_server
from tests.support.midgard import MidgardAgent
from tests.support.wait import wait_until

TOKEN = "midgard-test-token"


@contextmanager
def stalling_server() -> Iterator[str]:
    """Accepts connections and reads requests, never answers: a hung node."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        for conn in accepted:
            conn.close()
        listener.close()


@pytest.mark.slow
def test_real_agents_dead_and_hung_nodes_and_attribution(tmp_path: Path) -> None:
    holder_env = {**{k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}}
    holder_env.update(ODIN_RUN="train-abc1234-1", ODIN_TASK="fit", ODIN_COMMIT_SHA="abc1234" + "0" * 33)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env=holder_env)
    with ExitStack() as stack:
        stack.callback(holder.wait, 10)
        stack.callback(holder.kill)
        agents = [
            stack.enter_context(
                MidgardAgent(
                    tmp_path / f"a{i}",
                    gpus=[
                        fake_gpu(0, processes=[{"pid": holder.pid, "used_memory": 2 * 1024**3}] if i == 0 else []),
                        fake_gpu(1, name="NVIDIA A100-SXM4-40GB"),
                    ],
                    env={"NODE_NAME": f"node-{i}"},
                )
            )
            for i in range(3)
        ]
        hung = stack.enter_context(stalling_server())
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN)
        env = {
            "ODIN_MIDGARD_AGENTS": ",".join([a.url for a in agents] + [hung]),
            "ODIN_MIDGARD_TOKEN": f"file:{token_file}",
            "ODIN_MIDGARD_TIMEOUT": "1",
            "ODIN_MIDGARD_CACHE_TTL": "0",
        }
        served = start_server(tmp_path / "odin", f"sqlite:///{tmp_path / 'odin.db'}", "sqlite", env)
        stack.callback(served.server.stop)

        body = served.get("/v1/gpus").json()
        assert (body["total"], body["free"]) == (6, 5)
        assert body["unreachable_nodes"] == ["127.0.0.1"], "the hung node, named by its URL before any report"
        [held] = [g for g in body["items"] if not g["free"]]
        assert held["node"] == "node-0" and held["gpu"]["memory_total_bytes"] == 80 * 1024**3
        [h] = held["holders"]
        assert (h["run"], h["task"], h["commit"], h["pids"]) == (
            "train-abc1234-1",
            "fit",
            "abc1234" + "0" * 33,
            [holder.pid],
        )

        agents[1].kill()
        started = time.monotonic()
        nodes = served.get("/v1/nodes").json()
        assert time.monotonic() - started < 1.0, "neither the dead nor the hung node is waited for"
        by_name = {n["node"]: n for n in nodes["items"]}
        assert not by_name["node-1"]["reachable"] and by_name["node-1"]["report"]["node"] == "node-1"
        assert by_name["127.0.0.1"]["error"] == "no answer within 1 s"
        assert by_name["node-0"]["reachable"] and by_name["node-2"]["reachable"]
        wait_until(
            lambda: served.get("/v1/nodes", params={"node": "node-1"}).json()["items"][0]["age_seconds"] > 0.3,
            10,
            message="the dead node's last reading ages",
        )
        assert served.get("/v1/gpus", params={"run": "train-abc1234-1"}).json()["items"][0]["node"] == "node-0"
