"""The Kubernetes executor: each attempt becomes one object (a Pod, a Job, a training-operator job), watched.

A coordinator over three parts that share one table of attempts (`attempts.py`):

* submitting (`submit.py`): `start` (engine thread) only checks the task and queues the create on a small pool, so
  the engine never waits on HTTP. The worker waits for the run's preparation (its `${WORK_PATH}` ConfigMaps, see
  `workdir.py`), writes the manifest to the journal, creates the object under its deterministic name (409: adopt it),
  and starts the watches of that namespace if they are not running yet. `recover` (after a restart) adopts every
  attempt whose object exists (a task that finished while Odin was down is not run again), re-creates those the
  journal says were being submitted, and reports the rest lost (INFRA: the engine retries them).
* tracking (`tracking.py`): watches (`watch.py`) deliver every change of every Odin object -- the top-level objects
  and their pods. Each change re-evaluates the attempt it belongs to with a pure `evaluate` step (pods classified by
  `failures.py`, the handler's `Verdict`); a change of verdict becomes an `Observation` for the engine. Deadlines
  (image pull grace, unschedulable, missing volumes, no operator) are timers, not polling.
* reading (`log_reader.py`): logs live from the pods, or saved (`logs.py`) once the attempt has ended; events.

Ended attempts have their logs saved, then their objects are deleted after the TTL (`cleanup.py`).

The executor reports; it never decides. Every problem -- an unknown resource_type, a forbidden namespace, an API
that stays down -- becomes a FAILED observation with a reason and a failure kind, never an exception in the engine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import kubernetes.client

from odin.controller.admission import GpuAsk
from odin.controller.artifacts.errors import ArtifactError
from odin.controller.artifacts.settings import MissingCredential
from odin.controller.executors.base import Executor, OutputsUnsupported
from odin.controller.executors.kubernetes import names, transfer
from odin.controller.executors.kubernetes.api import PODS, ApiRetry, KubeApi
from odin.controller.executors.kubernetes.attempts import Attempt, AttemptKey, AttemptTable, Blocker
from odin.controller.executors.kubernetes.cleanup import Janitor
from odin.controller.executors.kubernetes.config import KubeOptions, clone_client, load_client, options_from_settings
from odin.controller.executors.kubernetes.errors import KubeApiError
from odin.controller.executors.kubernetes.handlers.base import Verdict
from odin.controller.executors.kubernetes.handlers.registry import HandlerRegistry
from odin.controller.executors.kubernetes.journal import Journal
from odin.controller.executors.kubernetes.log_reader import LogReader
from odin.controller.executors.kubernetes.logs import LogStore
from odin.controller.executors.kubernetes.manifests import DATA_MOUNT, ROOT_MOUNT, RUN_MOUNT
from odin.controller.executors.kubernetes.nodes import NodeInventory
from odin.controller.executors.kubernetes.ratelimit import TokenBucket
from odin.controller.executors.kubernetes.submit import WORK_COMPONENT, Submitter, api_blocker
from odin.controller.executors.kubernetes.timers import Timers
from odin.controller.executors.kubernetes.tracking import Tracker
from odin.controller.executors.kubernetes.watch import WatchKey
from odin.controller.executors.kubernetes.workdir import MOUNT_PATH as WORK_MOUNT
from odin.controller.executors.outputs import AttemptDirs
from odin.controller.vocabulary import (
    ActiveAttempt,
    Failure,
    Observation,
    RunContext,
    TaskLaunch,
    TaskPaths,
    TaskStatus,
)

if TYPE_CHECKING:
    from odin.controller.settings import Settings

__all__ = ["WORK_COMPONENT", "AttemptKey", "Blocker", "KubernetesExecutor"]


class KubernetesExecutor(Executor):
    """Runs attempts as Kubernetes objects (see the module docstring): wires the parts and forwards the contract."""

    name = "kubernetes"
    relaunches_starting = True  # deterministic names: a STARTING attempt is submitted again, 409 adopts (submit.py)

    def __init__(
        self,
        api_client: kubernetes.client.ApiClient,
        options: KubeOptions,
        *,
        registry: HandlerRegistry | None = None,
        owns_client: bool = False,
    ) -> None:
        super().__init__()
        self.options = options
        self._stopping = threading.Event()
        self._given_client = api_client if owns_client else None
        self._client = clone_client(api_client, pool_size=options.workers + 64)
        self.limiter = TokenBucket(options.qps, options.burst, stopping=self._stopping)
        self.api = KubeApi(self._client, retry=ApiRetry(deadline=options.api_retry_deadline), stopping=self._stopping,
                           limiter=self.limiter)  # fmt: skip
        self.registry = registry or HandlerRegistry.load()
        self.journal = Journal(options.data_dir)
        self.timers = Timers()
        self.pool = ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="odin-kube")
        self.table = AttemptTable()
        self.store = transfer.LazyStore(options.artifacts) if options.artifacts is not None else None
        # Saved logs go to the store too: another replica's API, or this one after a restart, serves them from there.
        self.log_store = LogStore(options.data_dir, self.store.get if self.store is not None else None)
        self.tracker = Tracker(
            self.table, self.api, options, registry=self.registry, timers=self.timers, pool=self.pool,
            log_path=lambda key: str(self.log_store.path(*key)), report=self._observed, ended=self._ended,
            on_watch_error=self._on_watch_error,
        )  # fmt: skip
        self.submitter = Submitter(
            self.table, self.api, options, registry=self.registry, journal=self.journal, tracker=self.tracker,
            timers=self.timers, pool=self.pool, report=self.report, stopping=self._stopping,
            work_trees=transfer.WorkTrees(self.store) if self.store is not None else None,
        )  # fmt: skip
        self.reader = LogReader(self.table, self.api, self.log_store, pod_selector=self.tracker.pod_selector)
        self.selector = self.tracker.selector
        self.watches = self.tracker.watches
        self.janitor = Janitor(self)
        self.nodes = NodeInventory(self.api, ttl=options.node_cache_ttl, timeout=options.node_read_timeout)
        self.started_at = time.time()
        self.janitor.start()

    @classmethod
    def from_settings(cls, settings: Settings) -> KubernetesExecutor:
        """`ODIN_EXECUTOR=kubernetes`: in-cluster config or a kubeconfig and context (see `config.py`)."""
        api_client, implied_namespace = load_client(settings)
        return cls(api_client, options_from_settings(settings, implied_namespace=implied_namespace), owns_client=True)

    # -- contract: paths and runs ------------------------------------------------------------------------------
    def paths(self, run: RunContext) -> TaskPaths:
        if self.options.data_claim:
            run_path, root_path = f"{DATA_MOUNT}/runs/{run.storage_id}", DATA_MOUNT
        else:
            run_path, root_path = RUN_MOUNT, ROOT_MOUNT
        return TaskPaths(work_path=WORK_MOUNT if run.work_path else run_path, run_path=run_path, root_path=root_path)

    def attempt_dirs(self, run: RunContext, task: str, attempt: int) -> AttemptDirs:
        """In the pod's shared `/odin/outputs` emptyDir, uploaded after the task (`transfer.py`): needs a store pods
        can reach."""
        if self.options.artifacts is None:
            raise OutputsUnsupported(
                "outputs on Kubernetes need an S3-compatible artifact store (ODIN_ARTIFACTS_BACKEND=s3, "
                "ODIN_ARTIFACTS_BUCKET, ODIN_ARTIFACTS_ENDPOINT_URL...; docs/artifacts.md): pods share no volume"
            )
        return transfer.output_dirs()

    def input_location(self, task: str, record: Mapping[str, Any]) -> str:
        """An artifact in the store is read where the pod's `odin-inputs` step downloads it."""
        location = str(record["location"])
        if self.options.artifacts is not None and location.startswith("s3://"):
            return transfer.input_path(task, record)
        return location

    def namespace_of(self, run: RunContext) -> str:
        return self.submitter.namespace_of(run)

    def prepare_run(self, run: RunContext) -> None:
        self.submitter.prepare_run(run)

    def finish_run(self, run: RunContext) -> None:
        """The run's objects and work ConfigMaps are deleted together, the TTL from now (`cleanup.py`)."""
        self.janitor.run_ended(run.run_id, self.submitter.namespace_of(run))

    # -- contract: start, kill, recover ------------------------------------------------------------------------
    def start(self, launch: TaskLaunch) -> None:
        self.submitter.start(launch)

    def kill(self, run_id: str, task: str, attempt: int, reason: str) -> None:
        self.submitter.kill((run_id, task, attempt), reason)

    def recover(self, attempts: list[ActiveAttempt]) -> None:
        self.submitter.recover(attempts)

    # -- contract: admission -----------------------------------------------------------------------------------
    def gpu_shortfall(self, asks: Sequence[GpuAsk]) -> str | None:
        """Judged against the cluster's Node objects (`nodes.py`); `ODIN_KUBE_GPU_ADMISSION=false` admits all."""
        return self.nodes.shortfall(asks) if self.options.gpu_admission else None

    # -- contract: logs and events -----------------------------------------------------------------------------
    def logs(
        self,
        run_id: str,
        task: str,
        *,
        follow: bool = False,
        tail: int | None = None,
        attempt: int | None = None,
        container: str | None = None,
        replica: str | None = None,
    ) -> Iterator[str]:
        return self.reader.logs(
            run_id, task, follow=follow, tail=tail, attempt=attempt, container=container, replica=replica
        )

    def events(self, run_id: str, task: str) -> list[dict[str, Any]]:
        return self.reader.events(run_id, task)

    # -- where the parts meet ----------------------------------------------------------------------------------
    def _observed(self, obs: Observation) -> None:
        """Report what the tracker concluded; an attempt that succeeded with declared outputs is reported once its
        outputs record is read back from the store (on the pool: the tracker's thread never waits on the network)."""
        if obs.status != TaskStatus.SUCCEEDED or self.store is None:
            self.report(obs)
            return
        record = self.table.get((obs.run_id, obs.task, obs.attempt))
        spec = record.spec if record is not None else None
        if spec is None or not (spec.artifacts or spec.results):
            self.report(obs)
            return
        self.pool.submit(self._report_outputs, obs)

    def _report_outputs(self, obs: Observation) -> None:
        assert self.store is not None
        try:
            found = transfer.read_record(self.store.get(), obs.run_id, obs.task, obs.attempt)
        except (transfer.OutputsLost, ArtifactError, MissingCredential) as e:
            message = getattr(e, "message", None) or str(e)
            self.report(replace(obs, status=TaskStatus.FAILED, reason="OutputsLost", message=message,
                                failure=Failure.INFRA))  # fmt: skip
            return
        problem = found.get("problem")
        if problem:
            self.report(replace(obs, status=TaskStatus.FAILED, reason=str(problem.get("reason") or "InvalidOutputs"),
                                message=str(problem.get("message") or ""), failure=Failure.PERMANENT))  # fmt: skip
            return
        resource = {**obs.resource, "results": found.get("results") or {}, "artifacts": found.get("artifacts") or {}}
        self.report(replace(obs, resource=resource))

    def _ended(self, record: Attempt, verdict: Verdict) -> None:
        """An attempt reached a final status: delete a stuck object now, then save its logs and clean up."""
        if verdict.delete and record.exists:
            self.pool.submit(self.submitter.delete, record)
        self.janitor.ended(record)

    def _on_watch_error(self, key: WatchKey, error: KubeApiError) -> None:
        """A watch that cannot run (403, or a kind the cluster does not serve): its tasks cannot be observed."""
        victims: list[Attempt] = []
        with self.table.lock:
            for record in self.table.attempts.values():
                if not record.tracked or record.namespace != key.namespace or record.handler is None:
                    continue
                if record.reported_terminal:
                    continue
                if key.kind.key in (PODS.key, record.handler.kind.key):
                    victims.append(record)
        problem = api_blocker(error, key.namespace)
        for record in victims:
            self.submitter.finish(
                record, problem.reason, f"cannot watch {key.kind.plural}: {problem.message}", problem.failure
            )

    # -- shutdown ----------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop watching and submitting; objects in the cluster keep running, and a restart re-attaches."""
        self._stopping.set()
        self.watches.stop()
        self.timers.stop()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()  # type: ignore[no-untyped-call]
        if self._given_client is not None:
            self._given_client.close()  # type: ignore[no-untyped-call]

    # -- for the janitor and tests ---------------------------------------------------------------------------
    def active_run_labels(self) -> set[str]:
        """The `odin.dev/run` label values of the runs this executor prepares or runs."""
        with self.table.lock:
            return {names.label_value(r) for r in self.table.runs}

    def attempts_snapshot(self) -> list[Attempt]:
        return self.table.snapshot()

    def drop_run(self, run_id: str) -> list[str]:
        """Forget a run whose objects are being deleted; the names of its work ConfigMaps."""
        with self.table.lock:
            record = self.table.runs.pop(run_id, None)
        return list(record.work.names) if record is not None and record.work is not None else []

    def forget(self, record: Attempt) -> None:
        """Drop an attempt whose objects are gone (clean-up done)."""
        self.table.forget(record)

    def pod_selector(self, record: Attempt) -> str:
        """A label selector for the attempt's pods."""
        return self.tracker.pod_selector(record)

    def save_logs(self, record: Attempt) -> None:
        """Write every container log of the attempt's pods to the log store (primary replica: the task's log)."""
        self.reader.save_logs(record)
