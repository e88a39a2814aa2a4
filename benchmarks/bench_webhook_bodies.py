"""What a flood of large unauthenticated webhook bodies costs a real `odin serve` (issue 8, item 5).

Target: 16 concurrent 25 MiB unsigned bodies → the server's peak RSS grows by ≤ 100 MB, and is back to its baseline
afterwards.

Each round opens `--clients` connections at once to `/webhooks/github` and sends a body of just under
`ODIN_WEBHOOK_MAX_BODY` (25 MiB) on each, as fast as loopback allows, then reads the answer. Two kinds of sender:

- **unsigned**: no signature header (answered from the headers, before the body is read);
- **wrong signature**: a well-formed `sha256=` signature that does not match, so the body has to be read to its end
  to know — the expensive case: it streams through the HMAC into a spool file, with at most
  `ODIN_WEBHOOK_LARGE_BODIES` such bodies at once (the others get 503 at once).

The server's RSS (psutil, sampled every 5 ms from this process) is printed before, at its peak and after each round;
the load average at the start and at the end (the development machine is shared: a figure taken while something else
ran says so).

    .venv/bin/python benchmarks/bench_webhook_bodies.py [--clients 16] [--mib 25] [--rounds 2] [--large-bodies N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pygit2
from _serving import wait_healthy  # benchmarks/ is the script's own directory, first on sys.path

MB = 1_000_000
MIB = 1024 * 1024
SECRET = "bench-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_repository(root: Path) -> Path:
    repo = pygit2.init_repository(str(root / "remote.git"), bare=True, initial_head="main")
    blob = repo.create_blob(b"name: hello\ntasks:\n  - {name: hi, image: busybox, command: [echo, hi]}\n")
    inner = repo.TreeBuilder()
    inner.insert("main.yml", blob, pygit2.enums.FileMode.BLOB)
    top = repo.TreeBuilder()
    top.insert("hello", inner.write(), pygit2.enums.FileMode.TREE)
    sig = pygit2.Signature("bench", "bench@odin.invalid", 1_700_000_000, 0)
    repo.create_commit("refs/heads/main", sig, sig, "seed", top.write(), [])
    return root / "remote.git"


class RssSampler:
    """Peak RSS of a process, sampled on a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> RssSampler:
        self.peak = self.process.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def send_one(port: int, body: memoryview, headers: dict[str, str]) -> str:
    """Send one request with `body`; the answer's status, or what happened to the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [
        "POST /webhooks/github HTTP/1.1",
        "Host: odin",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "X-GitHub-Event: push",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    try:
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        step = 256 * 1024
        for start in range(0, len(body), step):
            writer.write(body[start : start + step])
            await writer.drain()
        line = await asyncio.wait_for(reader.readline(), 120)
        return line.split(b" ")[1].decode() if line else "closed"
    except (ConnectionResetError, BrokenPipeError):
        # The server answered from the headers and closed without reading the body; read what it said.
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
            return (line.split(b" ")[1].decode() + " (then closed)") if line else "reset"
        except (ConnectionError, TimeoutError):
            return "reset"
    finally:
        writer.close()


async def flood(port: int, clients: int, body: memoryview, headers: dict[str, str]) -> Counter[str]:
    answers = await asyncio.gather(*(send_one(port, body, headers) for _ in range(clients)))
    return Counter(answers)


def settle(process: psutil.Process, baseline: int, seconds: float = 5.0) -> int:
    """RSS once it stopped falling (or after `seconds`)."""
    deadline = time.monotonic() + seconds
    last = process.memory_info().rss
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = process.memory_info().rss
        if now <= baseline + 5 * MB or now == last:
            return now
        last = now
    return process.memory_info().rss


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--mib", type=float, default=25)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--large-bodies", type=int, default=None, help="ODIN_WEBHOOK_LARGE_BODIES (default: the server's, 4)"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="odin-bench-bodies-"))
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ODIN_")},
        "ODIN_DATA_DIR": str(tmp / "state"),
        "ODIN_PORT": str(port),
        "ODIN_REPO": str(seed_repository(tmp)),
        "ODIN_WEBHOOK_SECRET": SECRET,
        "ODIN_POLL_INTERVAL": "3600",
        "ODIN_LOG_LEVEL": "ERROR",
        **({"ODIN_WEBHOOK_LARGE_BODIES": str(args.large_bodies)} if args.large_bodies else {}),
    }
    log = (tmp / "server.log").open("wb")
    command = [sys.executable, "-c", "from odin.cli.admin import main; main()", "serve"]
    server = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server, tmp / "server.log")
        body = memoryview(b"{" + b" " * (int(args.mib * MIB) - 1024 - 2) + b"}")
        print(f"odin serve on {url}; {args.clients} concurrent bodies of {len(body) / MIB:.2f} MiB each")
        print(f"machine: {os.cpu_count()} CPUs, load average {load_average()} at start")
        process = psutil.Process(server.pid)
        senders = {
            "unsigned": {},
            "wrong signature": {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        }
        worst = 0
        for kind, headers in senders.items():
            for round_no in range(1, args.rounds + 1):
                baseline = process.memory_info().rss
                started = time.perf_counter()
                with RssSampler(server.pid) as sampler:
                    answers = asyncio.run(flood(port, args.clients, body, headers))
                took = time.perf_counter() - started
                after = settle(process, baseline)
                growth = sampler.peak - baseline
                worst = max(worst, growth)
                print(
                    f"{kind:>16} #{round_no}: RSS before {baseline / MB:6.1f} MB, peak {sampler.peak / MB:6.1f} MB "
                    f"(+{growth / MB:5.1f} MB), after {after / MB:6.1f} MB ({(after - baseline) / MB:+5.1f} MB); "
                    f"{took:5.2f} s; answers {dict(sorted(answers.items()))}"
                )
        verdict = "met" if worst <= 100 * MB else "MISSED"
        print(f"worst peak growth: {worst / MB:.1f} MB (target <= 100 MB: {verdict})")
        print(f"load average {load_average()} at the end")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
