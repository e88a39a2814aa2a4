"""A token's authority is what the store says now: disabling, demoting, password changes, logout, deleted users,
lifetimes and kinds, over real HTTP and real WebSockets (SQLite and Postgres)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa

from odin.api.client import ApiError, ConnectionLost, OdinWebSocket
from odin.controller.store.db import create_db_engine
from odin.controller.store.models import USERS
from tests.api.conftest import JWT_SECRET, Served

TIMEOUT = 30.0


def signed(**overrides: Any) -> str:
    """A token signed with the server's own secret: everything about it is right unless overridden."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "admin",
        "role": "admin",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "iss": "odin",
        "aud": "odin-api",
        "jti": uuid.uuid4().hex,
        "kind": "access",
        "uid": 1,
        "gen": 0,
    }
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, JWT_SECRET, "HS256")


def whoami(served: Served, token: str) -> httpx.Response:
    return served.get("/v1/auth/whoami", token=token)


def user_id(served: Served, username: str) -> int:
    engine = create_db_engine(served.db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.select(USERS.c.id).where(USERS.c.username == username)).scalar_one())
    finally:
        engine.dispose()


def test_a_disabled_users_session_is_refused_at_the_next_request(served: Served) -> None:
    token = served.user("dora", "member")
    assert served.post("/v1/runs", token=token, json={"pipeline": "ok"}).status_code == 201
    assert served.request("PATCH", "/v1/users/dora", json={"disabled": True}).status_code == 200
    refused = served.post("/v1/runs", token=token, json={"pipeline": "ok"})
    assert refused.status_code == 401 and "disabled" in refused.json()["detail"]
    assert served.request("PATCH", "/v1/users/dora", json={"disabled": False}).status_code == 200
    r = whoami(served, token)
    assert r.status_code == 401, "re-enabling a user does not revive the sessions that disabling ended"
    assert "log in again" in r.json()["detail"]
    assert whoami(served, served.login("dora", "a-long-password")).json()["role"] == "member"


def test_a_demoted_users_old_token_has_the_new_role(served: Served) -> None:
    token = served.user("demi", "member")
    assert whoami(served, token).json()["role"] == "member"
    assert served.request("PATCH", "/v1/users/demi", json={"role": "viewer"}).status_code == 200
    assert whoami(served, token).json()["role"] == "viewer"
    r = served.post("/v1/runs", token=token, json={"pipeline": "ok"})
    assert r.status_code == 403 and "you are viewer" in r.json()["detail"]
    served.request("PATCH", "/v1/users/demi", json={"role": "admin"})
    assert served.get("/v1/users", token=token).status_code == 200, "a promotion applies at once too"


def test_a_password_change_ends_every_session(served: Served) -> None:
    first, second = served.user("pat", "viewer"), served.login("pat", "a-long-password")
    assert whoami(served, first).status_code == 200 and whoami(served, second).status_code == 200
    assert served.request("PATCH", "/v1/users/pat", json={"password": "a-new-long-password"}).status_code == 200
    for token in (first, second):
        r = whoami(served, token)
        assert r.status_code == 401 and "password change" in r.json()["detail"]
    assert whoami(served, served.login("pat", "a-new-long-password")).status_code == 200


def test_logout_ends_the_session_and_everywhere_ends_them_all(served: Served) -> None:
    laptop, desktop, phone = served.user("lou", "member"), *(served.login("lou", "a-long-password") for _ in "ab")
    other = served.user("lou-colleague", "member")
    api = served.post("/v1/auth/tokens", token=laptop, json={"name": "ci"}).json()["token"]
    r = served.post("/v1/auth/logout", token=api)
    assert r.status_code == 403 and "revoke" in r.json()["detail"]
    assert served.post("/v1/auth/logout", token=laptop).status_code == 204
    r = whoami(served, laptop)
    assert r.status_code == 401 and "logged out" in r.json()["detail"]
    assert served.post("/v1/auth/logout", token=laptop).status_code == 401
    assert whoami(served, desktop).status_code == 200, "a logout ends the session it was made with, no other"
    r = served.post("/v1/auth/logout", token=desktop, params={"everywhere": "true"})
    assert r.status_code == 204, r.text
    for token in (desktop, phone):
        r = whoami(served, token)
        assert r.status_code == 401 and "logout" in r.json()["detail"]
    assert whoami(served, other).status_code == 200
    assert whoami(served, api).status_code == 200, "API tokens are revoked one by one, not by a logout"
    assert whoami(served, served.login("lou", "a-long-password")).status_code == 200


