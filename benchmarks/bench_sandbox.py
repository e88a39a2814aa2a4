"""What `ODIN_LOCAL_SANDBOX` adds to starting a task (issue 8 item 2): `/bin/true` started N times with
`subprocess.Popen` (as the local executor does without the sandbox), and N times through `Sandbox.spawn` with the
grants of a typical attempt (the rules on the way to a data directory, a fresh thread that restricts itself and
starts the process). Both wait for each process, interleaved in rounds so that a change of load hits both. It prints
the median and p90 of each in ms, the difference, how many rules an attempt got and how long making them took, and
the machine's load average before and after (the development machine is shared: compare within one run).

Usage: python benchmarks/bench_sandbox.py [--starts 300] [--parent DIR]   (the data directory is made in a fresh
directory in DIR, by default the system's temporary directory: the entries on the way are the cost, and a directory
on the way that changed in the last 2 s is read again at every start)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from odin.controller.executors import landlock
from odin.controller.executors.sandbox import EVERYTHING, READ, STATE_FILES, Grant, Sandbox


def grants(data: Path) -> list[Grant]:
    """What an attempt with one referenced artifact is given (controller/executors/local.py `_grants`)."""
    paths = {
        "trees/abc": READ, "runs/r1": EVERYTHING, "root": EVERYTHING, "outputs/r1/t/1/artifacts": EVERYTHING,
        "outputs/r1/t/1/results": EVERYTHING, "tasks/r1": STATE_FILES, "outputs/r0/p/1/artifacts/model": READ,
    }  # fmt: skip
    for relative in paths:
        (data / relative).mkdir(parents=True, exist_ok=True)
    return [Grant(str(data / relative), access) for relative, access in paths.items()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " Prints the load average before and after."
    )
    parser.add_argument("--starts", type=int, default=300, help="processes started each way")
    parser.add_argument("--parent", type=Path, default=None, help="where the data directory is made")
    args = parser.parse_args()
    abi, why = landlock.abi_version()
    if abi == 0:
        sys.exit(f"no Landlock here: {why}")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=args.parent) as tmp:
        data = Path(tmp) / "data"
        given = grants(data)
        hour_ago = time.time_ns() - 3600 * 10**9
        os.utime(tmp, ns=(hour_ago, hour_ago))  # as if made long ago: only the real directories above change
        sandbox = Sandbox(data, abi)
        making: list[float] = []
        for _ in range(50):
            made = time.perf_counter()
            rules = sandbox.rules(given)
            making.append(time.perf_counter() - made)
            for fd, _ in rules:
                os.close(fd)

        def start() -> subprocess.Popen[bytes]:
            return subprocess.Popen(["/bin/true"], close_fds=True, start_new_session=True)

        plain: list[float] = []
        boxed: list[float] = []
        for _ in range(args.starts):
            began = time.perf_counter()
            start().wait()
            plain.append(time.perf_counter() - began)
            began = time.perf_counter()
            sandbox.spawn(given, start).wait()
            boxed.append(time.perf_counter() - began)
    load_after = os.getloadavg()

    def ms(values: list[float], q: int) -> float:
        return statistics.quantiles(values, n=100)[q - 1] * 1000 if q != 50 else statistics.median(values) * 1000

    print(f"Landlock ABI {abi}; data directory {data}: {len(rules)} rules, made in {making[0] * 1000:.2f} ms the "
          f"first time, then median {statistics.median(making[1:]) * 1000:.2f} ms")  # fmt: skip
    print(f"start and wait /bin/true, {args.starts} times each, ms:  median  p90")
    print(f"  Popen                                        {ms(plain, 50):6.2f} {ms(plain, 90):6.2f}")
    print(f"  Sandbox.spawn (rules, thread, Popen)         {ms(boxed, 50):6.2f} {ms(boxed, 90):6.2f}")
    print(f"  added by the sandbox (median)                {ms(boxed, 50) - ms(plain, 50):6.2f}")
    print("load average (1, 5, 15 min): before " + _load(load_before) + ", after " + _load(load_after))


def _load(averages: tuple[float, float, float]) -> str:
    return " ".join(f"{v:.2f}" for v in averages)


if __name__ == "__main__":
    main()
