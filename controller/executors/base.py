"""The contract between the engine and anything that runs tasks.

An executor is told to start an attempt and later reports what it observes (`Observation`) through a callback; it
never decides anything (retries, skips and timeouts are the engine's). Starting must not block for long and must not
raise for a problem with the task: such problems are reported as a failed observation with a `Failure` kind, so a bad
image or a forbidden namespace becomes a clear task status instead of a crash.

After a controller restart, the engine hands the executor every attempt the store believes is active
(`recover`); the executor re-attaches to them and reports their outcome, or reports them lost (an INFRA failure),
so nothing finished runs twice and nothing hangs.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from odin.controller.admission import GpuAsk
from odin.controller.executors.outputs import AttemptDirs
from odin.controller.gpus import GpuHolding
from odin.controller.vocabulary import ActiveAttempt, Observation, RunContext, TaskLaunch, TaskPaths

Report = Callable[[Observation], None]


class OutputsUnsupported(Exception):
    """This executor cannot give tasks `${OUTPUT_PATH}` / `${RESULTS_PATH}` or read what they wrote there."""


class Executor(abc.ABC):
    """Runs attempts somewhere and reports observations through the callback given to `bind`."""

    name: str = "abstract"
    # Whether `recover` wants each STARTING attempt's launch rebuilt (`ActiveAttempt.launch`): an executor whose
    # creates are idempotent (deterministic names) submits it again instead of reporting the attempt lost.
    relaunches_starting: bool = False

    def __init__(self) -> None:
        self._report: Report | None = None

    def bind(self, report: Report) -> None:
        self._report = report

    def report(self, obs: Observation) -> None:
        if self._report is None:
            raise RuntimeError(f"{type(self).__name__} reported before the engine bound it")
        self._report(obs)

    @abc.abstractmethod
    def paths(self, run: RunContext) -> TaskPaths:
        """Where the task will find its files, its run directory and the shared root."""

    def attempt_dirs(self, run: RunContext, task: str, attempt: int) -> AttemptDirs:
        """Where one attempt writes its artifacts and results (a pure function: the executor creates them when it
        starts the attempt, and reads what the task declared once it exits 0, reporting it in the SUCCEEDED
        observation's `resource` as `results` and `artifacts`). Executors that cannot raise `OutputsUnsupported`."""
        raise OutputsUnsupported(
            f"outputs on {self.name.capitalize()} need the artifact store, not configured yet (issue 11 item 4)"
        )

    def input_location(self, task: str, record: Mapping[str, Any]) -> str:
        """What `${tasks.<task>.artifacts.<name>}` becomes in a task's command, args and env, given the artifact's
        record: where the consuming task can read it. Here, the recorded location (a local path); an executor whose
        tasks fetch their inputs first (Kubernetes) names the path it fetches to."""
        return str(record["location"])

    @abc.abstractmethod
    def start(self, launch: TaskLaunch) -> None:
        """Begin an attempt. Report RUNNING when it is, then SUCCEEDED or FAILED. Never raise for task problems."""

    @abc.abstractmethod
    def kill(self, run_id: str, task: str, attempt: int, reason: str) -> None:
        """Stop an attempt; its end is reported as usual (the engine knows why it was killed)."""

    @abc.abstractmethod
    def recover(self, attempts: list[ActiveAttempt]) -> None:
        """Re-attach to attempts started before a restart; report what became of each."""

    def prepare_run(self, run: RunContext) -> None:  # noqa: B027 (optional hook)
        """Called once before a run's first task starts (create directories, check namespaces...)."""

    def finish_run(self, run: RunContext) -> None:  # noqa: B027 (optional hook)
        """Called once when a run is finished (clean-up that must wait for all tasks)."""

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
        """Lines of a task's log: the latest attempt unless `attempt` is given. Multi-pod resources (distributed
        training) take `replica` (e.g. "worker-1") and `container`. `follow` keeps yielding until the attempt ends.
        Executors without logs yield nothing."""
        return iter(())

    def events(self, run_id: str, task: str) -> list[dict[str, Any]]:
        """Platform events about the task's resources (Kubernetes events), oldest first: each a dict with at least
        `time`, `type`, `reason`, `message`, `object`. Executors without such events return []."""
        return []

    def gpu_shortfall(self, asks: Sequence[GpuAsk]) -> str | None:
        """Why one of these GPU tasks can never be placed where this executor runs them (more GPUs, or a GPU model,
        than any node has), naming what exists; None when they can. Admission asks this when a run is created
        (`odin.controller.admission`), so it must answer quickly: an executor that cannot tell answers None (admit)
        rather than wait. Executors that know nothing of GPUs admit everything."""
        return None

    def gpu_holdings(self) -> list[GpuHolding]:
        """The GPUs this executor gave each running attempt, for the GPU usage sampler (`controller/gpu_sampler.py`).
        None known by default: the sampler then finds a task's GPUs only through the attribution of its processes."""
        return []

    def end_follows(self) -> None:  # noqa: B027 (optional hook)
        """The server is stopping: end every `logs(follow=True)` stream now (each ends as if its attempt had), so that
        no request waits on a task that may run for hours. Called from a signal handler: set a flag, nothing more."""

    def shutdown(self) -> None:  # noqa: B027 (optional hook)
        """Stop background work. Running attempts are left running: a restart re-attaches to them."""
