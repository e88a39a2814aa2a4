"""Midgard's agent: one NVML pass over 8 fake GPUs, and requests/s one agent serves from its cache.

Targets (issue 10, "Speed"): one NVML pass over 8 fake GPUs <= 20 ms; one agent answers >= 500 requests/s from its
cache. No GPU here: the NVML pass runs the real adapter (midgard/nvml.py) over odin.testing.nvml's fake, so it
measures Midgard's own cost per pass (the ~35 NVML calls per GPU, the guards, the structs), not the driver's.

What it does:
1. NVML pass: `Nvml(FakeNvml(8 GPUs, 2 processes each)).read()` --passes times; p50/p95/max. Also a whole
   `Collector.collect()` (NVML + process attribution from /proc + psutil system), which is what a cache miss costs.
2. Throughput: starts `midgard serve` (a real subprocess, cache TTL 1 s, 8 fake GPUs), then keeps --connections
   keep-alive HTTP/1.1 connections busy on `GET /v1/report` with the bearer token for --duration seconds from a
   small asyncio client in this process (wrk is not installed here; a raw-socket client costs the 2-core machine
   far less than httpx). With a 1 s TTL the agent makes about one NVML pass per second whatever the load
   (tests/midgard/test_server.py checks that a burst costs exactly one).

    .venv/bin/python benchmarks/bench_midgard_agent.py [--passes 500] [--duration 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from odin.midgard.collect import Collector
from odin.midgard.nvml import Nvml
from odin.testing.nvml import FakeNvml, fake_gpu, write_fake_gpus

BIN = Path(sys.executable).parent
TOKEN = "bench-midgard-token"


def gpus(n: int = 8) -> list[dict[str, object]]:
    pid = os.getpid()
    return [
        fake_gpu(i, utilization_gpu=50 + i, memory_used=(i + 1) * 1024**3, processes=[{"pid": pid}, {"pid": pid + 1}])
        for i in range(n)
    ]


def _percentiles(samples: list[float]) -> str:
    samples = sorted(samples)
    p = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))] * 1000  # noqa: E731
    return f"p50 {p(0.5):.2f} ms, p95 {p(0.95):.2f} ms, max {samples[-1] * 1000:.2f} ms"


def bench_pass(passes: int) -> None:
    nvml = Nvml(FakeNvml(gpus()))
    collector = Collector(FakeNvml(gpus()))
    nvml.read()
    collector.collect()  # warm: NVML init, psutil's first CPU sample
    reads, collects = [], []
    for _ in range(passes):
        t = time.perf_counter()
        result = nvml.read()
        reads.append(time.perf_counter() - t)
        assert len(result.gpus) == 8
    for _ in range(max(1, passes // 5)):
        t = time.perf_counter()
        collector.collect()
        collects.append(time.perf_counter() - t)
    print(f"NVML pass over 8 fake GPUs ({passes} passes): {_percentiles(reads)}  [target <= 20 ms]")
    print(f"whole report (NVML + /proc attribution + psutil), {len(collects)} passes: {_percentiles(collects)}")


async def _connection(port: int, deadline: float, counts: list[int], bad: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = (f"GET /v1/report HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n").encode()
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head.split(b" ", 2)[1]
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            counts[0] += 1
            if status != b"200":
                bad[0] += 1
    finally:
        writer.close()


async def _load(port: int, connections: int, duration: float) -> tuple[int, int]:
    counts, bad = [0], [0]
    deadline = time.monotonic() + duration
    await asyncio.gather(*(_connection(port, deadline, counts, bad) for _ in range(connections)))
    return counts[0], bad[0]


def bench_throughput(duration: float, connections: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-midgard-") as d:
        tmp = Path(d)
        (tmp / "token").write_text(TOKEN)
        fake = write_fake_gpus(tmp / "gpus.json", gpus())
        with httpx.Client() as probe:
            port = _free_port()
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("MIDGARD_")},
                "MIDGARD_FAKE_NVML": str(fake),
            }
            log = (tmp / "agent.log").open("wb")
            proc = subprocess.Popen(
                [str(BIN / "midgard"), "serve", "--bind", f"127.0.0.1:{port}", "--token-file", str(tmp / "token"),
                 "--ttl", "1"],
                env=env, stdout=log, stderr=log,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if probe.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit(f"midgard did not start:\n{(tmp / 'agent.log').read_text()}")
                    time.sleep(0.05)
                headers = {"Authorization": f"Bearer {TOKEN}"}
                size = len(probe.get(f"http://127.0.0.1:{port}/v1/report", headers=headers).content)
                done, bad = asyncio.run(_load(port, connections, duration))
                metrics = probe.get(f"http://127.0.0.1:{port}/metrics", headers=headers)
                assert metrics.status_code == 200
            finally:
                proc.terminate()
                proc.wait(30)
                log.close()
    print(
        f"agent throughput (GET /v1/report, {size:,} bytes, 8 fake GPUs, TTL 1 s, {connections} keep-alive "
        f"connections, {duration:.0f} s, authenticated): {done / duration:,.0f} requests/s, non-200: {bad}  "
        "[target >= 500/s]"
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passes", type=int, default=500)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; Python {sys.version.split()[0]}")
    bench_pass(args.passes)
    bench_throughput(args.duration, args.connections)


if __name__ == "__main__":
    main()
