"""The Kubernetes API misbehaving for a while mid-run, under a real `odin serve` (issue 14 item 5): answering 500 to
everything, throttling everything with 429 + Retry-After, or dropping every watch over and over while watches are
refused. Afterwards every run finishes, every task succeeded on its first attempt, and no pod was created twice.

The fault lasts WINDOW seconds: the issue asks for a minute; 8 s keeps the file within its CI budget and still spans
many of the client's retries and several watch reconnections, which is what the length has to exceed (the executor
gives up on a request only after ODIN_KUBE_API_RETRY_DEADLINE, 120 s by default). The faults hit the kubelet's
status updates too, as an overloaded API server would: pods finish late, not wrongly. Fake-only: a real cluster
cannot be told to fail.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from odin.controller.store.db import create_db_engine
from odin.controller.store.runs import RUNS, TASKS
from odin.testing.kube.environment import KubeEnv
from odin.testing.kube.fake_faults import Fault
from tests.kube.autokubelet import AutoKubelet
from tests.kube.test_faults_sigkill import PIPELINE, kube_env
from tests.support.git import GitRemote
from tests.support.server import OdinServer
from tests.support.wait import wait_until

pytestmark = [pytest.mark.kube, pytest.mark.slow]

RUNS_WANTED = 6
WINDOW = 8.0


@pytest.mark.parametrize("fault", ["500", "429", "watches"])
def test_runs_finish_correctly_after_the_api_misbehaves_for_a_while(kube: KubeEnv, tmp_path: Path, fault: str) -> None:
    fake = kube.require_fake("injects faults")
    names = [f"p{i}" for i in range(RUNS_WANTED)]
    remote = GitRemote.create(tmp_path / "repo")
    remote.commit({f"{n}/main.yml": PIPELINE.format(name=n) for n in names})
    state = tmp_path / "state"
    db = create_db_engine(f"sqlite:///{state / 'odin.db'}")

    def statuses() -> dict[str, str]:
        with db.connect() as conn:
            return {r.pipeline: r.status for r in conn.execute(sa.select(RUNS.c.pipeline, RUNS.c.status))}

    def pods_created() -> int:
        return fake.requests.count(
            verb="create", resource="pods", status=201, predicate=lambda r: r.subresource is None
        )

    with AutoKubelet(kube, hold=1.0), OdinServer(state, kube_env(kube, remote)) as server:
        wait_until(lambda: pods_created() >= RUNS_WANTED // 2, 60, message="runs are mid-flight")
        injected: list[Fault] = []
        ends = time.monotonic() + WINDOW
        if fault == "500":
            injected.append(fake.faults.server_errors(status=500, duration=WINDOW))
        elif fault == "429":
            injected.append(fake.faults.add(429, retry_after=1, duration=WINDOW))
        else:
            injected.append(fake.faults.server_errors(status=500, verb="watch", duration=WINDOW))
            while time.monotonic() < ends:  # every watch Odin manages to open is cut again, cleanly or abruptly
                fake.drop_watches(abrupt=int(time.monotonic()) % 2 == 0)
                time.sleep(0.5)
        wait_until(lambda: time.monotonic() >= ends, WINDOW + 1, interval=0.1)  # the fault's length is the point
        assert all(f.hits > 0 for f in injected), "the fault was met"
        try:
            wait_until(lambda: len(s := statuses()) == RUNS_WANTED and set(s.values()) == {"succeeded"}, 90)
        except AssertionError as e:
            raise AssertionError(f"runs after the fault: {statuses()}\n{server.log()[-4000:]}") from e
    with db.connect() as conn:
        attempts = Counter(r.attempt for r in conn.execute(sa.select(TASKS.c.attempt)))
    db.dispose()
    assert attempts == {1: 2 * RUNS_WANTED}, "no task failed for the API's misbehaviour: no second attempts"
    assert pods_created() == 2 * RUNS_WANTED, "each pod was created once"
    print(f"{fault}: {sum(f.hits for f in injected)} requests met the fault")
