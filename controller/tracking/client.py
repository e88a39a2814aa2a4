"""The MLflow adapter: Odin's runs and tasks as MLflow runs, through MLflow's own client. Only module that imports
mlflow (an import-linter contract).

Robustness rules, because tracking is a side show that must never stop the main act:

- Every public method returns a value or a `TrackingWarning`; nothing raises to the engine (a broad `except` here is
  the point). Failures are retried `attempts` times with `controller.backoff.Backoff`; a 4xx from MLflow (a refused
  key, a conflicting param) is not retried, since the same request would be refused again.
- MLflow's client retries a refused connection for minutes by default; Odin turns that off for its own process
  (`MLFLOW_HTTP_REQUEST_MAX_RETRIES=0` unless the operator set it) and bounds each request by `request_timeout`, so
  an outage costs a few seconds per call. Tasks get a clean environment and keep MLflow's defaults.
- Starting a run or a task looks its run up by tag first (`odin.run_id`, `odin.task`), so a retry after a timeout
  that did reach the server, or a controller restart, finds the run instead of creating a second one.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Literal, TypeVar

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException, RestException
from mlflow.tracking import MlflowClient

from odin.controller.backoff import Backoff
from odin.controller.tracking.links import redact
from odin.controller.tracking.links import run_url as link_to_run
from odin.controller.tracking.records import TrackedRun, TrackingWarning
from odin.controller.tracking.settings import TrackingSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")
"""MLflow keys allow alphanumerics, underscores, dashes, periods, spaces and slashes; anything else becomes `_`."""
PARAM_VALUE_LIMIT = 6000
TAG_VALUE_LIMIT = 5000
BATCH_METRICS, BATCH_PARAMS, BATCH_TAGS = 1000, 100, 100


def mlflow_key(name: str) -> str:
    return KEY_UNSAFE.sub("_", name)[:250] or "_"


def quoted(value: str) -> str | None:
    """`value` as an MLflow filter-string literal, or None when it cannot be one safely (it holds a quote)."""
    return None if "'" in value or "\\" in value else f"'{value}'"


class MlflowTracker:
    """Tracking calls against one MLflow server; thread-safe (one client, a lock around the experiment cache)."""

    def __init__(
        self,
        settings: TrackingSettings,
        *,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not settings.tracking_uri:
            raise ValueError("MlflowTracker needs ODIN_MLFLOW_TRACKING_URI")
        self.settings = settings
        self.tracking_uri = settings.tracking_uri
        self.backoff = backoff or Backoff(initial=settings.retry_initial, maximum=settings.retry_max)
        self.sleep = sleep
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, math.ceil(settings.request_timeout))))
        self.client = MlflowClient(tracking_uri=self.tracking_uri)
        self._experiments: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- the public calls ----------------------------------------------------------------------------------------

    def start_run(
        self,
        *,
        repository: str,
        pipeline: str,
        odin_run_id: int | str,
        commit: str,
        branch: str | None = None,
        repository_url: str | None = None,
        trigger: str | None = None,
        triggered_by: str | None = None,
        params: Mapping[str, object] | None = None,
        created: str | None = None,
    ) -> TrackedRun | TrackingWarning:
        """The MLflow run of Odin run `odin_run_id` (found again if it exists), in its pipeline's experiment.

        `created` (the Odin run's creation time) is part of what finds it again: run ids repeat across Odin
        installations sharing one MLflow server, or after a store was reset (`train-abc1234-1` again), and such a run
        must get its own MLflow run, not append to an old one."""
        identity = {"odin.kind": "run", "odin.run_id": str(odin_run_id)} | (
            {"odin.created": created} if created else {}
        )
        tags = {
            **identity,
            "odin.repository": repository,
            "odin.pipeline": pipeline,
            "odin.commit": commit,
            "odin.branch": branch or "",
            "odin.trigger": trigger or "",
            "odin.triggered_by": triggered_by or "",
            # MLflow's own source tags: its UI shows the commit and links the repository.
            "mlflow.source.git.commit": commit,
            "mlflow.source.git.branch": branch or "",
            "mlflow.source.git.repoURL": repository_url or repository,
            "mlflow.source.name": pipeline,
            "mlflow.source.type": "JOB",
        }

        def call() -> TrackedRun:
            experiment_id = self._experiment_id(repository, pipeline)
            found = self._find(experiment_id, identity)
            if found is not None:
                return TrackedRun(found, experiment_id)
            run = self.client.create_run(
                experiment_id, tags=tags, run_name=f"{pipeline} #{odin_run_id} @ {commit[:12]}"
            )
            tracked = TrackedRun(run.info.run_id, experiment_id)
            if params:
                self._log(tracked.run_id, params=params)
            return tracked

        return self._attempt("start_run", call)

    def start_task(
        self,
        parent: TrackedRun,
        *,
        task: str,
        params: Mapping[str, object] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> TrackedRun | TrackingWarning:
        """The nested run of `task` under `parent` (found again if it exists), with `params` logged. `tags` (e.g. the
        attempt) are set on it whether it was created or found, so a retried task's run says which attempt ran."""

        def call() -> TrackedRun:
            found = self._find(
                parent.experiment_id, {"odin.kind": "task", "odin.task": task, "mlflow.parentRunId": parent.run_id}
            )
            if found is not None:
                if tags:
                    self.client.log_batch(found, tags=[RunTag(k, str(v)[:TAG_VALUE_LIMIT]) for k, v in tags.items()])
                return TrackedRun(found, parent.experiment_id, parent.run_id)
            run = self.client.create_run(
                parent.experiment_id,
                tags={**(tags or {}), "odin.kind": "task", "odin.task": task, "mlflow.parentRunId": parent.run_id},
                run_name=task,
            )
            tracked = TrackedRun(run.info.run_id, parent.experiment_id, parent.run_id)
            if params:
                self._log(tracked.run_id, params=params)
            return tracked

        return self._attempt("start_task", call)

    def log_results(self, run: TrackedRun, results: Mapping[str, object]) -> TrackingWarning | None:
        """A task's results: numbers (and booleans, as 0/1) as metrics, anything else as `odin.result.*` tags."""
        outcome = self._attempt("log_results", lambda: self._log(run.run_id, results=results))
        return outcome if isinstance(outcome, TrackingWarning) else None

    def log_params(self, run: TrackedRun, params: Mapping[str, object]) -> TrackingWarning | None:
        outcome = self._attempt("log_params", lambda: self._log(run.run_id, params=params))
        return outcome if isinstance(outcome, TrackingWarning) else None

    def finish(
        self, run: TrackedRun, status: Literal["FINISHED", "FAILED", "KILLED"] = "FINISHED"
    ) -> TrackingWarning | None:
        outcome = self._attempt("finish", lambda: self.client.set_terminated(run.run_id, status=status))
        return outcome if isinstance(outcome, TrackingWarning) else None

    def task_env(self, run: TrackedRun) -> dict[str, str]:
        """What a task needs so that `mlflow.start_run()` / `mlflow.log_metric` in its code use its nested run."""
        return {
            "MLFLOW_TRACKING_URI": self.settings.task_tracking_uri or self.tracking_uri,
            "MLFLOW_RUN_ID": run.run_id,
            "MLFLOW_EXPERIMENT_ID": run.experiment_id,
        }

    def run_url(self, run: TrackedRun) -> str | None:
        """A link to the run in the MLflow UI (for the API and `odinctl show`), when the UI has an http(s) URL."""
        return link_to_run(self.settings.ui_url or self.tracking_uri, run.experiment_id, run.run_id)

    # -- internals -----------------------------------------------------------------------------------------------

    def _attempt(self, operation: str, call: Callable[[], T]) -> T | TrackingWarning:
        attempts = self.settings.attempts
        for attempt in range(attempts):
            try:
                return call()
            except Exception as e:  # an outage must never reach the engine, whatever the client raised
                message = str(e).replace(self.tracking_uri, redact(self.tracking_uri))[:1000]
                status = int(e.get_http_status_code()) if isinstance(e, RestException) else 0  # type: ignore[no-untyped-call]
                if 400 <= status < 500 and status != 429:
                    log.warning("MLflow %s refused: %s", operation, message)
                    return TrackingWarning(operation, message, attempt + 1, retryable=False)
                if attempt + 1 == attempts:
                    log.warning("MLflow %s failed after %d attempts: %s", operation, attempts, message)
                    return TrackingWarning(operation, message, attempts)
                delay = self.backoff.delay(attempt)
                log.info("MLflow %s failed (%s); retrying in %.2fs", operation, message, delay)
                self.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _experiment_id(self, repository: str, pipeline: str) -> str:
        name = self.settings.experiment_name.format(repository=repository, pipeline=pipeline)
        with self._lock:
            if name in self._experiments:
                return self._experiments[name]
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            experiment_id = str(experiment.experiment_id)
        else:
            try:
                experiment_id = str(self.client.create_experiment(name, tags={"odin.pipeline": pipeline}))
            except MlflowException as e:
                if e.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                again = self.client.get_experiment_by_name(name)  # another controller created it just now
                if again is None:
                    raise
                experiment_id = str(again.experiment_id)
        with self._lock:
            self._experiments[name] = experiment_id
        return experiment_id

    def _find(self, experiment_id: str, tags: Mapping[str, str]) -> str | None:
        clauses = []
        for key, value in tags.items():
            literal = quoted(value)
            if literal is None:
                return None  # cannot be searched safely: create (a duplicate at worst, never a wrong match)
            clauses.append(f"tags.`{key}` = {literal}")
        runs = self.client.search_runs([experiment_id], filter_string=" AND ".join(clauses), max_results=1)
        return str(runs[0].info.run_id) if runs else None

    def _log(
        self,
        run_id: str,
        *,
        params: Mapping[str, object] | None = None,
        results: Mapping[str, object] | None = None,
    ) -> None:
        now = int(time.time() * 1000)
        metrics: list[Metric] = []
        tags: list[RunTag] = []
        for name, value in (results or {}).items():
            if isinstance(value, bool | int | float):
                metrics.append(Metric(mlflow_key(name), float(value), now, 0))
            else:
                tags.append(RunTag(f"odin.result.{mlflow_key(name)}", str(value)[:TAG_VALUE_LIMIT]))
        param_list = [Param(mlflow_key(k), str(v)[:PARAM_VALUE_LIMIT]) for k, v in (params or {}).items()]
        while metrics or param_list or tags:
            self.client.log_batch(
                run_id, metrics=metrics[:BATCH_METRICS], params=param_list[:BATCH_PARAMS], tags=tags[:BATCH_TAGS]
            )
            metrics, param_list, tags = metrics[BATCH_METRICS:], param_list[BATCH_PARAMS:], tags[BATCH_TAGS:]
