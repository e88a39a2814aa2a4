"""The client's request budget (`ODIN_KUBE_QPS`, `ODIN_KUBE_BURST`; issue 15 item 4): a token bucket in front of every
request the executor makes, so the apiserver's priority and fairness never sees Odin as a flood.

N requests at QPS q with burst b take at least (N - b) / q seconds, and the fake API server -- which records each
request's arrival -- never sees more than b + q of them within any second.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from odin.controller.executors.kubernetes.api import CONFIGMAPS, KubeApi
from odin.controller.executors.kubernetes.ratelimit import RateLimiterStopped, TokenBucket
from odin.controller.settings import Settings
from odin.controller.store.db import create_db_engine, migrate
from odin.controller.vocabulary import RunStatus
from odin.testing.kube.environment import KubeEnv
from odin.testing.kube.fake_apiserver import FakeApiServer
from odin.testing.kube.fake_faults import most_within
from odin.testing.kube.fake_resources import PODS
from odin.testing.kube.kubelet import wait_for
from tests.kube.harness import KubeHarness, pipeline, task

pytestmark = pytest.mark.kube


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_lets_a_burst_through_then_paces_at_qps() -> None:
    clock = FakeClock()
    bucket = TokenBucket(10.0, 3, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]  # the burst
    assert [round(bucket.reserve(), 6) for _ in range(3)] == [0.1, 0.2, 0.3]  # reservations queue up in order
    clock.now += 1.0  # a second later the queue has drained and 0.7 s of refill is left: 7 tokens, capped at 3
    assert [round(bucket.reserve(), 6) for _ in range(4)] == [0.0, 0.0, 0.0, 0.1]


def test_qps_zero_is_no_limit_and_a_stopping_executor_ends_the_wait() -> None:
    unlimited = TokenBucket(0.0, 1)
    assert all(unlimited.reserve() == 0.0 for _ in range(1000))
    stopping = threading.Event()
    slow = TokenBucket(0.01, 1, stopping=stopping)
    slow.acquire()
    threading.Timer(0.1, stopping.set).start()
    started = time.monotonic()
    with pytest.raises(RateLimiterStopped):
        slow.acquire()  # would wait 100 s
    assert time.monotonic() - started < 5


def test_settings_and_their_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().kube_qps, Settings().kube_burst) == (50.0, 100)
    monkeypatch.setenv("ODIN_KUBE_QPS", "7.5")
    monkeypatch.setenv("ODIN_KUBE_BURST", "12")
    assert (Settings().kube_qps, Settings().kube_burst) == (7.5, 12)
    monkeypatch.setenv("ODIN_KUBE_BURST", "0")
    with pytest.raises(ValueError, match="kube_burst"):
        Settings()


def test_n_creates_at_qps_q_take_at_least_n_minus_burst_over_q(kube: KubeEnv) -> None:
    fake = kube.require_fake("counts requests per second")
    qps, burst, n = 20.0, 5, 45
    bucket = TokenBucket(qps, burst)
    grants = record_grants(bucket)
    api = KubeApi(kube.api_client, limiter=bucket)
    fake.requests.reset()

    def create(i: int) -> None:
        api.create(CONFIGMAPS, kube.namespace, {"metadata": {"name": f"cm-{i}"}, "data": {"i": str(i)}})

    started = time.monotonic()
    threads = [threading.Thread(target=lambda k=k: [create(i) for i in range(k, n, 5)]) for k in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert fake.requests.count(verb="create", resource="configmaps", status=201) == n
    assert elapsed >= (n - burst) / qps  # 2.0 s
    assert len(grants) == n
    assert most_within(grants, 1.0) <= burst + qps
    assert sum(fake.requests.per_second()) == n


def record_grants(bucket: TokenBucket) -> list[float]:
    """The moments the bucket let each request go (the reservation time plus its wait), appended as it grants them.

    The window check is made on these, not on the fake's arrival times: on a loaded machine the fake's accept loop
    can stall for half a second and then read a backlog of requests that were sent evenly, which would show the
    server's scheduling, not the client's pacing (CI once saw 27 in a second that way). That every request the fake
    saw took a token is checked separately, by count.
    """
    grants: list[float] = []
    reserve = bucket.reserve

    def recording_reserve() -> float:
        delay = reserve()
        grants.append(time.monotonic() + delay)
        return delay

    bucket.reserve = recording_reserve  # type: ignore[method-assign]
    return grants


def succeed_in_store(fake: FakeApiServer, namespace: str, name: str) -> None:
    """The kubelet's report written straight into the fake's store: no HTTP request, so every request the fake
    records is the executor's."""
    pod = fake.get_object(PODS, namespace, name)
    assert pod is not None
    state = {"terminated": {"exitCode": 0, "reason": "Completed"}}
    containers = [
        {"name": c["name"], "image": c["image"], "imageID": "", "ready": False, "restartCount": 0, "state": state}
        for c in pod["spec"]["containers"]
    ]
    status = {"phase": "Succeeded", "conditions": [{"type": "PodScheduled", "status": "True"}],
              "containerStatuses": containers}  # fmt: skip
    fake.store.update(PODS, namespace, name, {**pod, "status": status}, subresource="status")


def test_every_request_of_the_executor_is_paced(kube: KubeEnv, tmp_path: Path) -> None:
    """A fan-out through the engine and executor: creates, lists, watches, log reads and clean-up all take tokens."""
    fake = kube.require_fake("counts requests per second")
    db = create_db_engine(f"sqlite:///{tmp_path / 'odin.db'}")
    migrate(db)
    h = KubeHarness(kube, db, tmp_path)
    qps, burst, n = 15.0, 5, 30
    ns = kube.namespace
    try:
        h.start(parallelism=n, qps=qps, burst=burst, cleanup_ttl=0)
        assert h.executor is not None
        fake.requests.reset()
        grants = record_grants(h.executor.limiter)
        started = time.time()
        run_id = h.create(pipeline(*(task(f"t{i}") for i in range(n))))
        wait_for(lambda: len(fake.objects(PODS, ns)) >= n, 60, message="pods were not all created")
        for pod in fake.objects(PODS, ns):
            succeed_in_store(fake, ns, pod["metadata"]["name"])
        assert h.wait(run_id, 60) == RunStatus.SUCCEEDED
        wait_for(lambda: not fake.objects(PODS, ns), 60, message="pods were not cleaned up")
        creates = fake.requests.filter(verb="create", resource="pods")
        assert len(creates) == n
        assert creates[-1].time - started >= (n - burst) / qps  # 1.67 s, whatever else was sent meanwhile
        assert most_within(grants, 1.0) <= burst + qps
        assert h.executor.limiter.acquired >= len(fake.requests)  # every request took a token
        assert h.executor.limiter.waited > 0
    finally:
        h.stop()
        db.dispose()
