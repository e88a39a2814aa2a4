"""Ports for the servers tests start, that no other test process hands out at the same time.

Asking the kernel for a free port (bind to port 0, close, give the number to a server) races: between the close and
the server's own bind, another pytest-xdist worker's probe may be given the same number, two servers are told one
port, one fails to bind, and its test talks to the other's server (seen as "connection refused" once that one
stopped). Each worker therefore draws from its own block, below the kernel's ephemeral range (32768 and up on Linux),
where neither the kernel's port-0 choices nor outgoing connections land.
"""

from __future__ import annotations

import itertools
import os
import random
import socket

BASE = 20_000
BLOCK = 1_000  # ports per worker: workers gw0..gw11 fit below 32768
# Where in its block this process starts: two test sessions running at once (two checkouts on one machine) then
# rarely walk the same ports in step.
_drawn = itertools.count(random.randrange(BLOCK))


def worker_index() -> int:
    """0 for a plain pytest run, N for pytest-xdist's worker gwN."""
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    digits = name.removeprefix("gw")
    return int(digits) if digits.isdigit() else 0


def free_port() -> int:
    """A port of this worker's block that nothing is bound to now (a server still in TIME_WAIT is skipped)."""
    start = BASE + (worker_index() % 12) * BLOCK
    for _ in range(BLOCK):
        port = start + next(_drawn) % BLOCK
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}..{start + BLOCK - 1}: too many servers left running by the tests")
