"""Validating untrusted `main.yml` files away from the threads that serve requests and run the engine, with a budget.

Anyone who can push, or call `POST /v1/validate`, chooses what is validated. Validation is linear (see
`odin.schema`), but it is pure Python: in a thread it holds the GIL, and four 1 MiB files validated at once would
stall the API's event loop, the engine and the pollers for as long as they take. So files are validated in a few
worker processes (started with `spawn`, never `fork`: the server is multi-threaded), each call with a time budget. A
file that takes longer (in CPU time, so a busy machine does not fail good files) becomes one problem, "validation took
longer than N s"; a worker that stops answering is killed and replaced. Nothing waits forever.

Results are cached by content (`ResultCache`): the git tree id of a pipeline directory says its files are byte for
byte the same, so browsing pipelines never validates an unchanged one twice. Small files (`INLINE_BYTES`) are
validated in the calling thread, where they cost less than a round trip to a worker.

Templates (`main.yml.jinja2`) are rendered in the workers whatever their size: a 100-byte template can ask for hours
of arithmetic. The renderer bounds what it knows of (`odin.schema.template_sandbox`); the worker bounds the rest: its
CPU-time budget, and its address space (`WORKER_MEMORY`), so a construct no one thought of costs a problem on the
commit, never the server's GIL or memory.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import resource
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from odin.controller.metrics import VALIDATIONS
from odin.schema import Limits, ValidationResult, load_pipeline
from odin.schema.problems import Problem

log = logging.getLogger(__name__)

INLINE_BYTES = 4096
"""Files up to this size are validated in the caller's thread: about a millisecond at worst (a typical `main.yml` is
2 KB and takes a third of that), less than the round trip to a worker."""


@dataclass(frozen=True, slots=True)
class _Request:
    data: bytes
    file: str
    default_name: str
    limits: Limits
    budget: float
    template: bool = False  # a `main.yml.jinja2`: render it with `params`, then validate what it produced
    params: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class _Answer:
    result: ValidationResult
    outcome: str | None  # "timeout" or "failed" when the result is not the file's own
    variables: frozenset[str] = frozenset()  # a template's variables


class _OverBudget(BaseException):
    """Raised in a worker by SIGVTALRM when a validation has used its CPU time (a BaseException, so that no
    `except Exception` of the code it interrupts, such as the renderer's, mistakes it for the file's own failure)."""


class _Alarm:
    """Whether SIGVTALRM may interrupt: only while `load_pipeline` runs, so a late signal cannot hit anything else."""

    armed = False


def _on_budget_spent(signum: int, frame: object) -> None:
    if _Alarm.armed:
        raise _OverBudget


def _serve(conn: Connection, memory: int = 0) -> None:
    """A worker process: validate what arrives until the pipe closes (the server exited or dropped this worker).

    The budget is CPU time (`ITIMER_VIRTUAL`), so a busy machine slows a validation down without failing it; the
    server kills a worker that does not answer within `WALL_FACTOR` times the budget. Workers run at a lower CPU
    priority than the server, so on a busy machine the event loop and the engine come first."""
    with contextlib.suppress(OSError):  # not permitted here: validate at the server's priority
        os.nice(WORKER_NICENESS)
    signal.signal(signal.SIGVTALRM, _on_budget_spent)
    _limit_memory(memory or WORKER_MEMORY)
    conn.send(_READY)  # imports are done: the budget of the first call starts now, not at process start
    while True:
        try:
            request: _Request = conn.recv()
        except (EOFError, OSError):
            return
        try:
            _Alarm.armed = True
            signal.setitimer(signal.ITIMER_VIRTUAL, request.budget)
            answer = _run(request, time.process_time)
            _Alarm.armed = False
        except _OverBudget:
            answer = _Answer(_too_long(request.file, request.budget), "timeout")
        except MemoryError:
            message = f"validation ran out of memory (a worker may use {(memory or WORKER_MEMORY) >> 20} MiB)"
            answer = _Answer(ValidationResult(None, [Problem(request.file, 1, 1, message)]), "failed")
        except Exception as error:  # load_pipeline never raises for bad input; this is a bug, reported as a problem
            result = ValidationResult(None, [Problem(request.file, 1, 1, f"validation failed: {error!r}")])
            answer = _Answer(result, "failed")
        finally:
            _Alarm.armed = False
            signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        conn.send(answer)


def _run(request: _Request, clock: Callable[[], float] = time.monotonic) -> _Answer:
    """Validate (or render then validate) a request. `clock` measures the renderer's own deadline: CPU time in a
    worker, like its budget, so a busy machine slows a template down without failing it."""
    if not request.template:
        result = load_pipeline(
            request.data, file=request.file, default_name=request.default_name, limits=request.limits
        )
        return _Answer(result, None)
    from odin.schema.template import load_template_pipeline  # jinja2 only for a repository with templates

    rendered, result = load_template_pipeline(
        request.data,
        file=request.file,
        default_name=request.default_name,
        params=request.params,
        limits=request.limits,
        clock=clock,
    )
    return _Answer(result, None, rendered.variables if rendered is not None else frozenset())


def _limit_memory(memory: int) -> None:
    """Cap the worker's address space (after its imports), so that a template that allocates without bound gets a
    MemoryError in the worker instead of the machine's memory (and the server's process with it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY and hard < memory:
        return
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_AS, (memory, hard))


