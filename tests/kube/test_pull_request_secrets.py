"""A fork's pull request never sees a secret in its pods (issue 13 item 3): no Secret volume, no image pull secrets
(neither the task's nor the executor's), no service account of the task's choosing and no token mounted -- even for a
run whose spec asks for them (controller/pulls.py refuses such a run before it starts; this is the second lock). The
same run from the repository's own branch gets them all. The real engine and store, the Kubernetes executor, pods read
back from the API server (fake or real)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine as DbEngine

from odin.controller.store.db import transaction
from odin.controller.store.runs import NewRun, create_run
from odin.controller.vocabulary import Trigger
from odin.schema.model import SecretMount
from odin.testing.kube.environment import KubeEnv
from tests.kube.harness import COMMIT, TREE, KubeHarness, pipeline, task

pytestmark = pytest.mark.kube


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[DbEngine]:
    from odin.controller.store.db import create_db_engine, migrate

    engine = create_db_engine(f"sqlite:///{tmp_path / 'odin.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def h(kube: KubeEnv, sqlite_db: DbEngine, tmp_path: Path) -> Iterator[KubeHarness]:
    for account in ("odin-task", "deployer"):
        kube.core.create_namespaced_service_account(kube.namespace, {"metadata": {"name": account}})
    harness = KubeHarness(
        kube, sqlite_db, tmp_path, image_pull_secrets=("registry-creds",), service_account="odin-task"
    )
    yield harness
    harness.stop()


def start(h: KubeHarness, *, withheld: bool, commit: str = COMMIT) -> str:
    spec = pipeline(
        task(
            "train",
            "cat /etc/creds/token",
            secrets=(SecretMount(name="db-creds", path="/etc/creds"),),
            image_pull_secrets=("private-registry",),
            service_account="deployer",
        )
    )
    new = NewRun(
        pipeline="p",
        spec=spec,
        trigger=Trigger.PULL_REQUEST,
        params={},
        work_path=str(h.work),
        work_tree=TREE,
        commit_sha=commit,
        pull_request=7,
        pr_provider="github",
        secrets_withheld=withheld,
    )
    with transaction(h.db) as conn:
        run_id = create_run(conn, new).run_id
    assert h.engine is not None
    h.engine.submit(run_id)
    return run_id


def secret_names(pod: Any) -> list[str]:
    volumes = [v for v in pod.spec.volumes or [] if v.secret is not None]
    from_env = [
        e.value_from.secret_key_ref.name
        for c in pod.spec.containers + (pod.spec.init_containers or [])
        for e in c.env or []
        if e.value_from is not None and e.value_from.secret_key_ref is not None
    ]
    return [v.secret.secret_name for v in volumes] + from_env


def test_a_forks_pull_request_pod_gets_no_secret_of_any_kind(h: KubeHarness) -> None:
    h.start()
    fork = h.wait_pod(start(h, withheld=True), "train")
    assert secret_names(fork) == []
    assert not fork.spec.image_pull_secrets, "neither the task's nor the executor's image pull secrets"
    assert fork.spec.service_account_name == "odin-task", "the executor's account, never the one the fork names"
    assert fork.spec.automount_service_account_token is False
    mounts = [m.mount_path for c in fork.spec.containers for m in c.volume_mounts or []]
    assert "/etc/creds" not in mounts

    own = h.wait_pod(start(h, withheld=False, commit="d" * 40), "train")
    assert secret_names(own) == ["db-creds"]
    assert sorted(s.name for s in own.spec.image_pull_secrets) == ["private-registry", "registry-creds"]
    assert own.spec.service_account_name == "deployer"
