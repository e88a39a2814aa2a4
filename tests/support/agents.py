"""Many Midgard agents on loopback, real HTTP, few processes: for aggregation tests and the benchmark.

`python -m tests.support.agents --count N [--stall] [--token T] [--gpus G] [--run R]` listens on N ephemeral ports in
one process (asyncio, one server per port) and prints their ports as one JSON line. Each answers `GET /v1/report` with
a report in the agent's own format (`odin.midgard.report`), node `agent-<port>`, G GPUs (GPU 0 held by a process
attributed to task `train`, attempt 1, of run `run-<port>` or R), and 401 without the token. `--stall` accepts
connections and never answers: a slow node. Killing the process is a dead node (connection refused). The real agent
(`midgard serve`) is tested in tests/midgard; this stand-in lets one test start a hundred agents on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from odin.midgard.report import Attribution, GpuReport, NodeReport, ProcessReport, SystemReport, encode_report

GIB = 1024**3


def report_for(port: int, gpus: int, run: str | None = None) -> NodeReport:
    items = []
    for i in range(gpus):
        processes = []
        if i == 0:
            attribution = Attribution(
                source="environ",
                odin_run=run or f"run-{port}",
                odin_task="train",
                odin_commit="c0ffee" * 6 + "abcd",
                odin_attempt=1,
            )
            processes.append(ProcessReport(pid=1000 + i, used_memory_bytes=30 * GIB, attribution=attribution))
        items.append(
            GpuReport(
                index=i,
                uuid=f"GPU-{port}-{i}",
                name="NVIDIA H100 80GB HBM3" if i % 2 == 0 else "NVIDIA A100-SXM4-40GB",
                memory_total_bytes=80 * GIB,
                memory_used_bytes=(30 * GIB if i == 0 else 0),
                utilization_gpu_percent=97 if i == 0 else 0,
                temperature_c=61,
                processes=processes,
            )
        )
    return NodeReport(
        node=f"agent-{port}",
        sampled_at=datetime.now(UTC),
        system=SystemReport(hostname=f"agent-{port}", cpu_count=8, memory_total_bytes=64 * GIB),
        gpus=items,
    )


async def serve(count: int, *, stall: bool, token: str | None, gpus: int, run: str | None = None) -> None:
    servers = []
    bodies: dict[int, bytes] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = writer.get_extra_info("sockname")[1]
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if stall:
                    await asyncio.sleep(3600)
                lines = head.decode("latin-1").split("\r\n")
                authorized = token is None or f"authorization: bearer {token}" in (x.lower() for x in lines)
                if not lines[0].startswith("GET /v1/report "):
                    status, body = "404 Not Found", b'{"detail":"not found"}'
                elif not authorized:
                    status, body = "401 Unauthorized", b'{"detail":"token required"}'
                else:
                    status, body = "200 OK", bodies[port]
                head_out = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                writer.write(head_out.encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    for _ in range(count):
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        bodies[port] = encode_report(report_for(port, gpus, run))
        servers.append(server)
    sys.stdout.write(json.dumps(sorted(bodies)) + "\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


@dataclass
class AgentGroup:
    """A process serving `ports`; `kill()` makes all of them dead nodes at once."""

    process: Any
    ports: list[int]

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{p}" for p in self.ports]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextmanager
def agent_group(
    count: int, *, stall: bool = False, token: str | None = None, gpus: int = 2, run: str | None = None
) -> Iterator[AgentGroup]:
    import subprocess

    args = [sys.executable, "-m", "tests.support.agents", "--count", str(count), "--gpus", str(gpus)]
    if stall:
        args.append("--stall")
    if token:
        args += ["--token", token]
    if run:
        args += ["--run", run]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the process prints its ports once every server listens
        if not line:
            raise RuntimeError(f"agent group exited with {process.wait()}")
        group = AgentGroup(process, json.loads(line))
        yield group
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--gpus", type=int, default=2)
    parser.add_argument("--stall", action="store_true")
    parser.add_argument("--token")
    parser.add_argument("--run", help="the run GPU 0's process belongs to (default run-<port>)")
    ns = parser.parse_args()
    asyncio.run(serve(ns.count, stall=ns.stall, token=ns.token, gpus=ns.gpus, run=ns.run))


if __name__ == "__main__":
    main()
