"""Helpers for webhook tests: recorded deliveries, signing them as each provider does, and an in-process Odin.

Deliveries live in `data/<provider>/<name>.json` as `{"headers": {...}, "body": {...}}`, shaped like what the providers
really send (see each file's `_note`). Tests point them at a real commit (`point_at`), sign them with the test secret
(`signed`) and send them over real HTTP to a real `Controller` + Litestar app served by uvicorn on a thread.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import Engine

from odin.api.app import build_context, create_app
from odin.controller.service import Controller
from odin.controller.settings import Settings
from odin.controller.store.models import COMMITS, EVENTS, RUNS, TASK_RUNS, WEBHOOK_DELIVERIES
from tests.support.git import GitRemote
from tests.support.server import free_port
from tests.support.wait import wait_until

DATA = Path(__file__).parent / "data"
SECRET = "whsec-test-0123456789abcdef"
OLD_SECRET = "whsec-old-fedcba9876543210"
ALIASES = [
    "git@github.com:acme/ml.git",  # matches the payloads' https/ssh/html forms after normalisation
    "https://gitlab.example.com/acme/ml",
    "https://gitea.example.com/acme/ml.git",
    "https://bitbucket.org/acme/ml.git",
    "ssh://git@bitbucket.example.com:7999/acme/ml.git",
]
PROVIDERS = ("github", "gitlab", "gitea", "bitbucket", "generic")

HELLO = "name: {name}\ntasks:\n  - {{name: hi, image: busybox, command: [sh, -c, 'echo {marker}']}}\n"


@dataclass
class Recorded:
    headers: dict[str, str]
    body: dict[str, Any]


def load(provider: str, name: str) -> Recorded:
    data = json.loads((DATA / provider / f"{name}.json").read_text())
    return Recorded(dict(data["headers"]), copy.deepcopy(data["body"]))


def point_at(provider: str, delivery: Recorded, *, after: str | None, before: str | None = None) -> Recorded:
    """The delivery with its push's commits replaced by real ones (the ref stays as recorded)."""
    body = delivery.body
    if provider in ("github", "gitlab", "gitea"):
        if after is not None:
            body["after"] = after
            if provider == "gitlab":
                body["checkout_sha"] = after
            if isinstance(body.get("head_commit"), dict):
                body["head_commit"]["id"] = after
        if before is not None:
            body["before"] = before
    elif provider == "bitbucket" and "push" in body:
        for change in body["push"]["changes"]:
            if change.get("new") and after is not None:
                change["new"]["target"]["hash"] = after
            if change.get("old") and before is not None:
                change["old"]["target"]["hash"] = before
    elif provider == "bitbucket":
        for change in body.get("changes", []):
            if after is not None:
                change["toHash"] = after
            if before is not None:
                change["fromHash"] = before
    elif provider == "generic" and after is not None:
        body["sha"] = after
    return delivery


def signature_headers(provider: str, raw: bytes, secret: str) -> dict[str, str]:
    """The headers a provider computes from the body and the hook's secret."""
    digest = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return {
        "github": {"X-Hub-Signature-256": f"sha256={digest}"},
        "gitlab": {"X-Gitlab-Token": secret},
        "gitea": {"X-Gitea-Signature": digest, "X-Hub-Signature-256": f"sha256={digest}"},
        "bitbucket": {"X-Hub-Signature": f"sha256={digest}"},
        "generic": {"X-Odin-Signature": f"sha256={digest}"},
    }[provider]


def signed(provider: str, delivery: Recorded, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(delivery.body).encode()
    return raw, {**delivery.headers, **signature_headers(provider, raw, secret)}


class Odin:
    """A Controller (local executor) and the API app, served by uvicorn on a thread, following `remote`."""

    def __init__(self, settings: Settings, remote: GitRemote) -> None:
        self.settings = settings
        self.remote = remote
        self.controller = Controller(settings)
        self.db: Engine = self.controller.db
        self.app = create_app(build_context(settings, self.controller))
        config = uvicorn.Config(self.app, host="127.0.0.1", port=settings.port, log_config=None, access_log=False)
        self.server = uvicorn.Server(config)
        self.url = f"http://127.0.0.1:{settings.port}"
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self._thread = threading.Thread(target=self.server.run, name="uvicorn-test", daemon=True)

    def start(self) -> Odin:
        self.controller.start()
        assert self.controller.wait_leading(60)
        assert self.repo.poller.wait_for_syncs(1, 60), "first sync (baseline)"
        self._thread.start()
        wait_until(lambda: self.server.started, 30, message="uvicorn started")
        return self

    def stop(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self._thread.join(30)
        self.controller.stop()

    @property
    def repo(self) -> Any:
        return self.controller.repo()

    # -- requests -------------------------------------------------------------------------------------------------
    def send(self, provider: str, delivery: Recorded, secret: str = SECRET) -> httpx.Response:
        raw, headers = signed(provider, delivery, secret)
        return self.http.post(f"/webhooks/{provider}", content=raw, headers=headers)

    def post(self, provider: str, raw: bytes, headers: Mapping[str, str]) -> httpx.Response:
        return self.http.post(f"/webhooks/{provider}", content=raw, headers=dict(headers))

    # -- the store ------------------------------------------------------------------------------------------------
    def rows(self, table: sa.Table, *where: Any) -> list[Any]:
        with self.db.connect() as conn:
            return list(conn.execute(sa.select(table).where(*where).order_by(table.c.id)).all())

    def runs(self, sha: str | None = None) -> list[Any]:
        with self.db.connect() as conn:
            q = sa.select(RUNS).order_by(RUNS.c.created_at, RUNS.c.id)
            if sha is not None:
                q = q.where(RUNS.c.commit_sha == sha)
            return list(conn.execute(q).all())

    def deliveries(self, *where: Any) -> list[Any]:
        return self.rows(WEBHOOK_DELIVERIES, *where)

    def commit_row(self, sha: str) -> Any:
        [row] = self.rows(COMMITS, COMMITS.c.sha == sha)
        return row

    def events(self, kind: str) -> list[Any]:
        return self.rows(EVENTS, EVENTS.c.kind == kind)

    def tasks(self, run_id: str) -> list[Any]:
        return self.rows(TASK_RUNS, TASK_RUNS.c.run_id == run_id)

    def syncs(self) -> int:
        return int(self.repo.poller.syncs)


def settings_for(tmp: Path, remote: GitRemote, db_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp / "state",
        "database_url": db_url,
        "repo": remote.url,
        "poll_interval": 3600,  # webhooks, not the timer, drive these tests (the first sync still runs at start)
        "webhook_secret": SECRET,
        "repo_aliases": ALIASES,
        "port": free_port(),
        "retry_backoff": 0.1,
        "kill_grace": 1.0,
        **overrides,
    }
    return Settings(**values)


def push_via_webhook(odin: Odin, files: dict[str, str]) -> str:
    """Commit `files` to the followed repository and tell `odin` with a signed GitHub push delivery (202); the sha."""
    before = odin.remote.head
    sha = odin.remote.commit(files)
    delivery = point_at("github", load("github", "push"), after=sha, before=before)
    delivery.headers["X-GitHub-Delivery"] = f"delivery-{sha}"
    raw, headers = signed("github", delivery)
    assert odin.post("github", raw, headers).status_code == 202
    return sha
