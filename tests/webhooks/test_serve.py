"""The whole path in a real `odin serve` process: a GitHub push delivery starts the run at once (no poll), and the
commit gets its check runs from the notifier `odin serve` starts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.git import GitRemote
from tests.support.server import OdinServer
from tests.support.wait import wait_until
from tests.webhooks.fake_forges import FakeGitHubChecks
from tests.webhooks.fake_receivers import FakeSlack
from tests.webhooks.support import ALIASES, HELLO, SECRET, load, point_at, signed

PASSWORD = "correct-horse-battery"


@pytest.fixture
def provider() -> Iterator[FakeGitHubChecks]:
    fake = FakeGitHubChecks(token="ghs_statustoken").start()
    yield fake
    fake.stop()


def test_odin_serve_runs_a_pushed_commit_from_its_webhook_and_reports_back(
    seeded_remote: GitRemote, provider: FakeGitHubChecks, tmp_path: Path
) -> None:
    env = {
        "ODIN_REPO": seeded_remote.url,
        "ODIN_POLL_INTERVAL": "3600",  # only the webhook can make this run happen within the test's deadline
        "ODIN_ADMIN_PASSWORD": PASSWORD,
        "ODIN_WEBHOOK_SECRET": "env:ACME_HOOK_SECRET",
        "ACME_HOOK_SECRET": SECRET,
        "ODIN_REPO_ALIASES": ",".join(ALIASES),
        "ODIN_STATUS_PROVIDER": "github",
        "ODIN_STATUS_API_URL": provider.url,
        "ODIN_STATUS_TOKEN": "env:ACME_STATUS_TOKEN",
        "ACME_STATUS_TOKEN": "ghs_statustoken",
        "ODIN_PUBLIC_URL": "https://odin.acme.example",
    }
    with OdinServer(tmp_path / "state", env) as server:
        wait_until(lambda: "first sync" in server.log(), 30)
        before = seeded_remote.head
        sha = seeded_remote.commit({"train/main.yml": HELLO.format(name="train", marker="serve")})
        raw, headers = signed("github", point_at("github", load("github", "push"), after=sha, before=before))
        assert httpx.post(f"{server.url}/webhooks/github", content=raw, headers=headers).status_code == 202
        bad = httpx.post(
            f"{server.url}/webhooks/github", content=raw, headers={**headers, "X-Hub-Signature-256": "sha256=00"}
        )
        assert bad.status_code == 401
        token = httpx.post(f"{server.url}/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()
        auth = {"Authorization": f"Bearer {token['access_token']}"}

        def runs() -> list[dict[str, object]]:
            return list(httpx.get(f"{server.url}/v1/runs", params={"commit": sha}, headers=auth).json()["items"])

        [run] = wait_until(runs, 15, message="the pushed commit's run")
        assert run["trigger"] == "webhook" and run["pipeline"] == "train"
        wait_until(lambda: [c.get("conclusion") for c in provider.named("odin/train")] == ["success"], 30)
        [check] = provider.named("odin/train", sha)
        assert check["details_url"] == f"https://odin.acme.example/console/runs/{run['id']}"
        assert check["external_id"] == run["id"] and "| `hi` | succeeded | 1 |" in check["output"]["summary"]
        assert provider.hits and all(h.headers["authorization"] == "Bearer ghs_statustoken" for h in provider.hits)
        log = server.log()
        assert (
            "webhook github delivery d9a5b0a0-12c1-11ef-8f0e-3e1a2b4c5d6e from 127.0.0.1 rejected (bad_signature)"
            in log
        )
        assert SECRET not in log and "ghs_statustoken" not in log
        schema = httpx.get(f"{server.url}/schema/openapi.json").json()
        assert {"/webhooks/github", "/webhooks/generic"} <= set(schema["paths"])
        assert json.dumps(schema).count("webhookGithub") == 1


@pytest.mark.slow  # a real `odin serve` and a poll: some 20 s on a loaded machine
def test_odin_serve_sends_a_runs_notifications_and_shows_them_as_run_events(
    seeded_remote: GitRemote, tmp_path: Path
) -> None:
    slack = FakeSlack().start()
    env = {
        "ODIN_REPO": seeded_remote.url,
        "ODIN_POLL_INTERVAL": "1",
        "ODIN_ADMIN_PASSWORD": PASSWORD,
        "ODIN_NOTIFY_SLACK": slack.url,
        "ODIN_PUBLIC_URL": "https://odin.acme.example",
    }
    try:
        with OdinServer(tmp_path / "state", env) as server:
            wait_until(lambda: "first sync" in server.log(), 30)
            notify = "notify:\n  - on: [success]\n    slack: {webhook: env:ODIN_NOTIFY_SLACK}\n"
            sha = seeded_remote.commit({"train/main.yml": HELLO.format(name="train", marker="notify") + notify})
            token = httpx.post(f"{server.url}/v1/auth/token", json={"username": "admin", "password": PASSWORD}).json()
            auth = {"Authorization": f"Bearer {token['access_token']}"}

            def runs() -> list[dict[str, object]]:
                return list(httpx.get(f"{server.url}/v1/runs", params={"commit": sha}, headers=auth).json()["items"])

            [run] = wait_until(runs, 30, message="the pushed commit's run")
            wait_until(lambda: slack.hits, 30, message="Slack notified")
            assert slack.hits[0].body["text"].startswith(f"train: run {run['id']} succeeded")

            def notify_events() -> list[dict[str, object]]:
                found = httpx.get(f"{server.url}/v1/runs/{run['id']}/events", headers=auth).json()["items"]
                return [e for e in found if str(e["kind"]).startswith("notify.")]

            [event] = wait_until(notify_events, 15, message="the notification recorded")
            assert event["kind"] == "notify.sent" and event["data"]["channel"] == "slack"
            assert slack.url not in server.log()
    finally:
        slack.stop()
