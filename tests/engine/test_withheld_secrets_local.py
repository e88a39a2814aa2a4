"""A fork's pull request run gets none of what the server injects into tasks (issue 13 item 3): the variables of
`task_env` (MLflow's tracking URI, which may carry a token) reach a run from the repository and never one whose
secrets are withheld. The real engine, the local executor, real subprocesses printing their environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine as DbEngine

from odin.controller.engine.decide import RetryPolicy
from odin.controller.engine.loop import Engine
from odin.controller.executors.local import LocalExecutor
from odin.controller.store.db import transaction
from odin.controller.store.runs import NewRun, create_run
from odin.controller.vocabulary import RunStatus, TaskLaunch, Trigger
from odin.schema.model import PipelineSpec, TaskSpec

TRACKING = "https://odin:tok-3f9a1c@mlflow.example.com"


@pytest.fixture
def engine(db: DbEngine, tmp_path: Path) -> Iterator[Engine]:
    def task_env(launch: TaskLaunch) -> dict[str, str]:
        return {"MLFLOW_TRACKING_URI": TRACKING, "MLFLOW_RUN_ID": "r-1"}

    executor = LocalExecutor(tmp_path / "data", kill_grace=2.0)
    engine = Engine(
        db,
        executor,
        policy=RetryPolicy(base=0.05, maximum=0.2, jitter=0.0),
        default_parallelism=2,
        rescan_interval=0.5,
        task_env=task_env,
    )
    engine.start()
    assert engine.wait_ready(10)
    yield engine
    engine.stop()
    executor.shutdown()  # the engine leaves its executor's threads running: a restarted one would reuse them


def run(engine: Engine, db: DbEngine, tmp_path: Path, *, withheld: bool, commit: str) -> str:
    spec = PipelineSpec(name="p", tasks=(TaskSpec(name="env", image="busybox", command=("sh", "-c", "env")),))
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    new = NewRun(pipeline="p", spec=spec, trigger=Trigger.PULL_REQUEST, params={}, work_path=str(work),
                 commit_sha=commit, pull_request=7, pr_provider="gitea", secrets_withheld=withheld)  # fmt: skip
    with transaction(db) as conn:
        run_id = create_run(conn, new).run_id
    engine.submit(run_id)
    assert engine.wait(run_id, 30) == RunStatus.SUCCEEDED
    return (tmp_path / "data" / "tasks" / run_id / "env.1.log").read_text()


def test_a_forks_task_gets_nothing_the_server_injects(engine: Engine, db: DbEngine, tmp_path: Path) -> None:
    fork = run(engine, db, tmp_path, withheld=True, commit="a" * 40)
    assert "MLFLOW" not in fork and "tok-3f9a1c" not in fork
    own = run(engine, db, tmp_path, withheld=False, commit="b" * 40)
    assert f"MLFLOW_TRACKING_URI={TRACKING}" in own, "the same run from the repository gets them"
