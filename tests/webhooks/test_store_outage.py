"""While the store cannot record a delivery the answer is 503 with Retry-After, never a 2xx; once it is back,
deliveries are accepted again and the poller catches up. Real Postgres, made unreachable for real."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.support.postgres import scratch_database
from tests.support.wait import wait_until
from tests.webhooks.conftest import OdinFactory
from tests.webhooks.support import HELLO, load, point_at, signed

pytestmark = pytest.mark.postgres


@pytest.fixture
def outage_db(postgres_admin_url: str) -> Iterator[tuple[str, sa.engine.Engine, str]]:
    with scratch_database(postgres_admin_url) as url:
        admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
        yield url, admin, sa.make_url(url).database or ""
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{sa.make_url(url).database}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def set_available(admin: sa.engine.Engine, name: str, available: bool) -> None:
    with admin.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if available else "false"}'))
        if not available:
            conn.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"), {"name": name}
            )


def test_503_while_the_store_is_down_then_the_poller_catches_up(
    odin_factory: OdinFactory, outage_db: tuple[str, sa.engine.Engine, str]
) -> None:
    url, admin, name = outage_db
    odin = odin_factory(url)
    before = odin.remote.head
    sha = odin.remote.commit({"train/main.yml": HELLO.format(name="train", marker="outage")})
    raw, headers = signed("github", point_at("github", load("github", "push"), after=sha, before=before))
    set_available(admin, name, False)
    down = odin.post("github", raw, headers)
    assert down.status_code == 503, down.text
    assert down.headers["retry-after"] == "5"
    assert down.json()["status"] == "unavailable"
    set_available(admin, name, True)
    up = wait_until(lambda: (r := odin.post("github", raw, headers)).status_code == 202 and r, 30)
    assert up.json()["status"] == "accepted", "the retry of a delivery refused with 503 is not a duplicate"
    [run] = wait_until(lambda: odin.runs(sha), 60, message="the commit runs once the store is back")
    assert run.pipeline == "train"
    assert len(odin.deliveries()) == 1
