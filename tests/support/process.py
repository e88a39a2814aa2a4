"""A server started as a real subprocess: health wait, its log, SIGKILL, SIGTERM-then-kill, context manager.

`OdinServer` (odin serve) and `MidgardAgent` (midgard serve) differ only in how they are started; everything after
the `Popen` is here once.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from tests.support.wait import wait_until


class ServerProcess:
    """Subclasses set `name`, `url`, `log_path` and `proc`, and start the process before `wait_healthy`."""

    name = "server"
    url: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None

    def wait_healthy(self, timeout: float, interval: float) -> None:
        wait_until(self._healthy, timeout, interval=interval, message=f"{self.name} healthy (log: {self.log_path})")

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when a node dies."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def start(self, timeout: float = 60) -> Self:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
