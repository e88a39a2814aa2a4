"""Runs a push starts go through the same GPU admission as runs started on request (issue 10 item 5).

A real `odin serve` on the local executor over a fake 2-GPU NVML machine, following a real git repository: a push
whose pipeline asks for 4 GPUs records that run failed with the message (API, events, `odinctl show`) instead of
leaving it pending, and the push's other pipeline runs on a GPU. SQLite and Postgres.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from odin.testing.nvml import fake_gpu, write_fake_gpus
from tests.api.conftest import PASSWORD, Served, start_server
from tests.support.postgres import scratch_database
from tests.support.server import odinctl
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

MESSAGE = "task train asks for 4 GPUs; the largest node has 2 (NVIDIA A100-SXM4-80GB)"


def _pipeline(name: str, gpus: int) -> str:
    return (
        f"name: {name}\ntasks:\n"
        "  - {name: prep, image: busybox, command: [sh, -c, 'echo prep']}\n"
        f"  - {{name: train, image: busybox, command: [sh, -c, 'echo $CUDA_VISIBLE_DEVICES'], num_gpus: {gpus},"
        " depends: prep}\n"
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    fake = write_fake_gpus(tmp_path / "gpus.json", [fake_gpu(i, name="NVIDIA A100-SXM4-80GB") for i in range(2)])
    env = {"MIDGARD_FAKE_NVML": str(fake)}
    database = (
        scratch_database(request.getfixturevalue("postgres_admin_url"))
        if request.param == "postgres"
        else contextlib.nullcontext(f"sqlite:///{tmp_path / 'odin.db'}")
    )
    with database as url:
        s = start_server(tmp_path / "served", url, request.param, env)
        try:
            yield s
        finally:
            s.release_all()
            s.server.stop()


def test_a_pushed_run_asking_more_gpus_than_the_machine_has_is_rejected(served: Served, tmp_path: Path) -> None:
    sha = served.remote.commit({"huge/main.yml": _pipeline("huge", 4), "small/main.yml": _pipeline("small", 1)})

    def runs() -> dict[str, dict[str, Any]] | None:
        items = served.get("/v1/runs", params={"commit": sha}).json()["items"]
        return {r["pipeline"]: r for r in items} if len(items) == 2 else None

    found = wait_until(runs, 60, interval=0.1, message="the push's two runs")
    huge = served.get(f"/v1/runs/{found['huge']['id']}").json()
    assert (huge["status"], huge["message"]) == ("failed", MESSAGE), huge
    assert huge["finished_at"] is not None
    assert {t["status"] for t in huge["tasks"]} == {"skipped"}
    events = served.get(f"/v1/runs/{huge['id']}/events").json()["items"]
    assert [(e["kind"], e["data"].get("message")) for e in events] == [("run.created", None), ("run.status", MESSAGE)]

    small = served.wait_run(found["small"]["id"])
    assert small["status"] == "succeeded", small

    r = served.post("/v1/runs", json={"pipeline": "huge"})
    assert (r.status_code, r.json()["detail"]) == (422, MESSAGE)

    login = odinctl("login", "--password-stdin", server=served.server, config_dir=tmp_path, stdin=PASSWORD + "\n")
    assert login.returncode == 0, login.stderr
    shown = odinctl("show", huge["id"], server=served.server, config_dir=tmp_path)
    assert shown.returncode == 1 and MESSAGE in " ".join(shown.stdout.split()), shown.stdout + shown.stderr
