"""Authentication and authorisation over real HTTP: logins, forged and broken tokens, API tokens, roles, users."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from odin.controller.store.db import create_db_engine
from odin.controller.store.models import API_TOKENS
from tests.api.conftest import JWT_SECRET, PASSWORD, Served, start_server
from tests.support.server import BIN
from tests.support.wait import wait_until


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": "admin",
        "role": "admin",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "iss": "odin",
        "aud": "odin-api",
        "jti": uuid.uuid4().hex,
        "kind": "access",
        "uid": 1,  # the first user: admin
        "gen": 0,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_by_hand(payload: dict[str, Any], key: bytes) -> str:
    """An HS256 JWT signed with any bytes as the key (pyjwt rightly refuses a PEM key as an HMAC secret)."""
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def test_login_issues_a_token_with_the_required_claims(served: Served) -> None:
    r = httpx.post(f"{served.url}/v1/auth/token", json={"username": "admin", "password": PASSWORD})
    assert r.status_code == 200
    body = r.json()
    assert (body["token_type"], body["role"], body["expires_in"]) == ("bearer", "admin", 3600)
    decoded = jwt.decode(body["access_token"], JWT_SECRET, algorithms=["HS256"], audience="odin-api", issuer="odin")
    assert {"sub", "role", "iat", "exp", "iss", "aud", "jti", "kind", "uid", "gen"} <= decoded.keys()
    me = served.get("/v1/auth/whoami", token=body["access_token"]).json()
    assert (me["username"], me["role"], me["token_kind"]) == ("admin", "admin", "session")


@pytest.mark.parametrize(
    "body",
    [{"username": "admin", "password": "wrong"}, {"username": "nobody-at-all", "password": "whatever-it-is"}],
)
def test_wrong_credentials_get_the_same_401(served: Served, body: dict[str, str]) -> None:
    r = httpx.post(f"{served.url}/v1/auth/token", json=body)
    assert r.status_code == 401 and r.json()["detail"] == "wrong username or password"


@pytest.mark.parametrize(
    "body",
    [{"username": "admin"}, {"username": "admin", "password": PASSWORD, "otp": 1}, {"username": 1, "password": 2}],
)
def test_malformed_logins_are_400(served: Served, body: dict[str, Any]) -> None:
    assert httpx.post(f"{served.url}/v1/auth/token", json=body).status_code == 400


def forged(kind: str) -> str:
    if kind == "expired":
        return jwt.encode(claims(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200), JWT_SECRET, "HS256")
    if kind == "none":
        return jwt.encode(claims(), key="", algorithm="none")
    if kind == "other-secret":
        return jwt.encode(claims(), "another-secret-of-at-least-32-bytes-long", "HS256")
    if kind == "wrong-audience":
        return jwt.encode(claims(aud="someone-else"), JWT_SECRET, "HS256")
    if kind == "wrong-issuer":
        return jwt.encode(claims(iss="evil"), JWT_SECRET, "HS256")
    if kind == "no-jti":
        return jwt.encode(claims(jti=None), JWT_SECRET, "HS256")
    if kind == "wrong-kind":  # the role claim is not checked: authority comes from the store
        return jwt.encode(claims(kind="refresh"), JWT_SECRET, "HS256")
    if kind == "not-yet-valid":
        return jwt.encode(claims(nbf=int(time.time()) + 3600), JWT_SECRET, "HS256")
    if kind == "hs512":
        return jwt.encode(claims(), JWT_SECRET * 2, "HS512")
    if kind == "garbage":
        return "not.a.jwt"
    if kind == "unknown-api-token":
        return "odin_" + "A" * 43
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "expired",
        "none",
        "other-secret",
        "wrong-audience",
        "wrong-issuer",
        "no-jti",
        "wrong-kind",
        "not-yet-valid",
        "hs512",
        "garbage",
        "unknown-api-token",
    ],
)
def test_bad_tokens_are_401_with_a_reason(served: Served, kind: str) -> None:
    r = served.get("/v1/runs", token=forged(kind))
    assert r.status_code == 401, r.text
    detail = r.json()["detail"]
    assert detail and "Traceback" not in detail
    if kind == "expired":
        assert "expired" in detail


def test_a_tampered_token_is_401(served: Served) -> None:
    header, payload, signature = served.admin_token.split(".")
    lifted = b64(json.dumps(claims(sub="mallory")).encode())
    assert served.get("/v1/runs", token=f"{header}.{lifted}.{signature}").status_code == 401
    flipped = signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")
    assert served.get("/v1/runs", token=f"{header}.{payload}.{flipped}").status_code == 401


@pytest.mark.parametrize("header", ["", "Bearer", "Basic YWRtaW46cGFzcw==", "bearer-ish token"])
def test_missing_or_wrong_scheme_is_401(served: Served, header: str) -> None:
    r = httpx.get(f"{served.url}/v1/runs", headers={"Authorization": header} if header else {})
    assert r.status_code == 401 and "bearer token" in r.json()["detail"]


def test_every_v1_route_but_login_needs_a_token_and_operations_do_not(served: Served) -> None:
    doc = httpx.get(f"{served.url}/schema/openapi.json").json()
    for path, operations in doc["paths"].items():
        for method in operations:
            concrete = path.replace("{run_id}", "x").replace("{task}", "t").replace("{token_id}", "1")
            concrete = concrete.replace("{username}", "u").replace("{sha}", "abcdef0").replace("{name}", "ok")
            concrete = concrete.replace("{path}", "f")
            r = httpx.request(method.upper(), f"{served.url}{concrete}", json={})
            # The login, and the WebSocket's AsyncAPI document (public like the OpenAPI one), need no token.
            if path.startswith("/v1/") and path not in {"/v1/auth/token", "/v1/ws/schema"}:
                assert r.status_code == 401, (method, path, r.status_code)
            elif path.startswith("/webhooks/"):
                # No bearer token for providers: they prove themselves with a signature, which this request lacks.
                assert r.status_code == 401 and "bearer" not in r.text.lower(), (method, path, r.text)
                assert r.json()["status"] == "rejected"
            else:
                assert r.status_code != 401, (method, path)


def test_api_tokens_are_shown_once_stored_hashed_and_revocable(served: Served) -> None:
    r = served.post("/v1/auth/tokens", json={"name": "ci", "role": "member", "expires_in_days": 30})
    assert r.status_code == 201, r.text
    created = r.json()
    token = created["token"]
    assert token.startswith("odin_") and len(token) > 40 and created["prefix"] == token[:12]
    assert created["role"] == "member" and created["active"] is True
    me = served.get("/v1/auth/whoami", token=token).json()
    assert (me["username"], me["role"], me["token_kind"]) == ("admin", "member", "api")
    listed = served.get("/v1/auth/tokens").json()["items"]
    mine = next(t for t in listed if t["id"] == created["id"])
    assert "token" not in mine and token not in json.dumps(listed)
    assert mine["last_used_at"] is not None
    engine = create_db_engine(served.db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.select(API_TOKENS).where(API_TOKENS.c.id == created["id"])).one()
            assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
            dump = json.dumps([list(map(str, r)) for r in conn.execute(sa.select(API_TOKENS))])
            assert token not in dump
    finally:
        engine.dispose()
    revoked = served.request("DELETE", f"/v1/auth/tokens/{created['id']}")
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    r = served.get("/v1/runs", token=token)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert served.request("DELETE", "/v1/auth/tokens/999999").status_code == 404


def test_an_api_token_revoked_by_another_replica_is_refused_within_the_cache_bound(served: Served) -> None:
    """The server remembers a verified API token for ODIN_AUTH_CACHE_SECONDS (1 s by default); a revocation it is not
    told about (another replica, `odin`, the database) is refused by every request made once that has passed since
    the token was verified."""
    created = served.post("/v1/auth/tokens", json={"name": "elsewhere"}).json()
    assert served.get("/v1/runs", token=created["token"]).status_code == 200  # verified, so remembered
    verified_by = time.monotonic()  # the server read the store before answering
    engine = create_db_engine(served.db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                API_TOKENS.update().where(API_TOKENS.c.id == created["id"]).values(revoked_at=datetime.now(UTC))
            )
    finally:
        engine.dispose()
    wait_until(lambda: time.monotonic() >= verified_by + 1.0, 5, message="the cache bound passes")
    r = served.get("/v1/runs", token=created["token"])
    assert r.status_code == 401 and "revoked" in r.json()["detail"], r.text


def test_an_expired_api_token_is_refused(served: Served) -> None:
    created = served.post("/v1/auth/tokens", json={"name": "short", "expires_in_days": 1}).json()
    engine = create_db_engine(served.db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                API_TOKENS.update()
                .where(API_TOKENS.c.id == created["id"])
                .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
    finally:
        engine.dispose()
    r = served.get("/v1/runs", token=created["token"])
    assert r.status_code == 401 and "expired" in r.json()["detail"]


def test_api_tokens_cannot_mint_tokens_nor_exceed_their_user(served: Served) -> None:
    viewer = served.user("vera", "viewer")
    r = served.post("/v1/auth/tokens", token=viewer, json={"name": "x", "role": "member"})
    assert r.status_code == 403 and "more than your role" in r.json()["detail"]
    api = served.post("/v1/auth/tokens", token=viewer, json={"name": "ci"}).json()
    assert api["role"] == "viewer"
    r = served.post("/v1/auth/tokens", token=api["token"], json={"name": "again"})
    assert r.status_code == 403 and "cannot create API tokens" in r.json()["detail"]
    assert served.get("/v1/auth/tokens", token=viewer, params={"all": "true"}).status_code == 403
    admin_token = served.post("/v1/auth/tokens", json={"name": "admin-ci"}).json()
    r = served.request("DELETE", f"/v1/auth/tokens/{admin_token['id']}", token=viewer)
    assert r.status_code == 404, "another user's token is not even shown to exist"
    everyone = served.get("/v1/auth/tokens", params={"all": "true"}).json()["items"]
    assert {"admin", "vera"} <= {t["username"] for t in everyone}


def test_a_users_tokens_follow_the_user(served: Served) -> None:
    member = served.user("mo", "member")
    api = served.post("/v1/auth/tokens", token=member, json={"name": "ci"}).json()
    assert served.get("/v1/auth/whoami", token=api["token"]).json()["role"] == "member"
    served.request("PATCH", "/v1/users/mo", json={"role": "viewer"})
    assert served.get("/v1/auth/whoami", token=api["token"]).json()["role"] == "viewer"
    served.request("PATCH", "/v1/users/mo", json={"disabled": True})
    r = served.get("/v1/runs", token=api["token"])
    assert r.status_code == 401 and "disabled" in r.json()["detail"]
    assert (
        httpx.post(f"{served.url}/v1/auth/token", json={"username": "mo", "password": "a-long-password"}).status_code
        == 401
    )


def test_viewers_read_but_cannot_change_anything(served: Served) -> None:
    viewer = served.user("vic", "viewer")
    run = served.wait_run(served.start("ok")["id"])
    assert served.get(f"/v1/runs/{run['id']}", token=viewer).status_code == 200
    for method, path, body in [
        ("POST", "/v1/runs", {"pipeline": "ok"}),
        ("POST", f"/v1/runs/{run['id']}/rerun", {}),
        ("POST", f"/v1/runs/{run['id']}/cancel", None),
        ("PUT", "/v1/pipelines/ok/files/x.txt", {"content": "x"}),
        ("GET", "/v1/users", None),
        ("POST", "/v1/users", {"username": "evil", "password": "password123", "role": "admin"}),
        ("PATCH", "/v1/users/vic", {"role": "admin"}),
    ]:
        r = served.request(method, path, token=viewer, json=body)
        assert r.status_code == 403, (method, path, r.text)
        assert "role" in r.json()["detail"]


def test_admins_manage_users_and_never_see_password_hashes(served: Served) -> None:
    r = served.post(
        "/v1/users", json={"username": "uma", "password": "long-enough-pw", "role": "member", "email": "u@x.io"}
    )
    assert r.status_code == 201 and r.json()["email"] == "u@x.io"
    assert served.post("/v1/users", json={"username": "uma", "password": "long-enough-pw"}).status_code == 409
    weak = served.post("/v1/users", json={"username": "weak", "password": "short"})
    assert weak.status_code == 422 and "at least" in weak.json()["detail"]
    bad = served.post("/v1/users", json={"username": "../etc", "password": "long-enough-pw"})
    assert bad.status_code == 422
    assert (
        served.post("/v1/users", json={"username": "x", "password": "long-enough-pw", "role": "root"}).status_code
        == 400
    )
    assert served.get("/v1/users/nobody").status_code == 404
    assert served.request("PATCH", "/v1/users/nobody", json={"role": "viewer"}).status_code == 404
    updated = served.request("PATCH", "/v1/users/uma", json={"password": "another-long-pw"}).json()
    assert updated["username"] == "uma"
    assert served.login("uma", "another-long-pw")
    listing = served.get("/v1/users").text
    assert "uma" in listing and "argon2" not in listing and "password" not in listing
    last = served.request("PATCH", "/v1/users/admin", json={"role": "viewer"})
    assert last.status_code == 409 and "last enabled admin" in last.json()["detail"]
    assert served.request("PATCH", "/v1/users/admin", json={"disabled": True}).status_code == 409


# -- servers configured differently -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("limited")
    s = start_server(tmp, f"sqlite:///{tmp / 'odin.db'}", "sqlite", {"ODIN_LOGIN_ATTEMPTS_PER_MINUTE": "3"})
    try:
        yield s
    finally:
        s.server.stop()


def test_login_attempts_are_rate_limited_per_user_and_address(limited: Served) -> None:
    url = f"{limited.url}/v1/auth/token"
    # The fixture's own login spent one attempt of admin's budget of 3 from this address.
    codes = [httpx.post(url, json={"username": "admin", "password": "guess"}).status_code for _ in range(2)]
    assert codes == [401, 401]
    blocked = httpx.post(url, json={"username": "admin", "password": PASSWORD})
    assert blocked.status_code == 429, "even the right password waits once the budget is spent"
    assert int(blocked.headers["retry-after"]) >= 1 and "too many" in blocked.json()["detail"]
    assert httpx.post(url, json={"username": "someone-else", "password": "guess"}).status_code == 401


@pytest.fixture(scope="module")
def rs256(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, bytes, rsa.RSAPrivateKey]]:
    tmp = tmp_path_factory.mktemp("rs256")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp / "private.pem").write_bytes(private_pem)
    (tmp / "public.pem").write_bytes(public_pem)
    env = {
        "ODIN_JWT_ALGORITHM": "RS256",
        "ODIN_JWT_PRIVATE_KEY_FILE": str(tmp / "private.pem"),
        "ODIN_JWT_PUBLIC_KEY_FILE": str(tmp / "public.pem"),
    }
    s = start_server(tmp, f"sqlite:///{tmp / 'odin.db'}", "sqlite", env)
    try:
        yield s, public_pem, key
    finally:
        s.server.stop()


def test_rs256_tokens_work_and_hs_rs_confusion_is_refused(rs256: tuple[Served, bytes, rsa.RSAPrivateKey]) -> None:
    served, public_pem, key = rs256
    assert jwt.get_unverified_header(served.admin_token)["alg"] == "RS256"
    assert served.get("/v1/auth/whoami").json()["username"] == "admin"
    assert served.get("/v1/runs", token=jwt.encode(claims(), key, "RS256")).status_code == 200
    confused = hs256_by_hand(claims(), public_pem)
    r = served.get("/v1/runs", token=confused)
    assert r.status_code == 401, "an HS256 token keyed with the public key must not pass as RS256"
    assert served.get("/v1/runs", token=jwt.encode(claims(), JWT_SECRET, "HS256")).status_code == 401
    assert served.get("/v1/runs", token=jwt.encode(claims(), key="", algorithm="none")).status_code == 401


def test_a_missing_key_file_stops_the_server_with_a_clear_message(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    env.update(
        ODIN_DATA_DIR=str(tmp_path / "state"),
        ODIN_DATABASE_URL=f"sqlite:///{tmp_path}/o.db",
        ODIN_PORT="0",
        ODIN_JWT_ALGORITHM="EdDSA",
        ODIN_JWT_PRIVATE_KEY_FILE=str(tmp_path / "missing.pem"),
        ODIN_JWT_PUBLIC_KEY_FILE=str(tmp_path / "missing.pub"),
    )
    done = subprocess.run(
        [str(BIN / "odin"), "serve"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1
    assert "cannot read a JWT key file" in done.stderr and "missing.pem" in done.stderr
