"""Hostile `main.yml` files: how fast they are rejected, and whether the server stays responsive meanwhile.

Targets (issue 8, item 1): a 1 MiB adversarial `main.yml` (unclosed `${`, long near-matches) is rejected in <= 1 s;
`/healthz` p99 <= 50 ms while four of them are being validated.

What it does:
1. in this process, `odin.schema.load_pipeline` on 1 MiB files of each hostile kind: the time of the first call and
   the best of three, with the number of problems reported (at most 101);
2. starts `odin serve` (SQLite, no repository, `ODIN_VALIDATION_WORKERS=--workers`), logs in, and times one
   `POST /v1/validate` of each kind end to end (the request body caps `content` at 1,000,000 characters);
3. measures `/healthz` latency from this process (one request every 10 ms) for --duration seconds, first idle, then
   while --clients separate processes each post hostile files to `/v1/validate` back to back, and prints p50, p99,
   max and the number of validations answered.

It prints the load average at the start and at the end: the development machine is shared, and a figure taken while
something else ran says so.

    .venv/bin/python benchmarks/bench_validate_adversarial.py [--duration 10] [--clients 4] [--workers 4]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from odin.schema import load_pipeline

BIN = Path(sys.executable).parent
SECRET = "benchmark-secret-that-is-long-enough-0123456789"
PASSWORD = "benchmark-password"
MiB = 1 << 20
HEAD = "name: hostile\nparams:\n  lr: 0.1\ntasks:\n  - name: a\n    image: x\n"


def hostile(kind: str, size: int) -> str:
    """A `main.yml` of `size` characters (ASCII, so also bytes) of the given kind."""
    prefix, unit, suffix = {
        "unclosed ${": ("    command: ", "${", "\n"),
        "near-matches ${a": ("    command: ", "${a ", "\n"),
        "unknown ${x}": ("    command: ", "${x}", "\n"),
        "quoted command": ("    command: \"'", "a ${", "'\"\n"),
        "escaped ${ in a flow list": ("    command: c\n    args: [", '"\\x24{a}", ', "]\n"),
    }[kind]
    n = (size - len(HEAD) - len(prefix) - len(suffix)) // len(unit)
    text = HEAD + prefix + unit * n + suffix
    return text + "#" * (size - len(text)) if not suffix.endswith("]\n") else text


KINDS = ["unclosed ${", "near-matches ${a", "unknown ${x}", "quoted command", "escaped ${ in a flow list"]


def request_body(kind: str) -> dict[str, str]:
    """The largest hostile `content` of this kind whose JSON body fits the server's 1 MiB cap (escapes grow it)."""
    size = 1_000_000
    while len(json.dumps({"content": hostile(kind, size)})) > MiB - 1024:
        size -= 20_000
    return {"content": hostile(kind, size)}


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def in_process() -> None:
    print("in process, odin.schema.load_pipeline on 1 MiB files:")
    worst = 0.0
    for kind in KINDS:
        data = hostile(kind, MiB).encode()
        first = timed(lambda data=data: load_pipeline(data, file="main.yml", default_name="hostile"))  # type: ignore[misc]
        best = min(
            timed(lambda data=data: load_pipeline(data, file="main.yml", default_name="hostile")) for _ in range(3)
        )  # type: ignore[misc]
        result = load_pipeline(data, file="main.yml", default_name="hostile")
        worst = max(worst, best)
        print(f"  {kind:28s} {len(data):>9,} bytes  first {first * 1000:7.0f} ms  best {best * 1000:7.0f} ms  "
              f"{len(result.problems)} problems, last: {result.problems[-1].message[:50]!r}")  # fmt: skip
    print(f"  worst best-of-3: {worst * 1000:.0f} ms (target <= 1000 ms)")


