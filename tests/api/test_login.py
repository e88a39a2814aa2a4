"""Logging in over real HTTP: a limit per account across addresses, forwarded headers believed only from configured
proxies, and password hashes upgraded when the argon2 parameters change."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from odin.api.auth.passwords import needs_rehash
from odin.controller.store.db import create_db_engine
from odin.controller.store.models import USERS
from tests.api.conftest import Served, start_server

PROXY = "127.0.0.2"  # a reverse proxy in front of Odin, as far as the server can tell (any 127/8 address is local)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("guarded")
    env = {
        "ODIN_LOGIN_ATTEMPTS_PER_MINUTE_PER_IP": "4",
        "ODIN_LOGIN_FAILURES_PER_ACCOUNT": "5",
        "ODIN_TRUSTED_PROXIES": PROXY,
    }
    s = start_server(tmp, f"sqlite:///{tmp / 'odin.db'}", "sqlite", env)
    try:
        yield s
    finally:
        s.server.stop()


def create(served: Served, username: str, password: str) -> None:
    """A user, without logging in from 127.0.0.1 (whose budget of 4 attempts the fixture's admin login began)."""
    r = served.post("/v1/users", json={"username": username, "password": password, "role": "member"})
    assert r.status_code == 201, r.text


def login_from(served: Served, address: str, username: str, password: str, **headers: str) -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30) as http:
        body = {"username": username, "password": password}
        return http.post(f"{served.url}/v1/auth/token", json=body, headers=headers)


def test_failures_against_one_account_are_limited_whatever_the_address(guarded: Served) -> None:
    create(guarded, "target", "the-right-password")
    create(guarded, "bystander", "the-right-password")
    for i in range(8):  # successes do not count against the account
        assert login_from(guarded, f"127.0.3.{i}", "bystander", "the-right-password").status_code == 200
    codes = [login_from(guarded, f"127.0.1.{i}", "target", "a-guess").status_code for i in range(1, 6)]
    assert codes == [401] * 5
    blocked = login_from(guarded, "127.0.1.6", "target", "another-guess")
    assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
    assert login_from(guarded, "127.0.1.7", "target", "the-right-password").status_code == 429
    assert login_from(guarded, "127.0.1.8", "bystander", "the-right-password").status_code == 200


def test_forwarded_addresses_from_an_untrusted_peer_are_ignored(guarded: Served) -> None:
    # From loopback, which uvicorn trusts by default: Odin must not. Its budget is 4 a minute (the fixture's admin
    # login took one, which may have refilled since), so the last two of six attempts are refused.
    codes = [
        login_from(guarded, "127.0.0.1", f"nobody-{i}", "guess", **{"X-Forwarded-For": f"10.9.{i}.1"}).status_code
        for i in range(6)
    ]
    assert codes[-2:] == [429, 429], f"rotating X-Forwarded-For must not make a new client of each request: {codes}"


def test_forwarded_addresses_from_a_trusted_proxy_are_the_clients(guarded: Served) -> None:
    def via_proxy(client: str) -> int:
        headers = {"X-Forwarded-For": client}
        return login_from(guarded, PROXY, f"someone-{client}", "guess", **headers).status_code

    assert [via_proxy("10.0.0.1") for _ in range(5)] == [401] * 4 + [429]
    assert via_proxy("10.0.0.2") == 401, "another client behind the proxy has its own budget"


def test_a_hash_with_older_parameters_is_upgraded_at_login(guarded: Served) -> None:
    create(guarded, "old-timer", "an-old-password")
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("an-old-password")
    engine = create_db_engine(guarded.db_url)
    try:
        with engine.begin() as conn:
            conn.execute(USERS.update().where(USERS.c.username == "old-timer").values(password_hash=weak))
        assert needs_rehash(weak)
        token = login_from(guarded, "127.0.2.1", "old-timer", "an-old-password").json()["access_token"]
        with engine.connect() as conn:
            stored = conn.execute(sa.select(USERS.c.password_hash).where(USERS.c.username == "old-timer")).scalar_one()
        assert stored != weak and not needs_rehash(stored), "the hash now has the current parameters"
        assert guarded.get("/v1/auth/whoami", token=token).status_code == 200, "a rehash is not a password change"
        assert login_from(guarded, "127.0.2.2", "old-timer", "an-old-password").status_code == 200
    finally:
        engine.dispose()
