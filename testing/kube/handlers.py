"""What a resource-handler test needs besides the cluster: the `BuildContext` the executor would give one attempt.

Why here: a handler's `build` takes a context assembled from a run, a task launch and the executor's options; a plugin
author should not have to know how the executor assembles it to test that the manifest the handler builds is accepted
by the API server and that `top_status`/`evaluate` read the status the operator writes.  The values mirror what the
executor sets for a manual run (provenance labels, paths, environment), with the cluster's namespace and the test
scheduler name of a `KubeEnv`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from odin.controller.executors.kubernetes import BuildContext, KubeOptions, ResourceHandler, names
from odin.controller.vocabulary import RunContext, TaskLaunch, TaskPaths
from odin.schema.model import TaskSpec
from odin.testing.kube.environment import KubeEnv

TEST_COMMIT = "0123456789abcdef0123456789abcdef01234567"


def attempt_context(
    handler: ResourceHandler,
    spec: TaskSpec,
    kube: KubeEnv,
    data_dir: Path,
    *,
    run_id: str = "test-0123456-1",
    pipeline: str = "test",
    attempt: int = 1,
    **options: Any,
) -> BuildContext:
    """The context of attempt `attempt` of `spec` in `kube`'s namespace; `options` override `KubeOptions` fields."""
    run = RunContext(
        run_id=run_id,
        pipeline=pipeline,
        commit_sha=TEST_COMMIT,
        repo_url="https://git.example.com/ml/pipelines.git",
        trigger="manual",
        work_tree=None,
        work_path=None,
    )
    env = {**spec.env, "ODIN_RUN": run_id, "ODIN_TASK": spec.name, "ODIN_ATTEMPT": str(attempt),
           "ODIN_PIPELINE": pipeline, "ODIN_COMMIT_SHA": TEST_COMMIT}  # fmt: skip
    launch = TaskLaunch(
        run, spec, attempt, spec.command, spec.args, env, TaskPaths("/odin/work", "/odin/run", "/odin/root")
    )
    name = names.attempt_name(run_id, spec.name, attempt, max_length=handler.max_name_length)
    opts = KubeOptions(
        **{"data_dir": data_dir, "namespace": kube.namespace, "scheduler_name": kube.scheduler_name, **options}
    )
    return BuildContext(launch, name, kube.namespace, opts)
