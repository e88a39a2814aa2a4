"""What the benchmarks that start a real `odin serve` share (not a benchmark itself: the leading underscore keeps it
out of `tests/test_benchmarks.py`'s list)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx


def wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    """Until `GET {url}/healthz` answers 200; exits with where to look when the server died or took too long."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"odin serve did not start; see {log}")
        time.sleep(0.1)
