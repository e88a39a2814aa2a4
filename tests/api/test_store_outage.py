"""A database outage is a 503 with Retry-After on every route, login and token checks included; never a 500.

A real `odin serve` on its own Postgres database, which the test makes refuse connections (as in a failover).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

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
    ]
    set_available(admin, served.db_url, False)
    try:
        for method, path, token, body in requests:
            headers = {"Authorization": f"Bearer {token or served.admin_token}"} if path != "/v1/auth/token" else {}
            r = httpx.request(method, f"{served.url}{path}", json=body, headers=headers, timeout=60)
            assert r.status_code == 503, (method, path, r.status_code, r.text)
            assert r.headers.get("retry-after", "").isdigit(), (method, path, r.headers)
            assert "database" in r.json()["detail"], r.text
    finally:
        set_available(admin, served.db_url, True)
    wait_until(lambda: served.get("/v1/runs", api_token).status_code == 200, 60, message="the store is back")
    assert "Traceback" not in served.server.log()