def _too_long(file: str, budget: float) -> ValidationResult:
    message = f"validation took longer than {budget:g} s; the file is too large or too complex"
    return ValidationResult(None, [Problem(file, 1, 1, message)])


WALL_FACTOR = 10
"""A worker that has not answered after this many times the budget in wall-clock time is killed (it is stuck, or the
machine is so busy that waiting longer helps no one)."""
WORKER_MEMORY = 2 << 30
"""The address space a worker may use (its imports take about 40 MiB): a template that allocates without bound gets a
MemoryError there, a problem on its commit, instead of the machine's memory."""
WORKER_NICENESS = 10
"""Added to the workers' nice value: about a tenth of the CPU share of the server's threads when both want it."""
_READY = "ready"
_START_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class TemplateResult:
    """A rendered and validated `main.yml.jinja2`, and the variables it reads (the parameters a run gives it)."""

    result: ValidationResult
    variables: frozenset[str]


class WorkerUnavailable(Exception):
    """A worker process could not be started."""


class _Worker:
    """One worker process and the pipe to it."""

    def __init__(self, memory: int = WORKER_MEMORY) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, memory), name="odin-validate", daemon=True)
        self.process.start()
        child.close()
        try:
            ready = self.conn.poll(_START_TIMEOUT) and self.conn.recv() == _READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.kill()
            raise WorkerUnavailable(f"a validation worker did not start within {_START_TIMEOUT:g} s")

    def call(self, request: _Request, wall: float) -> _Answer | None:
        """The result and its outcome ("timeout" when the CPU budget ran out), or None when the worker did not answer
        within `wall` seconds (it must then be killed)."""
        self.conn.send(request)
        if not self.conn.poll(wall):
            return None
        answer: _Answer = self.conn.recv()
        return answer

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.conn.close()


