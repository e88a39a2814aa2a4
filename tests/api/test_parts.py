"""The API's parts on their own: the login rate limiter, key configuration, the WebSocket hub's queues."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from odin.api.auth.keys import KeyConfigError, token_keys
from odin.api.auth.ratelimit import RateLimiter
from odin.api.auth.tokens import TokenInvalid, issue, verify
from odin.api.ws.hub import Connection, Subscription, event_message, wrap
from odin.controller.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_allows_a_burst_then_refills_per_key() -> None:
    clock = Clock()
    limiter = RateLimiter(6, clock=clock)  # 6 a minute: one every 10 s after the burst
    assert [limiter.acquire("k") for _ in range(6)] == [None] * 6
    wait = limiter.acquire("k")
    assert wait is not None and 9.9 < wait <= 10.0
    assert limiter.acquire("other") is None, "buckets are per key"
    clock.now += 10.0
    assert limiter.acquire("k") is None and limiter.acquire("k") is not None


def test_rate_limiter_windows_and_refunds() -> None:
    clock = Clock()
    limiter = RateLimiter(3, clock=clock, window=300.0)  # 3 per 5 minutes: one every 100 s after the burst
    for _ in range(5):
        assert limiter.acquire("alice") is None
        limiter.refund("alice")  # successes give their attempt back: the owner never runs out
    assert [limiter.acquire("alice") for _ in range(3)] == [None] * 3
    wait = limiter.acquire("alice")
    assert wait is not None and 99.0 < wait <= 100.0
    limiter.refund("nobody-seen")  # nothing taken, nothing to give back
    assert "nobody-seen" not in limiter._buckets


def test_rate_limiter_forgets_refilled_buckets() -> None:
    clock = Clock()
    limiter = RateLimiter(60, clock=clock, max_keys=10)
    for i in range(10):
        limiter.acquire(i)
    clock.now += 120
    limiter.acquire("new")  # over max_keys: the full buckets are dropped
    assert len(limiter._buckets) == 1


def pem_pair(private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, directory: Path) -> tuple[Path, Path]:
    priv = directory / "key.pem"
    pub = directory / "key.pub"
    priv.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pub.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return priv, pub


@pytest.mark.parametrize("algorithm", ["RS256", "EdDSA"])
def test_asymmetric_keys_sign_and_verify(tmp_path: Path, algorithm: str) -> None:
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS256"
        else (ed25519.Ed25519PrivateKey.generate())
    )
    priv, pub = pem_pair(key, tmp_path)
    settings = Settings(data_dir=tmp_path, jwt_algorithm=algorithm, jwt_private_key_file=priv, jwt_public_key_file=pub)
    keys = token_keys(settings)
    token, _ = issue(keys, subject="a", role="admin", ttl=60, user_id=1, generation=0)
    assert verify(keys, token).sub == "a"
    hs = token_keys(Settings(data_dir=tmp_path / "hs", jwt_secret="s" * 40))  # type: ignore[arg-type]
    with pytest.raises(TokenInvalid):
        verify(keys, issue(hs, subject="a", role="admin", ttl=60, user_id=1, generation=0)[0])


def test_unusable_key_settings_say_what_to_fix(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigError, match="at least 32 bytes"):
        token_keys(Settings(data_dir=tmp_path, jwt_secret="short"))  # type: ignore[arg-type]
    with pytest.raises(KeyConfigError, match="ODIN_JWT_PRIVATE_KEY_FILE"):
        token_keys(Settings(data_dir=tmp_path, jwt_algorithm="RS256"))
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(KeyConfigError, match="unusable JWT key"):
        token_keys(
            Settings(
                data_dir=tmp_path,
                jwt_algorithm="RS256",
                jwt_private_key_file=tmp_path / "bad.pem",
                jwt_public_key_file=tmp_path / "bad.pem",
            )
        )
    generated = token_keys(Settings(data_dir=tmp_path / "gen"))
    assert (tmp_path / "gen" / "jwt-secret").stat().st_mode & 0o777 == 0o600
    assert token_keys(Settings(data_dir=tmp_path / "gen")).signing_key == generated.signing_key


def event(event_id: int, run: str = "r", sha: str | None = "abcdef0123") -> dict[str, object]:
    return {
        "id": event_id,
        "time": None,
        "kind": "task.status",
        "run_id": run,
        "task": "t",
        "commit_sha": sha,
        "data": {},
    }


def test_subscriptions_match_runs_commit_prefixes_or_everything() -> None:
    assert Subscription("s", run="r").matches(event(1))
    assert not Subscription("s", run="x").matches(event(1))
    assert Subscription("s", commit="abcdef0").matches(event(1))
    assert not Subscription("s", commit="abcdef1").matches(event(1))
    assert not Subscription("s", commit="abcdef0").matches(event(1, sha=None))
    assert Subscription("s", all=True).matches(event(1, sha=None))


def test_a_connection_gets_each_event_once_and_a_slow_one_is_marked_too_slow() -> None:
    async def scenario() -> None:
        conn = Connection(queue_size=3)
        conn.subscriptions["a"] = Subscription("a", all=True)
        conn.subscriptions["b"] = Subscription("b", run="r")
        conn.offer(event(1), event_message(event(1)))
        conn.deliver(1, event_message(event(1)))
        assert conn.waiting == 1, "an event matching two subscriptions, and replayed, is sent once"
        conn.hold()
        conn.offer(event(2), "two")
        conn.deliver(3, "three")  # replayed while held: goes first
        conn.release()
        assert (await conn.take(10))[1:] == ["three", "two"]
        for i in range(10, 14):
            conn.offer(event(i), f"e{i}")
        assert conn.too_slow.is_set() and conn.waiting == 3

    asyncio.run(scenario())


def test_waiting_events_leave_as_one_message() -> None:
    one, two = event_message(event(1)), event_message(event(2))
    assert json.loads(wrap([one])) == {"type": "event", "event": json.loads(one)}
    assert json.loads(wrap([one, two]))["events"] == [json.loads(one), json.loads(two)]


def test_verified_session_tokens_are_remembered_until_they_expire(tmp_path: Path) -> None:
    import time

    from odin.api.auth.middleware import Authenticator
    from odin.api.auth.standing import Standings
    from odin.api.auth.tokens import Claims, TokenKeys
    from odin.api.auth.users import Role, create_user
    from odin.controller.store.db import create_db_engine, migrate

    db = create_db_engine(f"sqlite:///{tmp_path / 'odin.db'}")
    migrate(db)
    uid = create_user(db, "a", "a-long-password", Role.MEMBER)
    keys = TokenKeys.hs256(b"k" * 40)
    auth = Authenticator(keys, None, Standings(db, 60), max_ttl=3600)
    token, _ = issue(keys, subject="a", role="member", ttl=60, user_id=uid, generation=0)
    first = asyncio.run(auth.authenticate(token))
    cached = auth._verified[token]
    assert asyncio.run(auth.authenticate(token)) == first and auth._verified[token] is cached, "verified once"
    stale, _ = issue(keys, subject="a", role="member", ttl=-120, user_id=uid, generation=0)  # beyond the leeway
    auth._verified[stale] = Claims("a", "member", "j", int(time.time()) - 120, uid, 0)
    with pytest.raises(TokenInvalid, match="expired"):
        asyncio.run(auth.authenticate(stale))
    assert stale not in auth._verified
    with pytest.raises(TokenInvalid):
        asyncio.run(auth.authenticate(token[:-2] + "xx"))
    db.dispose()
