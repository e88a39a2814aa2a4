"""`midgard serve` as a real subprocess on loopback, optionally with fake GPUs (`MIDGARD_FAKE_NVML`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from odin.testing.nvml import write_fake_gpus
from tests.support.server import free_port
from tests.support.wait import wait_until

BIN = Path(sys.executable).parent


class MidgardAgent:
    """One agent process. `gpus` (fake_gpu dicts) writes a fake NVML file; `None` uses this machine's real NVML."""

    def __init__(
        self,
        workdir: Path,
        *,
        gpus: list[dict[str, Any]] | None = None,
        token: str = "midgard-test-token",
        port: int | None = None,
        env: Mapping[str, str] = {},
        args: tuple[str, ...] = (),
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        self.token_file = workdir / f"token-{self.port}"
        self.token_file.write_text(token + "\n")
        self.fake_path: Path | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MIDGARD_", "ODIN_"))}
        if gpus is not None:
            self.fake_path = write_fake_gpus(workdir / f"gpus-{self.port}.json", gpus)
            self.env["MIDGARD_FAKE_NVML"] = str(self.fake_path)
        self.env.update(env)
        self.args = args
        self.log_path = workdir / f"midgard-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def set_gpus(self, gpus: list[dict[str, Any]]) -> None:
        """Change the fake GPUs; the agent sees it on its next NVML pass (after its cache TTL)."""
        assert self.fake_path is not None, "started without fake GPUs"
        write_fake_gpus(self.fake_path, gpus)

    def start(self, timeout: float = 60) -> MidgardAgent:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    str(BIN / "midgard"),
                    "serve",
                    "--bind",
                    f"127.0.0.1:{self.port}",
                    "--token-file",
                    str(self.token_file),
                    *self.args,
                ],
                env=self.env,
                stdout=log,
                stderr=log,
            )
        wait_until(self._healthy, timeout, interval=0.05, message=f"midgard healthy (log: {self.log_path})")
        return self

    def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"midgard exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
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

    def __enter__(self) -> MidgardAgent:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