class Validator:
    """Validates `main.yml` content in worker processes, each call within `budget` seconds.

    `workers=0` validates in the calling thread, without a budget (offline tools and tests that do not need
    isolation). Thread-safe: at most `workers` validations run at once; others wait for a free worker.
    """

    def __init__(
        self,
        *,
        workers: int = 2,
        budget: float = 10.0,
        cache_bytes: int = 64 << 20,
        memory: int = WORKER_MEMORY,
        wall_factor: float = WALL_FACTOR,
    ) -> None:
        self.workers = workers
        self.budget = budget
        self.wall_factor = wall_factor  # a worker silent this many times the budget (wall time) is killed
        self.memory = memory  # the address space each worker may use
        self.cache = ResultCache(cache_bytes)
        self._slots = threading.BoundedSemaphore(max(workers, 1))
        self._idle: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        self.validated = 0  # files validated (cache hits are not), for tests and the metric

    def validate(self, data: bytes, *, file: str, default_name: str, limits: Limits | None = None) -> ValidationResult:
        """What `odin.schema.load_pipeline` answers, computed away from this process's GIL when the file is not
        small; "validation took longer than N s" when it ran out of budget."""
        limits = limits or Limits()
        with self._lock:
            self.validated += 1
        if self.workers <= 0 or len(data) <= INLINE_BYTES:
            result, outcome = load_pipeline(data, file=file, default_name=default_name, limits=limits), None
        else:
            answer = self._in_worker(_Request(data, file, default_name, limits, self.budget))
            result, outcome = answer.result, answer.outcome
        VALIDATIONS.labels(outcome or ("valid" if result.ok else "invalid")).inc()
        return result

    def validate_template(
        self,
        data: bytes,
        *,
        file: str,
        default_name: str,
        params: Mapping[str, str] | None = None,
        limits: Limits | None = None,
    ) -> TemplateResult:
        """Render a `main.yml.jinja2` with `params` (none: the defaults the template itself gives, `| default(...)`)
        and validate what it produced, in a worker whatever the template's size, under the same CPU budget and with
        the memory limit of a worker: the renderer bounds its own time (2 s), output and operations, and the worker
        bounds what the renderer does not foresee. `workers=0`: in this thread, with the renderer's bounds only."""
        limits = limits or Limits()
        with self._lock:
            self.validated += 1
        request = _Request(data, file, default_name, limits, self.budget, template=True, params=params)
        answer = _run(request) if self.workers <= 0 else self._in_worker(request)
        VALIDATIONS.labels(answer.outcome or ("valid" if answer.result.ok else "invalid")).inc()
        return TemplateResult(answer.result, answer.variables)

    def _in_worker(self, request: _Request) -> _Answer:
        """The result, and "timeout" or "failed" when it is not the file's own."""
        file = request.file
        with self._slots:
            try:
                worker = self._take()
            except WorkerUnavailable as error:
                log.error("validation of %s: %s", file, error)
                return _Answer(ValidationResult(None, [Problem(file, 1, 1, f"validation failed: {error}")]), "failed")
            started = time.monotonic()
            try:
                answer = worker.call(request, request.budget * self.wall_factor)
            except (EOFError, OSError) as error:  # the worker died (killed from outside, out of memory)
                worker.kill()
                log.error("validation of %s: its worker process died (%s)", file, error)
                message = "validation failed: its worker process died"
                return _Answer(ValidationResult(None, [Problem(file, 1, 1, message)]), "failed")
            if answer is None:
                worker.kill()
                log.warning(
                    "validation of %s (%d bytes): no answer after %g s; its worker was stopped",
                    file,
                    len(request.data),
                    request.budget * self.wall_factor,
                )
                return _Answer(_too_long(file, request.budget), "timeout")
            self._give_back(worker)
        elapsed = time.monotonic() - started
        if answer.outcome == "timeout":
            log.warning(
                "validation of %s (%d bytes) used its %g s of CPU time", file, len(request.data), request.budget
            )
        log.debug("validated %s (%d bytes) in a worker in %.3f s", file, len(request.data), elapsed)
        return answer

    def _take(self) -> _Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.process.is_alive():
                    return worker
                worker.kill()
        return _Worker(self.memory)

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(worker)
                return
        worker.kill()

    def close(self) -> None:
        """Stop the idle workers (busy ones stop when their call returns)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()


class ResultCache:
    """A least-recently-used map bounded by the total weight of its entries (the bytes of the files validated).

    Keys must identify the content completely (a git tree id with the path and limits it was validated with). A
    1 MiB file weighs 1 MiB, so a flood of distinct large files evicts older entries instead of growing memory.
    """

    def __init__(self, max_weight: int) -> None:
        self.max_weight = max_weight
        self._entries: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._weight = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: Hashable, value: Any, weight: int) -> None:
        weight = max(weight, 1)
        if weight > self.max_weight:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._weight -= old[1]
            self._entries[key] = (value, weight)
            self._weight += weight
            while self._weight > self.max_weight:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._weight -= dropped

    def __len__(self) -> int:
        return len(self._entries)


IN_PROCESS = Validator(workers=0)
"""For callers with no controller (offline tools, tests): validates in the calling thread, with a cache."""
