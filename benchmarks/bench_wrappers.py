"""What the local executor's per-task `sh` wrapper costs, against the ways it could be replaced (issue 15 item 1).

The wrapper (`odin.controller.executors.local._WRAPPER`) writes the task's pid before it runs and its exit code after,
so a task that ends while Odin is down is adopted with its real outcome instead of being run again. This runs the
same N processes of `/bin/true` from a plain 2-thread pool (as `bench_local_executor.py` does), each one:

- `bare`: `/bin/true` itself (what a pool without any bookkeeping pays);
- `sh exec`: `sh -c 'exec "$@"'` (the shell's own start-up, and nothing else: it replaces itself by the task);
- `sh wrapper`: the executor's wrapper, as it runs under Odin (its own session, its pid and exit files);
- `C wrapper`: the wrapper's job in C (pid file, `vfork` + `exec` of the task, `waitpid`, exit file), compiled
  with `cc` into a temporary directory for this run only (skipped, saying so, when there is no `cc`): what "a wrapper
  exec'd directly, without a shell" would cost;
- `supervisor`: one long-lived process (Python, started once, in its own session) that spawns every task and writes
  its exit file, asked over a pipe and answering over another: the "one supervisor instead of a wrapper per task"
  design.

It prints the median wall time per task of each (`--repeat` rounds, interleaved), its ratio to `bare`, and the
load average before and after. The wrapper's cost is its second process (the shell's fork of the task, and the wait for
it), not the shell: compare `sh exec` with `bare`, and `C wrapper` and `supervisor` with `sh wrapper`.

Usage: python benchmarks/bench_wrappers.py [--tasks 500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

C_WRAPPER = r"""
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
static void put(const char *prefix, const char *ext, int v) {
    char path[4096], buf[32];
    snprintf(path, sizeof path, "%s%s", prefix, ext);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return;
    int n = snprintf(buf, sizeof buf, "%d\n", v);
    if (write(fd, buf, n) < 0) {}
    close(fd);
}
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    put(argv[1], ".pid", getpid());
    pid_t pid = vfork();
    if (pid == 0) { execvp(argv[2], argv + 2); _exit(127); }
    int st;
    waitpid(pid, &st, 0);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    put(argv[1], ".exit", rc);
    return rc;
}
"""

SUPERVISOR = r"""
import os, sys, threading
state = sys.argv[1]
out = os.fdopen(1, "w", buffering=1)
children, cond, write_lock = {}, threading.Condition(), threading.Lock()

def reap():
    while True:
        with cond:
            while not children:
                cond.wait()
        pid, status = os.wait()
        with cond:
            name = children.pop(pid)
        with open(f"{state}/{name}.exit", "w") as f:
            f.write(f"{os.waitstatus_to_exitcode(status)}\n")
        with write_lock:
            out.write(name + "\n")

threading.Thread(target=reap, daemon=True).start()
for line in sys.stdin:
    name = line.strip()
    with cond:
        pid = os.posix_spawn("/bin/true", ["/bin/true"], {}, setsid=True)
        children[pid] = name
        cond.notify()
    with open(f"{state}/{name}.pid", "w") as f:
        f.write(f"{pid}\n")
"""


class Supervisor:
    """The supervisor process and the pipe to it; `run(name)` returns once the task `name` has ended."""

    def __init__(self, state: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-S", "-c", SUPERVISOR, state],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        self._done: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._done[line.strip()].set()

    def run(self, name: str) -> None:
        done = self._done[name] = threading.Event()
        assert self.process.stdin is not None
        with self._lock:
            self.process.stdin.write(name + "\n")
            self.process.stdin.flush()
        done.wait()

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


def compile_c_wrapper(directory: Path) -> Path | None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    source, binary = directory / "wrap.c", directory / "wrap"
    source.write_text(C_WRAPPER)
    subprocess.run([cc, "-O2", "-o", str(binary), str(source)], check=True)
    return binary


def timed(n: int, workers: int, one: Callable[[int], object]) -> float:
    """Seconds per task, `n` tasks from a pool of `workers` threads."""
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(n)))
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    from odin.controller.executors.local import _WRAPPER

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="odin-bench-wrappers-") as tmp:
        state = Path(tmp)
        c_wrapper = compile_c_wrapper(state)
        supervisor = Supervisor(str(state))
        counter = iter(range(10**9))

        def run(argv: list[str]) -> int:
            return subprocess.run(argv, check=False, start_new_session=True).returncode

        def name() -> str:
            return f"t{next(counter)}"

        variants: dict[str, Callable[[int], object]] = {
            "bare": lambda _: run(["/bin/true"]),
            "sh exec": lambda _: run(["/bin/sh", "-c", 'exec "$@"', "sh", "/bin/true"]),
            "sh wrapper": lambda _: run(["/bin/sh", "-c", _WRAPPER, str(state / name()), "/bin/true"]),
        }
        if c_wrapper is not None:
            variants["C wrapper"] = lambda _: run([str(c_wrapper), str(state / name()), "/bin/true"])
        variants["supervisor"] = lambda _: supervisor.run(name())
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.repeat):
            for label, one in variants.items():
                times[label].append(timed(args.tasks, args.workers, one))
        supervisor.close()
    load_after = os.getloadavg()

    bare = statistics.median(times["bare"])
    print(f"{args.tasks} tasks of /bin/true from {args.workers} threads, median of {args.repeat}:")
    for label, values in times.items():
        median = statistics.median(values)
        print(f"  {label:11s} {median * 1000:7.3f} ms/task   {median / bare:5.2f}x bare")
    if c_wrapper is None:
        print("  C wrapper   skipped: no C compiler (cc) on this machine")
    print("load average (1, 5, 15 min): before " + _load(load_before) + ", after " + _load(load_after))


def _load(averages: tuple[float, float, float]) -> str:
    return " ".join(f"{v:.2f}" for v in averages)


if __name__ == "__main__":
    main()
