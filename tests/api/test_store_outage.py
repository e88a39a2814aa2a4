"""A database outage is a 503 with Retry-After on every route, login and token checks included; never a 500; and a
WebSocket says so (a 503 error per command, or a close with code 1011 and the reason).

A real `odin serve` on its own Postgres database, which the test makes refuse connections (as in a failover).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from websockets.asyncio.client import connect

from odin.api.client.ws import ws_url
from tests.api.conftest import PASSWORD, Served, start_server
from tests.engine.test_store_outage import set_available
from tests.support.postgres import scratch_database
from tests.support.wait import wait_until

pytestmark = pytest.mark.postgres


@pytest.fixture
def outage(postgres_admin_url: str, tmp_path: Path) -> Iterator[tuple[Served, sa.Engine]]:
    with scratch_database(postgres_admin_url) as url:
        admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
        served = start_server(tmp_path, url, "postgres")
        try:
            yield served, admin
        finally:
            set_available(admin, url, True)
            served.server.stop()
            admin.dispose()


def test_every_route_answers_503_with_retry_after_while_the_store_is_down(
    outage: tuple[Served, sa.Engine],
) -> None:
    served, admin = outage
    run = served.start("ok")
    served.wait_run(run["id"])
    api_token = served.post("/v1/auth/tokens", json={"name": "ci"}).json()["token"]
    sha = served.remote.head

    requests: list[tuple[str, str, str | None, dict[str, object] | None]] = [
        ("POST", "/v1/auth/token", None, {"username": "admin", "password": PASSWORD}),
        ("GET", "/v1/auth/whoami", api_token, None),  # the API token is checked against the store
        ("GET", "/v1/runs", api_token, None),
        ("GET", "/v1/runs", None, None),
        ("GET", f"/v1/runs/{run['id']}", None, None),
        ("GET", f"/v1/runs/{run['id']}/events", None, None),
        ("POST", "/v1/runs", None, {"pipeline": "ok"}),
        ("GET", "/v1/commits", None, None),
        ("GET", f"/v1/commits/{sha}", None, None),
        ("GET", "/v1/users", None, None),
        ("GET", "/v1/users/admin", None, None),
        ("POST", "/v1/users", None, {"username": "newbie", "password": "a-long-password"}),
        ("GET", "/v1/auth/tokens", None, None),
        ("DELETE", "/v1/auth/tokens/1", None, None),
        ("POST", "/v1/auth/logout", None, None),
        ("PATCH", "/v1/users/admin", None, {"email": "admin@example.com"}),
        ("GET", "/v1/repos", None, None),
        ("GET", "/v1/repos/default", None, None),
        ("POST", "/v1/repos", None, {"name": "other", "url": served.remote.file_url}),
        ("PATCH", "/v1/repos/other", None, {"branches": ["main"]}),
        ("DELETE", "/v1/repos/other", None, None),
        ("GET", f"/v1/runs/{run['id']}/tasks", None, None),
        ("GET", f"/v1/runs/{run['id']}/tasks/prep/events", None, None),
        ("GET", f"/v1/runs/{run['id']}/tasks/prep/logs", None, None),
        ("POST", f"/v1/runs/{run['id']}/cancel", None, None),
        ("POST", f"/v1/runs/{run['id']}/rerun", None, {}),
        ("GET", f"/v1/runs/{run['id']}/artifacts", None, None),
        ("GET", f"/v1/runs/{run['id']}/artifacts/prep/model", None, None),
        ("GET", f"/v1/runs/{run['id']}/artifacts/prep/model/files", None, None),
        ("GET", "/v1/results", None, None),
        ("GET", "/v1/gpus", None, None),
        ("GET", "/v1/nodes", None, None),
    ]
    set_available(admin, served.db_url, False)
    try:
        wrong: list[tuple[str, str, int, str]] = []
        for method, path, token, body in requests:
            headers = {"Authorization": f"Bearer {token or served.admin_token}"} if path != "/v1/auth/token" else {}
            r = httpx.request(method, f"{served.url}{path}", json=body, headers=headers, timeout=60)
            if (
                r.status_code != 503
                or not r.headers.get("retry-after", "").isdigit()
                or "database" not in r.json()["detail"]
            ):
                wrong.append((method, path, r.status_code, r.text[:300]))
        assert not wrong, "\n".join(map(str, wrong))
        for token in (served.admin_token, api_token):
            asyncio.run(asyncio.wait_for(socket_during_outage(served.url, token, run["id"]), 120))
    finally:
        set_available(admin, served.db_url, True)
    wait_until(lambda: served.get("/v1/runs", api_token).status_code == 200, 60, message="the store is back")
    assert "Traceback" not in served.server.log()


async def socket_during_outage(url: str, token: str, run_id: str) -> None:
    """A socket says the database is down: refused at authentication with a reason and close code 1011, or, when
    the token is still vouched for, each subscription and command answered 503 (the connection stays)."""
    async with connect(ws_url(url), additional_headers={"Authorization": f"Bearer {token}"}) as conn:
        first = json.loads(await asyncio.wait_for(conn.recv(), 60))
        if first["type"] == "error":
            assert first["status"] == 1011 and "database" in first["detail"], first
            await asyncio.wait_for(conn.wait_closed(), 60)
            assert conn.close_code == 1011, conn.close_code
            return
        assert first["type"] == "welcome", first
        for message in (
            {"type": "subscribe", "run": run_id, "since": 0},
            {"type": "subscribe", "all": True},
            {"type": "start", "pipeline": "ok"},
            {"type": "rerun", "run": run_id},
            {"type": "cancel", "run": run_id},
        ):
            await conn.send(json.dumps({**message, "id": "m"}))
            reply = json.loads(await asyncio.wait_for(conn.recv(), 60))
            assert (reply["type"], reply["status"]) == ("error", 503) and "database" in reply["detail"], (
                message,
                reply,
            )
        await conn.send('{"type": "ping", "id": "p"}')
        assert json.loads(await asyncio.wait_for(conn.recv(), 60)) == {"type": "pong", "id": "p"}