def test_a_signed_token_for_a_user_that_does_not_exist_is_refused(served: Served) -> None:
    assert whoami(served, signed()).status_code == 200, "the helper signs like the server"
    for token in (signed(sub="ghost", role="admin", uid=999_999), signed(uid=999_999)):
        r = whoami(served, token)
        assert r.status_code == 401 and "no longer exists" in r.json()["detail"]
    served.user("someone", "viewer")
    other = user_id(served, "someone")
    r = whoami(served, signed(uid=other))  # admin's name with another user's id: a deleted and re-created name
    assert r.status_code == 401 and "no longer exists" in r.json()["detail"]


def test_a_token_claiming_a_role_its_user_lacks_gets_the_users_role(served: Served) -> None:
    served.user("vince", "viewer")
    token = signed(sub="vince", role="admin", uid=user_id(served, "vince"))
    assert whoami(served, token).json()["role"] == "viewer"
    assert served.get("/v1/users", token=token).status_code == 403


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"exp": int(time.time()) + 10 * 24 * 3600}, "longer than this server allows"),
        ({"iat": int(time.time()) - 3000, "exp": int(time.time()) + 3000}, "longer than this server allows"),
        ({"iat": int(time.time()) + 3600, "exp": int(time.time()) + 3700}, "not yet valid"),
        ({"kind": "refresh"}, "not an access token"),
        ({"kind": None}, "kind"),
        ({"gen": None}, "gen"),
        ({"uid": "1"}, "integers"),
        ({"jti": "x" * 65}, "jti"),
        ({"jti": "a\u0000b"}, "jti"),
        ({"gen": 1}, "log in again"),
    ],
)
def test_lifetime_kind_and_generation_are_checked(served: Served, overrides: dict[str, Any], words: str) -> None:
    r = whoami(served, signed(**overrides))
    assert r.status_code == 401 and words in r.json()["detail"], r.text


def test_a_401_says_how_to_authenticate(served: Served) -> None:
    bare = httpx.get(f"{served.url}/v1/runs", timeout=30)
    assert bare.status_code == 401 and bare.headers["www-authenticate"] == 'Bearer realm="odin"'
    bad = served.get("/v1/runs", token=signed(kind="refresh"))
    challenge = bad.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="odin", error="invalid_token", error_description="')
    assert "not an access token" in challenge
    login = httpx.post(f"{served.url}/v1/auth/token", json={"username": "admin", "password": "wrong-one"}, timeout=30)
    assert login.status_code == 401 and login.headers["www-authenticate"].startswith("Bearer")


# -- the same rules on the WebSocket -------------------------------------------------------------------------------


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


async def closed_with(ws: OdinWebSocket) -> ConnectionLost:
    with pytest.raises(ConnectionLost) as lost:
        while True:
            await ws.next_event(TIMEOUT)
    return lost.value


AUTHORITY_LOST = {  # how a user's session loses its authority: (method, path, body or query)
    "disabled": ("PATCH", "/v1/users/{name}", {"disabled": True}),
    "password change": ("PATCH", "/v1/users/{name}", {"password": "another-long-password"}),
    "logged out": ("POST", "/v1/auth/logout", {}),
    "logout": ("POST", "/v1/auth/logout", {"everywhere": "true"}),  # everywhere: "ended by a logout"
}


@pytest.mark.parametrize("words", list(AUTHORITY_LOST))
def test_an_open_socket_closes_when_its_user_loses_authority(served: Served, words: str) -> None:
    name = f"sock-{uuid.uuid4().hex[:8]}"
    token = served.user(name, "member")
    method, path, data = AUTHORITY_LOST[words]

    def change() -> httpx.Response:
        if method == "PATCH":  # by an admin
            return served.request(method, path.format(name=name), json=data)
        return served.request(method, path, token, params=data)  # by the user themself

    async def scenario() -> None:
        async with await OdinWebSocket.connect(served.url, token) as ws:
            await ws.subscribe(all=True)
            assert (await asyncio.to_thread(change)).status_code in (200, 204)
            lost = await closed_with(ws)
            assert lost.code == 4401 and words in lost.reason
        with pytest.raises(ApiError) as refused:
            await OdinWebSocket.connect(served.url, token)
        assert refused.value.status == 4401

    run(scenario())


def test_a_sockets_commands_follow_the_users_current_role(served: Served) -> None:
    name = f"sock-{uuid.uuid4().hex[:8]}"
    token = served.user(name, "member")

    async def scenario() -> None:
        async with await OdinWebSocket.connect(served.url, token) as ws:
            assert ws.role == "member"
            r = await asyncio.to_thread(
                served.request, "PATCH", f"/v1/users/{name}", None, None, json={"role": "viewer"}
            )
            assert r.status_code == 200
            with pytest.raises(ApiError) as denied:
                await ws.start("ok")
            assert denied.value.status == 403 and "you are viewer" in denied.value.detail

    run(scenario())
