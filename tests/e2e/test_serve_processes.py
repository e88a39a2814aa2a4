"""`odin serve` with ODIN_SERVE_PROCESSES=2 (`cli/serve_processes.py`): one port, two replica processes forked by a
supervisor, on Postgres. Real processes, real sockets: connections reach both workers, one of them leads, a worker
that dies is replaced, SIGTERM stops them all, and a supervisor killed outright takes its workers with it."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.postgres import scratch_database
from tests.support.server import BIN, OdinServer
from tests.support.wait import wait_until

pytestmark = pytest.mark.postgres

LEADS = "this replica is the leader"
SECRET = "serve-processes-test-secret-0123456789abcdef"
PASSWORD = "Serve-processes-pass-1"


def workers(server: OdinServer) -> list[int]:
    assert server.proc is not None
    pid = server.proc.pid
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def server(tmp_path: Path, postgres_admin_url: str) -> Iterator[OdinServer]:
    with scratch_database(postgres_admin_url) as url:
        env = {
            "ODIN_DATABASE_URL": url,
            "ODIN_SERVE_PROCESSES": "2",
            "ODIN_JWT_SECRET": SECRET,
            "ODIN_ADMIN_PASSWORD": PASSWORD,
            "ODIN_SHUTDOWN_GRACE": "2",
        }
        odin = OdinServer(tmp_path / "data", env)
        try:
            odin.start()
            wait_until(lambda: len(workers(odin)) == 2, 30, message="two API workers")
            wait_until(lambda: LEADS in odin.log(), 30, message="a worker leads")
            yield odin
        finally:
            odin.stop()


def test_connections_reach_both_workers_and_exactly_one_leads(server: OdinServer) -> None:
    clients = [httpx.Client(base_url=server.url, timeout=10) for _ in range(24)]
    try:
        for client in clients:  # each its own kept-alive connection, spread by the kernel over the two sockets
            assert client.get("/readyz").status_code == 200
        served = {
            pid
            for pid in workers(server)
            for conn in psutil.Process(pid).net_connections(kind="tcp")
            if conn.status == psutil.CONN_ESTABLISHED and conn.laddr.port == server.port
        }
        assert served == set(workers(server))  # both answer (all 24 on one worker: a chance of 2 in 16 million)
        body = {"username": "admin", "password": PASSWORD}
        token = clients[0].post("/v1/auth/token", json=body).json()["access_token"]
        for client in clients:  # a login made on one worker is honoured by the other: they share the store
            assert client.get("/v1/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        for client in clients:
            client.close()
    assert server.log().count(LEADS) == 1
    assert "serving with 2 processes (ODIN_SERVE_PROCESSES)" in server.log()


def test_a_worker_that_dies_is_replaced_and_the_port_keeps_answering(server: OdinServer) -> None:
    before = workers(server)
    os.kill(before[0], signal.SIGKILL)
    wait_until(lambda: len(set(workers(server)) - set(before)) == 1, 30, message="a new worker")
    assert before[1] in workers(server)
    assert "ended after" in server.log() and "(killed by SIGKILL); starting another in" in server.log()
    wait_until(lambda: httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200, 30, message="ready")


def test_sigterm_stops_every_worker_and_the_supervisor_exits_0(server: OdinServer) -> None:
    pids = workers(server)
    assert server.stop() == 0
    assert all(gone(pid) for pid in pids)
    assert "asking the 2 workers to stop" in server.log()


def test_workers_die_with_a_supervisor_killed_outright(server: OdinServer) -> None:
    pids = workers(server)
    server.kill()  # SIGKILL: no handler runs; the kernel's parent-death signal (SIGTERM) reaches the workers
    wait_until(lambda: all(gone(pid) for pid in pids), 30, message="workers gone")


def test_more_than_one_process_needs_postgres(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    env.update(ODIN_DATA_DIR=str(tmp_path / "data"), ODIN_SERVE_PROCESSES="2", ODIN_JWT_SECRET=SECRET)
    done = subprocess.run(
        [str(BIN / "odin"), "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert "ODIN_SERVE_PROCESSES=2 needs PostgreSQL (ODIN_DATABASE_URL)" in done.stderr


def test_workers_that_cannot_start_stop_the_server(tmp_path: Path, postgres_admin_url: str) -> None:
    """A worker that fails at start-up (here: a database that does not exist) is not replaced in a loop: the
    supervisor stops the other and exits with the worker's status, as one `odin serve` would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    missing = postgres_admin_url.rsplit("/", 1)[0] + "/odin_no_such_database"
    env.update(
        ODIN_DATA_DIR=str(tmp_path / "data"),
        ODIN_SERVE_PROCESSES="2",
        ODIN_JWT_SECRET=SECRET,
        ODIN_DATABASE_URL=missing,
    )
    done = subprocess.run(
        [str(BIN / "odin"), "serve", "--port", "0"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1, done.stderr
    assert "could not start (exit status 1): stopping the other workers" in done.stderr
