"""A real engine, a real store and the Kubernetes executor on the `kube` fixture's cluster (fake or real).

Tests drive pods with the fake kubelet (through the API only), so the same test runs against a real cluster with
`ODIN_TEST_KUBECONFIG`; the executor's pods carry `kube.scheduler_name`, which no real scheduler serves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from kubernetes.client.exceptions import ApiException
from sqlalchemy.engine import Engine as DbEngine

from odin.controller.engine.decide import RetryPolicy
from odin.controller.engine.loop import Engine
from odin.controller.executors.kubernetes import Deadlines, KubeOptions, KubernetesExecutor
from odin.controller.store.db import create_db_engine, migrate, transaction
from odin.controller.store.runs import TASKS, NewRun, create_run
from odin.controller.vocabulary import RunStatus, Trigger
from odin.schema.model import PipelineSpec, TaskSpec
from odin.testing.kube.environment import KubeEnv
from odin.testing.kube.kubelet import wait_for

COMMIT = "c0ffee" + "0" * 34
TREE = "7ree" + "0" * 36


def require_crd(kube: KubeEnv, group: str, version: str, plural: str) -> None:
    """Skip unless the cluster serves this custom resource (the fake serves every kind Odin uses)."""
    if kube.fake is not None:
        return
    try:
        served = kube.custom.get_api_resources(group, version)
    except ApiException as e:
        if e.status == 404:
            pytest.skip(f"the cluster does not serve {group}/{version}: install the CRD to run this test")
        raise
    if plural not in {r.name for r in served.resources}:
        pytest.skip(f"the cluster does not serve {plural}.{group}/{version}: install the CRD to run this test")


def task(name: str, script: str = "true", **kw: Any) -> TaskSpec:
    kw.setdefault("image", "busybox:1.36")
    return TaskSpec(name=name, command=("sh", "-c", script), **kw)


def pipeline(*tasks: TaskSpec, name: str = "p") -> PipelineSpec:
    return PipelineSpec(name=name, tasks=tuple(tasks))


class KubeHarness:
    """Engine + executor + store for one test; `start()` again after `stop()` is a controller restart."""

    def __init__(self, kube: KubeEnv, db: DbEngine, tmp: Path, **options: Any) -> None:
        self.kube, self.db, self.tmp = kube, db, tmp
        self.data_dir = tmp / "data"
        self.work = tmp / "work"
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "train.py").write_text("print('training')\n")
        (self.work / "configs").mkdir(exist_ok=True)
        (self.work / "configs" / "base.yml").write_text("lr: 0.1\n")
        run_sh = self.work / "run.sh"
        run_sh.write_text("#!/bin/sh\necho run\n")
        run_sh.chmod(0o755)
        self.option_overrides = options
        self.engine_options: dict[str, Any] = {}  # more `Engine` arguments (`bus`, `task_env`...) for `start()`
        self.engine: Engine | None = None
        self.executor: KubernetesExecutor | None = None

    def options(self, **overrides: Any) -> KubeOptions:
        base = KubeOptions(
            data_dir=self.data_dir,
            namespace=self.kube.namespace,
            scheduler_name=self.kube.scheduler_name,
            cleanup_ttl=None,
            deadlines=Deadlines(image_pull_grace=30, missing_volume=30, unschedulable=60),
            api_retry_deadline=10,
            watch_timeout=60,
            repo_url="https://git.example.com/ml/pipelines.git",
        )
        return dataclasses.replace(base, **{**self.option_overrides, **overrides})

    def start(self, *, parallelism: int = 8, max_active_tasks: int = 64, **overrides: Any) -> Engine:
        self.executor = KubernetesExecutor(self.kube.api_client, self.options(**overrides))
        self.engine = Engine(
            self.db,
            self.executor,
            policy=RetryPolicy(base=0.05, maximum=0.2, jitter=0.0, max_infra_retries=3),
            default_parallelism=parallelism,
            max_active_tasks=max_active_tasks,
            rescan_interval=0.5,
            **self.engine_options,
        )
        self.engine.start()
        assert self.engine.wait_ready(10)
        return self.engine

    def stop(self) -> None:
        """What a SIGKILL leaves: nothing cleaned up in the cluster (objects keep running)."""
        if self.engine is not None:
            self.engine.stop()
            self.engine = None
        if self.executor is not None:
            self.executor.shutdown()
            self.executor = None

    def create(self, spec: PipelineSpec, *, pipeline_path: str = "p", commit: str = COMMIT) -> str:
        new = NewRun(
            pipeline=pipeline_path,
            spec=spec,
            trigger=Trigger.MANUAL,
            params={},
            work_path=str(self.work),
            work_tree=TREE,
            commit_sha=commit,
        )
        with transaction(self.db) as conn:
            run_id = create_run(conn, new).run_id
        if self.engine is not None:
            self.engine.submit(run_id)
        return run_id

    def wait(self, run_id: str, timeout: float = 30) -> RunStatus | None:
        assert self.engine is not None
        return self.engine.wait(run_id, timeout)

    def tasks(self, run_id: str) -> dict[str, Any]:
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(TASKS).where(TASKS.c.run_id == run_id)).all()
        return {r.name: r for r in rows}

    def task_row(self, run_id: str, name: str) -> Any:
        return self.tasks(run_id)[name]

    def succeed(self, pod: Any) -> None:
        """`kubelet.succeed`, retried while an injected 5xx answers the kubelet's own requests."""
        wait_for(lambda: _tolerant(lambda: self.kube.kubelet.succeed(pod)), 20)

    def wait_task(self, run_id: str, name: str, status: str, timeout: float = 20, attempt: int | None = None) -> Any:
        def check() -> Any:
            row = self.task_row(run_id, name)
            return row if row.status == status and (attempt is None or row.attempt == attempt) else None

        return wait_for(
            check, timeout, message=lambda: f"task {name} never became {status}: {self.task_row(run_id, name)}"
        )

    def pods(self, selector: str) -> list[Any]:
        """Pods by label selector ([] while an injected API fault answers the test's own request)."""
        try:
            return list(self.kube.core.list_namespaced_pod(self.kube.namespace, label_selector=selector).items)
        except ApiException as e:
            if e.status is not None and e.status >= 500:
                return []
            raise

    def wait_pod(self, run_id: str, name: str, attempt: int = 1, timeout: float = 20) -> Any:
        selector = f"odin.dev/run={run_id},odin.dev/task={name},odin.dev/attempt={attempt}"
        return wait_for(lambda: (self.pods(selector) or [None])[0], timeout, message=f"no pod for {name}#{attempt}")

    def wait_pods(self, selector: str, count: int, timeout: float = 20) -> list[Any]:
        return wait_for(lambda: p if len(p := self.pods(selector)) >= count else None, timeout)


def sqlite_harness(kube: KubeEnv, tmp: Path) -> Iterator[KubeHarness]:
    """A harness on a fresh SQLite store in `tmp`, stopped and disposed of afterwards (`yield from` in a fixture)."""
    db = create_db_engine(f"sqlite:///{tmp / 'odin.db'}")
    migrate(db)
    harness = KubeHarness(kube, db, tmp)
    yield harness
    harness.stop()
    db.dispose()


def _tolerant(action: Any) -> bool:
    try:
        action()
    except ApiException as e:
        if e.status is not None and e.status >= 500:
            return False
        raise
    return True
