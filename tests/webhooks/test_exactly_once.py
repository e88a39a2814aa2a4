"""Exactly once, under concurrency, on SQLite and on real Postgres: copies of one delivery racing in produce one
recorded delivery and one sync request; different deliveries of one commit, and a poll racing them, produce one run."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from odin.controller.sync import SyncRequest
from odin.controller.vocabulary import Trigger
from tests.support.wait import wait_until
from tests.webhooks.conftest import OdinFactory
from tests.webhooks.support import HELLO, load, point_at, signed

COPIES = 16


def fire_together(url: str, requests: list[tuple[str, bytes, dict[str, str]]]) -> list[httpx.Response]:
    """Send every request at once: each thread waits at a barrier, then posts on its own connection."""
    barrier = threading.Barrier(len(requests))

    def one(request: tuple[str, bytes, dict[str, str]]) -> httpx.Response:
        provider, raw, headers = request
        with httpx.Client(base_url=url, timeout=60) as client:
            barrier.wait()
            return client.post(f"/webhooks/{provider}", content=raw, headers=headers)

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(one, requests))


@pytest.fixture
def any_db_url(db_url: str) -> str:
    return db_url


def test_concurrent_copies_of_one_delivery_are_recorded_once(odin_factory: OdinFactory, any_db_url: str) -> None:
    odin = odin_factory(any_db_url)
    before = odin.remote.head
    sha = odin.remote.commit({"train/main.yml": HELLO.format(name="train", marker="copies")})
    raw, headers = signed("github", point_at("github", load("github", "push"), after=sha, before=before))
    syncs = odin.syncs()
    answers = fire_together(odin.url, [("github", raw, headers)] * COPIES)
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * (COPIES - 1) + [202], [a.text for a in answers]
    assert sum(a.json()["status"] == "duplicate" for a in answers) == COPIES - 1
    assert len(odin.deliveries()) == 1
    [run] = wait_until(lambda: odin.runs(sha), 15)
    wait_until(lambda: odin.syncs() > syncs, 15)
    assert run.pipeline == "train"


def test_many_deliveries_and_a_poll_for_one_commit_make_one_run_per_pipeline(
    odin_factory: OdinFactory, any_db_url: str
) -> None:
    odin = odin_factory(any_db_url)
    before = odin.remote.head
    sha = odin.remote.commit(
        {
            "train/main.yml": HELLO.format(name="train", marker="racing"),
            "hello/main.yml": HELLO.format(name="hello", marker="racing"),
        }
    )
    requests: list[tuple[str, bytes, dict[str, str]]] = []
    for i, (provider, name) in enumerate(
        [("github", "push"), ("gitlab", "push"), ("gitea", "push"), ("bitbucket", "cloud_push"), ("generic", "push")]
        * 3
    ):
        delivery = point_at(provider, load(provider, name), after=sha, before=before)
        for header in ("X-GitHub-Delivery", "Idempotency-Key", "X-Gitea-Delivery", "X-Request-UUID", "X-Odin-Delivery"):
            if header in delivery.headers:
                delivery.headers[header] = f"{provider}-{i}"
        raw, headers = signed(provider, delivery)
        requests.append((provider, raw, headers))
    poll_done = threading.Event()

    def poll() -> None:  # the timer's sync, racing the webhooks' syncs
        odin.repo.sync.sync(SyncRequest(trigger=Trigger.POLL))
        poll_done.set()

    poller = threading.Thread(target=poll)
    poller.start()
    answers = fire_together(odin.url, requests)
    poller.join(60)
    assert poll_done.is_set()
    assert [a.status_code for a in answers] == [202] * len(requests), [a.text for a in answers]
    runs: list[Any] = wait_until(lambda: len(odin.runs(sha)) >= 2 and odin.runs(sha), 15)
    wait_until(lambda: all(r.sha_verified for r in odin.deliveries()), 15, message="every delivery checked")
    assert sorted(r.pipeline for r in odin.runs(sha)) == ["hello", "train"], "exactly one run per pipeline"
    assert len(odin.deliveries()) == len(requests)
    assert {r.trigger for r in runs} <= {"poll", "webhook"}