def start_server(data_dir: Path, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ODIN_")}
    env.update(
        ODIN_DATABASE_URL=f"sqlite:///{data_dir / 'odin.db'}",
        ODIN_DATA_DIR=str(data_dir),
        ODIN_PORT=str(port),
        ODIN_JWT_SECRET=SECRET,
        ODIN_ADMIN_PASSWORD=PASSWORD,
        ODIN_LOG_LEVEL="WARNING",
        ODIN_VALIDATION_WORKERS=str(workers),
    )
    log = (data_dir / "server.log").open("ab")
    proc = subprocess.Popen([str(BIN / "odin"), "serve"], env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"odin serve did not start; see {data_dir / 'server.log'}")


def load(base: str, token: str, kind: str, ready: Any, stop: Any, answered: Any) -> None:
    """One client process: post hostile files back to back until `stop` is set, report each latency. It stands for a
    remote client, so it yields the CPU to the server under test (the machine may have only 2 cores)."""
    os.nice(10)
    body = request_body(kind)
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
        ready.release()
        while not stop.is_set():
            started = time.perf_counter()
            r = client.post("/v1/validate", json=body)
            assert r.status_code == 200 and not r.json()["valid"], r.text[:200]
            answered.put(time.perf_counter() - started)


def healthz_latencies(base: str, seconds: float) -> list[float]:
    latencies: list[float] = []
    with httpx.Client(base_url=base, timeout=30) as client:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.01)
    return latencies


def summary(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"n={len(ordered)} p50 {statistics.median(ordered) * 1000:.1f} ms  p99 {p99 * 1000:.1f} ms  "
        f"max {ordered[-1] * 1000:.1f} ms"
    )


def served(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="odin-bench-adversarial-") as tmp:
        port = 20000 + os.getpid() % 20000
        base = f"http://127.0.0.1:{port}"
        proc = start_server(Path(tmp), port, args.workers)
        try:
            r = httpx.post(f"{base}/v1/auth/token", json={"username": "admin", "password": PASSWORD}, timeout=30)
            token = r.json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            print(
                f"\nodin serve (1 process, ODIN_VALIDATION_WORKERS={args.workers}), "
                "POST /v1/validate, the largest body accepted:"
            )
            for kind in KINDS:
                body = request_body(kind)
                httpx.post(f"{base}/v1/validate", json=body, headers=headers, timeout=120)  # warm a worker
                started = time.perf_counter()
                r = httpx.post(f"{base}/v1/validate", json=body, headers=headers, timeout=120)
                elapsed = time.perf_counter() - started
                if r.status_code != 200:
                    raise SystemExit(f"{kind}: {r.status_code} {r.text[:300]}")
                problems = r.json()["problems"]
                size = len(body["content"])
                print(f"  {kind:28s} {size:>9,} chars {elapsed * 1000:7.0f} ms  {len(problems)} problems")
            print(f"\n/healthz, one request every 10 ms for {args.duration:g} s:")
            print(f"  idle:                          {summary(healthz_latencies(base, args.duration))}")
            context = multiprocessing.get_context("spawn")
            answered, ready, stop = context.Queue(), context.Semaphore(0), context.Event()
            clients = [
                context.Process(target=load, args=(base, token, KINDS[i % 2], ready, stop, answered))
                for i in range(args.clients)
            ]
            for client in clients:
                client.start()
            for _ in clients:
                ready.acquire(timeout=120)
            time.sleep(1)  # every client has a request in flight
            during = healthz_latencies(base, args.duration)
            stop.set()
            for client in clients:
                client.join(180)
            times: list[float] = []
            try:
                while True:
                    times.append(answered.get(timeout=1))
            except queue.Empty:
                pass
            print(f"  {args.clients} clients validating:          {summary(during)}  (target p99 <= 50 ms)")
            if times:
                print(f"  validations answered: {len(times)}, each {summary(times)}")
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {load_average()} at start\n")
    try:
        in_process()
        served(args)
    finally:
        print(f"\nload average {load_average()} at the end")


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
