"""The local executor: each attempt is a subprocess on this machine (the task's `image` is recorded, not used).

Why a `/bin/sh` wrapper around every task: the wrapper writes the task's pid before it runs and its exit code after,
into the attempt's state directory. The task runs in its own session, so it survives the controller being killed;
a restarted controller finds the exit file (the task finished while Odin was down: its outcome is adopted, it is not
run again), or a live pid it can verify is still that task (it is watched to the end), or neither (the attempt is
reported lost, an INFRA failure, and retried). Its cost is its second process (the shell's fork of the task and
the wait for it), not the shell: a wrapper compiled from C or one supervisor process spawning every task costs as
much (`benchmarks/bench_wrappers.py`, docs/local-executor.md) — the price of never running a finished training step
twice.

Layout under the data directory:
  runs/<run-id>/                      ${RUN_PATH}: the run's outputs, shared by its tasks
  tasks/<run-id>/<task>.<attempt>.{log,pid,exit,gpus}   Odin's own bookkeeping, out of the user's way (.gpus: the
                                      GPU indices the attempt was given, so a restarted controller knows they are held)
  outputs/<run-id>/<task>/<attempt>/artifacts, .../results   ${OUTPUT_PATH} and ${RESULTS_PATH} of each attempt:
                                      created empty, never shared, kept after the run (later tasks and reruns read
                                      them); outside ${RUN_PATH}, whose directories the task user owns
  trees/<tree-oid>/                   ${WORK_PATH}: the pipeline directory at the commit, read-only (see git adapter)

Tasks get a clean environment: a few harmless variables from the server (PATH, HOME, LANG...), the task's `env`, and
the ODIN_* variables of the task. The server's own environment is never passed through, since it holds secrets; with
`task_user` (ODIN_LOCAL_TASK_USER) tasks run as that user, with its HOME, and own their run's directories. What a
task can and cannot reach is in docs/local-executor.md. With a `Sandbox` (ODIN_LOCAL_SANDBOX, `sandbox.py`), each
wrapper starts in a Landlock domain where the data directory is closed but for what the attempt is given (`_grants`).

GPUs (`num_gpus`): given a `GpuProbe` (this machine's GPUs, from Midgard's in-process collection), the executor gives
each task asking for N GPUs N indices of this machine that no other running attempt holds, as `CUDA_VISIBLE_DEVICES`
and `NVIDIA_VISIBLE_DEVICES`; while fewer are free the attempt waits, first come first served, in STARTING. A task
asking for more than the machine has (none at all when NVML is unreadable) fails PERMANENT at once, saying what
exists. Tasks with `num_gpus: 0` get neither variable (their environment is as before).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odin.controller.admission import GpuAsk
from odin.controller.executors import outputs
from odin.controller.executors.base import Executor
from odin.controller.executors.outputs import AttemptDirs, OutputProblem
from odin.controller.executors.reaper import Reaper
from odin.controller.executors.sandbox import EVERYTHING, READ, STATE_FILES, Grant, Sandbox
from odin.controller.executors.task_user import TaskUser
from odin.controller.gpus import GpuHolding, GpuProbe, LocalGpus, gpu_shortfall, model_shortfall
from odin.controller.vocabulary import (
    ActiveAttempt,
    Failure,
    Observation,
    RunContext,
    TaskLaunch,
    TaskPaths,
    TaskStatus,
)
from odin.schema.model import TaskSpec

log = logging.getLogger(__name__)

# $0 is the attempt's state prefix; "$@" is the task's argv. `exec` is deliberately not used: the shell must outlive
# the task to record its exit code. The exit file is written last, so its presence means "finished".
_WRAPPER = 'echo $$ > "$0.pid"; "$@"; rc=$?; echo $rc > "$0.exit"; exit $rc'

PASSTHROUGH_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TERM")

# A Pod or a Job runs one process; distributed kinds need a cluster (and their operators).
LOCAL_RESOURCE_TYPES = ("Pod", "Job")

_SIGNAL_REASONS = {signal.SIGKILL: "Killed", signal.SIGTERM: "Terminated", signal.SIGSEGV: "Segfault"}


@dataclass
class _Attempt:
    run_id: str
    task: str
    attempt: int
    prefix: Path  # <data>/tasks/<run>/<task>.<attempt>: the wrapper appends .pid / .exit, the log is .log
    pid: int
    popen: subprocess.Popen[bytes] | None  # None when re-attached after a restart (not our child any more)
    # The run and task it belongs to: their declared outputs are read when it exits 0.
    run: RunContext | None = None
    spec: TaskSpec | None = None


class LocalExecutor(Executor):
    """Runs attempts as local subprocesses.

    `start` only queues the launch: a few launcher threads do the fork/exec, so the engine thread never waits on
    one, and a single reaper thread learns about every exit.
    """

    name = "local"

    def __init__(
        self,
        data_dir: Path,
        *,
        root_path: Path | None = None,
        kill_grace: float = 10.0,
        passthrough_env: tuple[str, ...] = PASSTHROUGH_ENV,
        launchers: int = 4,
        task_user: TaskUser | None = None,
        gpus: GpuProbe | None = None,
        sandbox: Sandbox | None = None,
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.runs_dir = data_dir / "runs"
        self.tasks_dir = data_dir / "tasks"
        self.outputs_dir = data_dir / "outputs"
        self.root_path = root_path or data_dir / "root"
        self.kill_grace = kill_grace
        self.task_user = task_user
        self.sandbox = sandbox  # None: tasks reach whatever Odin's user (or the task user) can
        self._base_env = {k: os.environ[k] for k in passthrough_env if k in os.environ}
        if task_user is not None:
            self._base_env.update(HOME=task_user.home, USER=task_user.name, LOGNAME=task_user.name)
        self._attempts: dict[tuple[str, str], _Attempt] = {}
        self._early_kills: dict[tuple[str, str, int], str] = {}  # (run, task, attempt) -> reason
        self._lock = threading.Lock()
        self._host = socket.gethostname()
        self._launcher = ThreadPoolExecutor(max_workers=launchers, thread_name_prefix="odin-launch")
        self._reaper = Reaper()
        self._closing = threading.Event()  # end_follows: log streams stop following
        # GPUs: the probe (None: num_gpus is ignored), this machine's GPUs once read, the indices each live attempt
        # holds ((run, task, attempt) -> indices), and the launches waiting for enough of them, oldest first.
        self._gpu_probe = gpus
        self._gpu_inventory: LocalGpus | None = None
        self._gpus_held: dict[tuple[str, str, int], tuple[int, ...]] = {}
        self._gpus_since: dict[tuple[str, str, int], float] = {}  # when each was given (epoch s), for GPU-seconds
        self._gpu_queue: list[TaskLaunch] = []

    # -- contract -----------------------------------------------------------------------------------------------
    def paths(self, run: RunContext) -> TaskPaths:
        run_path = str(self.runs_dir / run.storage_id)
        return TaskPaths(work_path=run.work_path or run_path, run_path=run_path, root_path=str(self.root_path))

    def prepare_run(self, run: RunContext) -> None:
        run_dirs = (self.runs_dir / run.storage_id, self.tasks_dir / run.run_id, self.root_path)
        for directory in run_dirs:
            directory.mkdir(parents=True, exist_ok=True)
        if self.task_user is not None:
            # The task user passes through runs/ and tasks/ (0711: no listing of other runs) and owns its run's
            # directories (its wrapper writes the .pid/.exit files into tasks/<run>/); nothing else of Odin's.
            for parent in (self.runs_dir, self.tasks_dir):
                parent.chmod(0o711)
            for directory in run_dirs:
                os.chown(directory, self.task_user.uid, self.task_user.gid)

    def attempt_dirs(self, run: RunContext, task: str, attempt: int) -> AttemptDirs:
        base = self.outputs_dir / run.run_id / task / str(attempt)
        return AttemptDirs(output_path=str(base / "artifacts"), results_path=str(base / "results"))

    def _make_attempt_base(self, run_id: str, task: str, attempt: int) -> None:
        """`outputs/<run>/<task>/<attempt>`, made top-down: two `mkdir`s where `mkdir(parents=True)` of each output
        directory tries every missing level from the bottom first (eight or nine system calls a task, a measurable
        part of a trivial task's launch; issue 15 item 1). Odin's, as before: only the two leaves are the task's."""
        task_dir = self.outputs_dir / run_id / task
        for directory in (task_dir, task_dir / str(attempt)):
            try:
                directory.mkdir()
            except FileExistsError:
                pass  # a later attempt, or a re-start of this one
            except FileNotFoundError:
                directory.mkdir(parents=True, exist_ok=True)  # the run's outputs directory is made with the first

    def attempt_prefix(self, run_id: str, task: str, attempt: int) -> Path:
        return self.tasks_dir / run_id / f"{task}.{attempt}"

    def start(self, launch: TaskLaunch) -> None:
        kind = launch.spec.resource_type
        if kind not in LOCAL_RESOURCE_TYPES:
            self.report(
                Observation(
                    launch.run.run_id, launch.task, launch.attempt, TaskStatus.FAILED, reason="UnsupportedResourceType",
                    message=f"resource_type {kind} needs ODIN_EXECUTOR=kubernetes (the local executor runs "
                    f"{' and '.join(LOCAL_RESOURCE_TYPES)} tasks as processes)",
                    failure=Failure.PERMANENT,
                )
            )  # fmt: skip
            return
        if launch.spec.num_gpus > 0 and self._gpu_probe is not None:
            self._start_with_gpus(launch)
            return
        self._launcher.submit(self._launch, launch)

    # -- GPUs -------------------------------------------------------------------------------------------------------
    def gpu_inventory(self) -> LocalGpus | None:
        """This machine's GPUs (read once: they do not come and go while Odin runs); None without a probe."""
        if self._gpu_probe is None:
            return None
        if self._gpu_inventory is None:
            try:
                inventory = self._gpu_probe()
            except Exception as e:  # a probe must not take the executor down: no GPU, and why
                log.exception("reading this machine's GPUs failed")
                inventory = LocalGpus(unavailable_reason=f"reading the GPUs failed: {e}")
            self._gpu_inventory = inventory
        return self._gpu_inventory

    def gpu_shortfall(self, asks: Sequence[GpuAsk]) -> str | None:
        """This machine is the only node: a task asking for more GPUs than it has, or for a GPU model it does not
        have (`nvidia.com/gpu.product` in `node_selector`, as GPU feature discovery labels a node), can never start.
        Other labels mean nothing here; without a probe, nothing is judged."""
        inventory = self.gpu_inventory()
        wanted = {a.task: a.gpus for a in asks if a.gpus > 0}
        return (gpu_shortfall(wanted, inventory) if wanted else None) or model_shortfall(asks, inventory)

    def _start_with_gpus(self, launch: TaskLaunch) -> None:
        inventory = self.gpu_inventory()
        assert inventory is not None
        wanted = launch.spec.num_gpus
        if wanted > len(inventory.gpus):
            self.report(
                Observation(
                    launch.run.run_id, launch.task, launch.attempt, TaskStatus.FAILED,
                    reason="NoGpu" if not inventory.gpus else "NotEnoughGpus",
                    message=f"task {launch.task} asks for {wanted} GPU{'s' if wanted > 1 else ''}; "
                    f"this machine has {inventory.describe()}",
                    failure=Failure.PERMANENT,
                )
            )  # fmt: skip
            return
        with self._lock:
            self._gpu_queue.append(launch)
        self._admit_gpu_tasks()

    def _admit_gpu_tasks(self) -> None:
        """Launch the waiting attempts that the free GPUs now fit, oldest first; the first that does not fit waits
        (and those behind it: a task asking for many GPUs is not starved by a stream of small ones)."""
        inventory = self._gpu_inventory
        if inventory is None:
            return
        ready: list[tuple[TaskLaunch, tuple[int, ...]]] = []
        with self._lock:
            held = {i for indices in self._gpus_held.values() for i in indices}
            free = [g.index for g in inventory.gpus if g.index not in held]
            while self._gpu_queue and self._gpu_queue[0].spec.num_gpus <= len(free):
                launch = self._gpu_queue.pop(0)
                wanted = launch.spec.num_gpus
                given, free = tuple(free[:wanted]), free[wanted:]
                self._gpus_held[(launch.run.run_id, launch.task, launch.attempt)] = given
                self._gpus_since[(launch.run.run_id, launch.task, launch.attempt)] = time.time()
                ready.append((launch, given))
        for launch, given in ready:
            log.info("run %s task %s attempt %d: GPUs %s", launch.run.run_id, launch.task, launch.attempt, given)
            try:
                self._launcher.submit(self._launch, launch, given)
            except RuntimeError:  # shutting down: a restart finds the attempt never started and retries it
                self._release_gpus(launch.run.run_id, launch.task, launch.attempt, admit=False)

    def _release_gpus(self, run_id: str, task: str, attempt: int, *, admit: bool = True) -> None:
        with self._lock:
            released = self._gpus_held.pop((run_id, task, attempt), None)
            self._gpus_since.pop((run_id, task, attempt), None)
        if released is not None and admit:
            self._admit_gpu_tasks()

    def gpu_holdings(self) -> list[GpuHolding]:
        with self._lock:
            return [
                GpuHolding(run_id, task, attempt, indices, self._gpus_since.get((run_id, task, attempt), 0.0))
                for (run_id, task, attempt), indices in self._gpus_held.items()
            ]

    def _unqueue(self, run_id: str, task: str, attempt: int) -> bool:
        """Remove a launch still waiting for GPUs (killed before it started); True if it was waiting."""
        with self._lock:
            for i, waiting in enumerate(self._gpu_queue):
                if (waiting.run.run_id, waiting.task, waiting.attempt) == (run_id, task, attempt):
                    del self._gpu_queue[i]
                    return True
        return False

    # -- launching --------------------------------------------------------------------------------------------------
    def _launch(self, launch: TaskLaunch, gpus: tuple[int, ...] | None = None) -> None:
        run_id, task, attempt = launch.run.run_id, launch.task, launch.attempt
        prefix = self.attempt_prefix(run_id, task, attempt)
        for stale in (".pid", ".exit", ".gpus"):  # a re-start of the same attempt number after a lost start
            Path(f"{prefix}{stale}").unlink(missing_ok=True)
        log_path = f"{prefix}.log"
        argv = [*launch.command, *launch.args]
        env = {**self._base_env, **launch.env}
        if gpus is not None:
            visible = ",".join(str(i) for i in gpus)
            env.update(CUDA_VISIBLE_DEVICES=visible, NVIDIA_VISIBLE_DEVICES=visible)
        cwd = launch.paths.work_path if Path(launch.paths.work_path).is_dir() else launch.paths.run_path
        user = self.task_user
        as_user: dict[str, Any] = {}
        if user is not None:
            as_user = {"user": user.uid, "group": user.gid, "extra_groups": list(user.groups)}
        try:
            owner = (user.uid, user.gid) if user is not None else None
            self._make_attempt_base(run_id, task, attempt)
            outputs.prepare(self.attempt_dirs(launch.run, task, attempt), owner)
            if launch.spec.uses_variable("TASK_PATH"):  # the original Odin's per-task directory: <RUN_PATH>/<task>
                _make_dir(Path(launch.paths.run_path) / task, owner)
            env.update(_make_ephemeral(prefix, launch.spec, owner))
            if self.sandbox is not None and self.sandbox.closes_entries_in(env.get("TMPDIR") or DEFAULT_TMPDIR):
                env["TMPDIR"] = _make_private_tmp(prefix, owner)  # `mkstemp` would be refused in the closed one
            if gpus is not None:  # before the task exists: a restart must never see it running without its GPUs
                Path(f"{prefix}.gpus").write_text(",".join(str(i) for i in gpus) + "\n")
            with Path(log_path).open("ab") as log_file:

                def start() -> subprocess.Popen[bytes]:
                    return subprocess.Popen(
                        ["/bin/sh", "-c", _WRAPPER, str(prefix), *argv],
                        cwd=cwd,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log_file,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        close_fds=True,
                        **as_user,
                    )

                popen = start() if self.sandbox is None else self.sandbox.spawn(self._grants(launch, env), start)
        except OSError as e:
            self._release_gpus(run_id, task, attempt)
            self.report(
                Observation(
                    run_id, task, attempt, TaskStatus.FAILED,
                    reason="StartError", message=f"cannot start: {e}", failure=Failure.INFRA,
                )
            )  # fmt: skip
            return
        record = _Attempt(run_id, task, attempt, prefix, popen.pid, popen, launch.run, launch.spec)
        with self._lock:
            self._attempts[(run_id, task)] = record
            killed_early = self._early_kills.pop((run_id, task, attempt), None)
        resource = {
            "pid": popen.pid,
            "resource_kind": "process",
            "resource_name": argv[0] if argv else "",
            "node": self._host,
            "log_path": log_path,
        }
        self.report(Observation(run_id, task, attempt, TaskStatus.RUNNING, resource=resource))
        self._reaper.watch(popen.pid, lambda: self._child_exited(record))
        if killed_early is not None:
            log.info("run %s task %s attempt %d: killed as it started (%s)", run_id, task, attempt, killed_early)
            self.kill(run_id, task, attempt, killed_early)

    def _grants(self, launch: TaskLaunch, env: dict[str, str]) -> list[Grant]:
        """What of the data directory the attempt is given (docs/local-executor.md, "What a task can reach"): its
        run's directories and the shared root path, its own output directories and ephemeral volumes, its working
        tree and the artifacts it references (read only), and its state directory for the wrapper's files."""
        dirs = self.attempt_dirs(launch.run, launch.task, launch.attempt)
        prefix = self.attempt_prefix(launch.run.run_id, launch.task, launch.attempt)
        grants = [
            Grant(launch.paths.work_path, READ),
            Grant(launch.paths.run_path, EVERYTHING),
            Grant(os.path.realpath(launch.paths.root_path), EVERYTHING),  # Odin's setting: a link there is meant
            Grant(dirs.output_path, EVERYTHING),
            Grant(dirs.results_path, EVERYTHING),
            Grant(str(prefix.parent), STATE_FILES),
        ]
        grants += [Grant(env[ephemeral_env_name(v.name)], EVERYTHING) for v in launch.spec.ephem_volumes]
        if env.get("TMPDIR", "").startswith(f"{prefix}{EPHEMERAL_SUFFIX}/"):
            grants.append(Grant(env["TMPDIR"], EVERYTHING))
        grants += [Grant(i.location, READ) for i in launch.inputs if i.location.startswith("/")]
        return grants

    def kill(self, run_id: str, task: str, attempt: int, reason: str) -> None:
        if self._unqueue(run_id, task, attempt):
            self.report(
                Observation(
                    run_id, task, attempt, TaskStatus.FAILED, reason="Terminated",
                    message=f"killed while waiting for GPUs ({reason})", failure=Failure.USER,
                )
            )  # fmt: skip
            return
        with self._lock:
            record = self._attempts.get((run_id, task))
            if record is not None and record.attempt > attempt:
                return  # an older attempt: already over
            if record is None or record.attempt != attempt:
                # Asked to kill an attempt still being launched (a cancel right after the start): remember it, so
                # the launch kills it as soon as it exists instead of letting it run to its end.
                self._early_kills[(run_id, task, attempt)] = reason
                return
        _signal_group(record.pid, signal.SIGTERM)
        timer = threading.Timer(self.kill_grace, _signal_group, args=(record.pid, signal.SIGKILL))
        timer.daemon = True
        timer.start()

    def recover(self, attempts: list[ActiveAttempt]) -> None:
        for a in attempts:
            run_id, task = a.run.run_id, a.spec.name
            prefix = self.attempt_prefix(run_id, task, a.attempt)
            outcome = _read_int(f"{prefix}.exit")
            if outcome is not None:
                log.info(
                    "run %s task %s attempt %d ended while Odin was down: exit %d", run_id, task, a.attempt, outcome
                )
                self._report_end(a.run, a.spec, a.attempt, outcome, adopted=True)
                continue
            pid = _read_int(f"{prefix}.pid") or a.resource.get("pid")
            if pid and _is_our_wrapper(int(pid), prefix):
                log.info("run %s task %s attempt %d still running (pid %s): re-attached", run_id, task, a.attempt, pid)
                record = _Attempt(run_id, task, a.attempt, prefix, int(pid), None, a.run, a.spec)
                gpus = _read_gpus(f"{prefix}.gpus")
                with self._lock:
                    self._attempts[(run_id, task)] = record
                    if gpus:  # it keeps the GPUs it was given: no new task gets them while it runs
                        self._gpus_held[(run_id, task, a.attempt)] = gpus
                        self._gpus_since[(run_id, task, a.attempt)] = time.time()
                self.report(Observation(run_id, task, a.attempt, TaskStatus.RUNNING, resource={"pid": int(pid)}))
                self._reaper.watch(int(pid), lambda r=record: self._adopted_exited(r))  # type: ignore[misc]
                continue
            log.warning("run %s task %s attempt %d was lost while Odin was down; retrying", run_id, task, a.attempt)
            self.report(
                Observation(
                    run_id, task, a.attempt, TaskStatus.FAILED, reason="Orphaned",
                    message="the controller stopped while this attempt ran, and its outcome was lost",
                    failure=Failure.INFRA,
                )
            )  # fmt: skip

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
        if attempt is None:
            found = sorted(int(p.name.rsplit(".", 2)[1]) for p in (self.tasks_dir / run_id).glob(f"{task}.*.log"))
            if not found:
                return iter(())
            attempt = found[-1]
        return _read_log(self.attempt_prefix(run_id, task, attempt), follow=follow, tail=tail, closing=self._closing)

    def end_follows(self) -> None:
        self._closing.set()

    def shutdown(self) -> None:
        """Leave running tasks alone: they record their own exit codes and a restart adopts them."""
        self._closing.set()
        self._launcher.shutdown(wait=True)
        self._reaper.stop()
        if self.sandbox is not None:
            self.sandbox.close()

    # -- exits ------------------------------------------------------------------------------------------------------
    def _child_exited(self, record: _Attempt) -> None:
        assert record.popen is not None
        rc = record.popen.wait()
        outcome = _read_int(f"{record.prefix}.exit")
        code = outcome if outcome is not None else (128 - rc if rc < 0 else rc)  # killed wrapper: signal exit
        self._forget(record)
        self._report_end_of(record, code)

    def _adopted_exited(self, record: _Attempt) -> None:
        self._forget(record)
        outcome = _read_int(f"{record.prefix}.exit")
        if outcome is None:
            self.report(
                Observation(
                    record.run_id, record.task, record.attempt, TaskStatus.FAILED, reason="Orphaned",
                    message="the adopted process ended without recording its exit code", failure=Failure.INFRA,
                )
            )  # fmt: skip
            return
        self._report_end_of(record, outcome)

    def _report_end_of(self, record: _Attempt, code: int) -> None:
        if record.run is None or record.spec is None:
            self.report(self._ended(record.run_id, record.task, record.attempt, code, adopted=False))
            return
        self._report_end(record.run, record.spec, record.attempt, code, adopted=False)

    def _report_end(self, run: RunContext, spec: TaskSpec, attempt: int, code: int, *, adopted: bool) -> None:
        """Report how an attempt ended; one that exited 0 with declared outputs has them read first, on a launcher
        thread (digesting a large artifact must not hold up the reaper, which reports every other exit)."""
        if code != 0 or not outputs.declares_outputs(spec):
            self.report(self._ended(run.run_id, spec.name, attempt, code, adopted=adopted))
            return

        def read_and_report() -> None:
            self.report(self._ended(run.run_id, spec.name, attempt, 0, adopted=adopted, outputs_of=(run, spec)))

        try:
            self._launcher.submit(read_and_report)
        except RuntimeError:  # shutting down: report from here (a restart would adopt it from its exit file anyway)
            read_and_report()

    def _forget(self, record: _Attempt) -> None:
        with self._lock:
            if self._attempts.get((record.run_id, record.task)) is record:
                del self._attempts[(record.run_id, record.task)]
        self._release_gpus(record.run_id, record.task, record.attempt)

    def _ended(
        self,
        run_id: str,
        task: str,
        attempt: int,
        code: int,
        *,
        adopted: bool,
        outputs_of: tuple[RunContext, TaskSpec] | None = None,
    ) -> Observation:
        _remove_ephemeral(self.attempt_prefix(run_id, task, attempt))
        note = " (finished while the controller was down)" if adopted else ""
        if code == 0:
            produced: dict[str, Any] = {}
            if outputs_of is not None:
                try:
                    produced = outputs.collect(outputs_of[1], self.attempt_dirs(outputs_of[0], task, attempt))
                except OutputProblem as e:
                    return Observation(
                        run_id, task, attempt, TaskStatus.FAILED, exit_code=0, reason=e.reason, message=e.message,
                        failure=Failure.PERMANENT,
                    )  # fmt: skip
                except OSError as e:
                    return Observation(
                        run_id, task, attempt, TaskStatus.FAILED, exit_code=0, reason="OutputsUnreadable",
                        message=f"cannot read the task's outputs: {e}", failure=Failure.INFRA,
                    )  # fmt: skip
            return Observation(
                run_id, task, attempt, TaskStatus.SUCCEEDED, exit_code=0, reason="Completed",
                message="finished while the controller was down" if adopted else None, resource=produced,
            )  # fmt: skip
        reason, failure, message = _classify_exit(code)
        return Observation(
            run_id, task, attempt, TaskStatus.FAILED, exit_code=code, reason=reason, message=message + note,
            failure=failure,
        )  # fmt: skip


def _classify_exit(code: int) -> tuple[str, Failure, str]:
    if code == 127:
        return "CommandNotFound", Failure.PERMANENT, "exit code 127: the command was not found (see the task log)"
    if code == 126:
        return "NotExecutable", Failure.PERMANENT, "exit code 126: the command is not executable"
    if code > 128 and code - 128 < 65:
        sig = signal.Signals(code - 128) if code - 128 in signal.valid_signals() else None
        name = sig.name if sig else f"signal {code - 128}"
        reason = _SIGNAL_REASONS.get(sig, "Signaled") if sig else "Signaled"
        return reason, Failure.USER, f"killed by {name}"
    if code < 0:
        return "Signaled", Failure.USER, f"killed by signal {-code}"
    return "Error", Failure.USER, f"exit code {code}"


def _signal_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # the wrapper leads its own session, so its pid is the group id


def _read_int(path: str) -> int | None:
    """An integer written by the wrapper; None if the file is missing or not (yet) complete."""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.lstrip("-").isdigit() else None


def _read_gpus(path: str) -> tuple[int, ...]:
    """The GPU indices recorded for an attempt when it started; () if none were."""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return ()
    return tuple(int(i) for i in text.split(",") if i.strip().isdigit())


def _is_our_wrapper(pid: int, prefix: Path) -> bool:
    """Guard against pid reuse: the live process must be our wrapper for exactly this attempt."""
    import psutil  # only when a restarted controller adopts a live attempt: off `odin run`'s start-up (~5 ms)

    try:
        cmdline = psutil.Process(pid).cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return len(cmdline) >= 4 and cmdline[1:4] == ["-c", _WRAPPER, str(prefix)]


def _read_log(prefix: Path, *, follow: bool, tail: int | None, closing: threading.Event) -> Iterator[str]:
    path = Path(f"{prefix}.log")
    done = Path(f"{prefix}.exit")
    if not path.exists():
        return
    with path.open("r", encoding="utf-8", errors="replace") as f:
        if tail is not None:
            lines = f.readlines()
            yield from lines[-tail:] if tail > 0 else []
        else:
            yield from f
        if not follow:
            return
        while True:
            line = f.readline()
            if line:
                yield line
                continue
            if done.exists() or closing.is_set():  # ended, or the server is stopping
                yield from f
                return
            pid = _read_int(f"{prefix}.pid")
            if pid is not None and not _is_our_wrapper(pid, prefix):
                yield from f  # the wrapper is gone without an exit code: killed (cancel, timeout), so it ended
                return
            closing.wait(0.2)


def _make_dir(directory: Path, owner: tuple[int, int] | None) -> None:
    """Create `directory` (kept across attempts, as the original kept `${TASK_PATH}`), owned by the task user."""
    directory.mkdir(parents=True, exist_ok=True)
    if owner is not None:
        os.chown(directory, *owner)


EPHEMERAL_SUFFIX = ".ephem"
"""`<tasks>/<run>/<task>.<attempt>.ephem/<volume>`: an attempt's ephemeral volumes, removed when it ends."""


def ephemeral_env_name(volume: str) -> str:
    """`ODIN_EPHEM_<NAME>` (`dshm` → `ODIN_EPHEM_DSHM`): where a local task finds an ephemeral volume's directory,
    since a process has no mount namespace to put it at the pod's mount path."""
    return "ODIN_EPHEM_" + re.sub(r"[^A-Za-z0-9]", "_", volume).upper()


def _make_ephemeral(prefix: Path, spec: TaskSpec, owner: tuple[int, int] | None) -> dict[str, str]:
    """A fresh directory per ephemeral volume of the attempt, and the environment naming them."""
    env: dict[str, str] = {}
    if not spec.ephem_volumes:
        return env
    base = Path(f"{prefix}{EPHEMERAL_SUFFIX}")
    shutil.rmtree(base, ignore_errors=True)  # a re-start of the same attempt after a lost start
    for volume in spec.ephem_volumes:
        directory = base / volume.name
        _make_dir(directory, owner)
        env[ephemeral_env_name(volume.name)] = str(directory)
    return env


DEFAULT_TMPDIR = "/tmp"  # noqa: S108  (where mktemp(1) and mkstemp(3) look when TMPDIR is unset)

PRIVATE_TMP = ".tmp"
"""`<tasks>/<run>/<task>.<attempt>.ephem/.tmp`: the attempt's `TMPDIR` when the sandbox closes the usual one (a data
directory under `/tmp` closes `/tmp` itself to new entries); removed with the ephemeral volumes. Volume names are DNS
labels, so none can be `.tmp`."""


def _make_private_tmp(prefix: Path, owner: tuple[int, int] | None) -> str:
    """A fresh temporary directory for the attempt alone, for `TMPDIR`."""
    directory = Path(f"{prefix}{EPHEMERAL_SUFFIX}") / PRIVATE_TMP
    shutil.rmtree(directory, ignore_errors=True)  # a re-start of the same attempt after a lost start
    _make_dir(directory.parent, owner)
    _make_dir(directory, owner)
    return str(directory)


def _remove_ephemeral(prefix: Path) -> None:
    """Ephemeral volumes live as long as the attempt (an `emptyDir` as long as its pod)."""
    base = Path(f"{prefix}{EPHEMERAL_SUFFIX}")
    if base.exists():
        shutil.rmtree(base, ignore_errors=True)
